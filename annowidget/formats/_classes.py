"""Reading a YOLO class list: a Python list, a ``classes.txt``, or a data YAML's ``names``.

Only the ``names`` entry of a YOLO data YAML is needed; PyYAML reads it, in any of the shapes
YOLO tools write (a block list, a block ``id: name`` mapping, an inline ``[a, b]`` list).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from annowidget.formats._common import FormatError

# only str, list and dict: no tags, no arbitrary objects; the C parser where available
_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


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


def parse_yaml_names(text: str, path: str | os.PathLike[str] = "<yaml>") -> dict[int, str]:
    """The ``names:`` of a YOLO data YAML (a list, or an ``id: name`` mapping), read by PyYAML.

    Every scalar is read as text (PyYAML's ``BaseLoader``), so a class called ``no`` or
    ``1e3`` keeps its name instead of turning into a boolean or a number.

    Example:
        >>> parse_yaml_names("nc: 2\\nnames:\\n  0: person\\n  1: 'traffic light'\\n")
        {0: 'person', 1: 'traffic light'}
    """
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise FormatError(f"{path}: not valid YAML ({_one_line(exc)})") from None
    if not isinstance(data, dict) or "names" not in data:
        raise FormatError(f"{path}: no 'names:' entry")
    names = data["names"]
    if isinstance(names, list):
        items = list(enumerate(names))
    elif isinstance(names, dict):
        items = []
        for key, value in names.items():
            try:
                items.append((int(str(key).strip()), value))
            except ValueError:
                raise FormatError(f"{path}: class id {key!r} is not an integer") from None
    else:
        raise FormatError(f"{path}: 'names' must be a list or an 'id: name' mapping")
    for id_, value in items:
        if not isinstance(value, str):
            raise FormatError(f"{path}: the name of class {id_} is not text: {value!r}")
    return dict(items)


def _one_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return where + str(getattr(exc, "problem", None) or exc).splitlines()[0]
