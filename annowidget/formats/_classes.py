"""Reading a YOLO class list: a Python list, a ``classes.txt``, or a data YAML's ``names``.

Only the ``names`` entry of a YOLO data YAML is needed, in one of the three shapes YOLO
tools write (a block list, a block ``id: name`` mapping, or an inline ``[a, b]`` list), so
a small reader here avoids a PyYAML dependency.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from annowidget.formats._common import FormatError

_NAMES = re.compile(r"^names\s*:\s*(.*)$")


def load_classes(classes: Sequence[str] | str | os.PathLike[str]) -> dict[int, str]:
    """Class id -> name from a list of names, a text file (one per line) or a YOLO YAML.

    Example:
        >>> load_classes(["raccoon", "dog"])
        {0: 'raccoon', 1: 'dog'}
    """
    if isinstance(classes, str | os.PathLike):
        path = Path(classes)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FormatError(f"{path}: cannot read the class list ({exc})") from exc
        if path.suffix.lower() in (".yaml", ".yml"):
            names = parse_yaml_names(text, path)
        else:
            names = _text_names(text, path)
    else:
        names = dict(enumerate(str(name) for name in classes))
    for id_, name in names.items():
        if not name.strip():
            raise FormatError(f"class {id_} has an empty name")
    if not names:
        raise FormatError(f"{classes}: the class list is empty")
    return {id_: name.strip() for id_, name in names.items()}


def _text_names(text: str, path: Path) -> dict[int, str]:
    lines = text.rstrip().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise FormatError(f"{path}:{number}: empty line in the class list")
    return dict(enumerate(line.strip() for line in lines))


def _unquote(value: str) -> str:
    value = value.strip()
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        if end > 0:
            return value[1:end]  # what follows the closing quote is a comment
    return _strip_comment(value)


def _strip_comment(value: str) -> str:
    return value.split(" #", 1)[0].strip()


def _split_inline(body: str) -> list[str]:
    """Split ``a, 'b, c', d`` on the commas outside quotes."""
    items, current, quote = [], "", ""
    for char in body:
        if quote:
            current += char
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            items.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        items.append(current)
    return [item.strip() for item in items]


def parse_yaml_names(text: str, path: str | os.PathLike[str] = "<yaml>") -> dict[int, str]:
    """The ``names:`` of a YOLO data YAML (block list, block mapping or inline list).

    Example:
        >>> parse_yaml_names("nc: 2\\nnames:\\n  0: person\\n  1: 'traffic light'\\n")
        {0: 'person', 1: 'traffic light'}
    """
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _NAMES.match(line)
        if match is None:
            continue
        rest = match.group(1).strip()
        if rest.startswith("#"):
            rest = ""
        elif rest[:1] in "[{":
            rest = rest[: max(rest.rfind("]"), rest.rfind("}")) + 1]  # drop a trailing comment
        if rest.startswith("[") and rest.endswith("]"):
            return dict(enumerate(_unquote(v) for v in _split_inline(rest[1:-1])))
        if rest.startswith("{") and rest.endswith("}"):
            return _mapping(_split_inline(rest[1:-1]), path, index + 1)
        if rest:
            raise FormatError(f"{path}:{index + 1}: cannot read 'names: {rest}'")
        block = []
        for line_below in lines[index + 1 :]:
            if not line_below.strip() or line_below.lstrip().startswith("#"):
                continue
            if not line_below[0].isspace() and not line_below.startswith("-"):
                break
            block.append(line_below.strip())
        if block and all(item.startswith("-") for item in block):
            return dict(enumerate(_unquote(item[1:]) for item in block))
        return _mapping(block, path, index + 2)
    raise FormatError(f"{path}: no 'names:' entry")


def _mapping(items: list[str], path: str | os.PathLike[str], line: int) -> dict[int, str]:
    names = {}
    for item in items:
        key, sep, value = item.partition(":")
        try:
            id_ = int(key.strip())
        except ValueError:
            raise FormatError(
                f"{path}:{line}: class id {key.strip()!r} is not an integer"
            ) from None
        if not sep:
            raise FormatError(f"{path}:{line}: expected 'id: name', got {item!r}")
        names[id_] = _unquote(value)
    return names
