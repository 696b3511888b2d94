"""Exports that cannot mislead: a folder complete or absent, and names the format can hold.

VOC, YOLO and label-map exports write one file per image. They are written into a hidden
folder beside the target, renamed into place once every file is there: an export killed
half-way (or stopped by a full disk) leaves the previous target, or none, never a partial
one that looks complete. A target that already holds files is replaced whole, and only
when asked (``overwrite``): writing into it would keep the label files of images that are
no longer exported (a re-split moves them to ``test``; their old labels would stay in the
training set of whoever reads the folder).

Text formats also have names they cannot hold: a line break in a YOLO ``classes.txt``
shifts every class after it (other boxes silently change class on re-import), a control
character makes a VOC XML file unreadable. Such names are refused before anything is
written, naming the category.
"""

from __future__ import annotations

import os
import secrets
import shutil
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from annowidget.formats._common import FormatError

_PARTIAL = ".partial"  # a folder being written
_REPLACED = ".replaced"  # the previous export, between the two renames of a swap


def unwritable_text(text: str) -> str | None:
    """Why ``text`` cannot be written as one line of a text format or XML, or None.

    Example:
        >>> unwritable_text("traffic light") is None
        True
        >>> unwritable_text("traffic\\nlight")
        "contains the control character '\\\\n'"
    """
    for char in text:
        # Cc: C0/C1 controls (newlines, NUL, ESC); Zl/Zp: the line and paragraph
        # separators str.splitlines() also splits on; Cs: lone surrogates (not UTF-8);
        # U+FFFE/U+FFFF: not characters, refused by XML parsers.
        if unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs") or char in "\ufffe\uffff":
            return f"contains the control character {char!r}"
    return None


def check_category_names(names: Iterable[tuple[int, str]], fmt: str) -> None:
    """Raise ``FormatError`` naming the first category whose name ``fmt`` cannot hold.

    Names read back differently (or not at all) when they hold a control character, or
    leading or trailing spaces, which every reader strips.

    Example:
        >>> check_category_names([(1, "dog"), (2, "cat")], "YOLO")
    """
    for id_, name in names:
        why = unwritable_text(name)
        if why is None and name != name.strip():
            why = "has leading or trailing spaces, which readers strip"
        if why is None and not name.strip():
            why = "is empty"
        if why is not None:
            raise FormatError(
                f"category {name!r} (id {id_}) {why}: a {fmt} export cannot hold it "
                "(a COCO export keeps any name)"
            )


@contextmanager
def staged_directory(
    out_dir: str | os.PathLike[str], *, overwrite: bool, protect: Iterable[Path] = ()
) -> Iterator[Path]:
    """A new empty folder to write an export into; it becomes ``out_dir`` when the block ends.

    ``out_dir`` may be missing or empty; one with files is replaced whole only with
    ``overwrite`` (else ``FormatError``), and never when it holds one of ``protect``
    (the project, its images). If the block raises, nothing changes.

    Example:
        >>> # with staged_directory("yolo", overwrite=True) as out:
        >>> #     (out / "classes.txt").write_text("dog\\n")
    """
    target = Path(os.path.normpath(Path(out_dir).absolute()))
    _check_target(target, overwrite=overwrite, protect=protect)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    stem = f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
    staging = target.parent / f"{stem}{_PARTIAL}"
    staging.mkdir()  # mkdir, not mkdtemp: the export's mode follows the umask (not 0700)
    try:
        yield staging
        if target.exists():
            replaced = target.parent / f"{stem}{_REPLACED}"
            target.rename(replaced)
            staging.rename(target)
            shutil.rmtree(replaced, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_target(target: Path, *, overwrite: bool, protect: Iterable[Path]) -> None:
    if target.exists() and not target.is_dir():
        raise FormatError(f"{target}: exists and is not a folder")
    for kept in protect:
        kept = Path(os.path.normpath(Path(kept).absolute()))
        if kept == target or kept.is_relative_to(target):
            raise FormatError(f"{target}: holds {kept}; export to a folder of its own")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FormatError(
            f"{target}: the folder is not empty; pass overwrite=True (CLI: --overwrite) "
            "to replace it whole"
        )


def _remove_leftovers(target: Path) -> None:
    """Remove the staging folders of earlier exports to ``target`` whose process is dead."""
    prefix = f".{target.name}."
    for path in target.parent.iterdir():
        if not path.name.startswith(prefix):
            continue
        parts = path.name[len(prefix) :].split(".")
        if len(parts) != 3 or f".{parts[2]}" not in (_PARTIAL, _REPLACED):
            continue
        try:
            pid = int(parts[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill(pid, 0) would send Ctrl+C there, not ask
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process (PermissionError): leave its folder alone
    return True
