"""A folder of plain images (no labels): the usual start of a new labeling project."""

from __future__ import annotations

import os
from pathlib import Path

from annowidget.formats._common import (
    IMAGE_EXTENSIONS,
    FormatError,
    ImageEntry,
    commit_images,
    resolve_images,
)
from annowidget.formats._report import ImportReport
from annowidget.store import Project


def find_images(directory: Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``directory`` by suffix, sorted, skipping hidden files and folders.

    Example:
        >>> find_images(Path("photos"))  # doctest: +SKIP
        [PosixPath('photos/a.jpg'), PosixPath('photos/trip/b.png')]
    """
    candidates = directory.rglob("*") if recursive else directory.glob("*")
    found = []
    for path in candidates:
        hidden = any(part.startswith(".") for part in path.relative_to(directory).parts)
        if not hidden and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def import_images(
    project: Project,
    directory: str | os.PathLike[str],
    *,
    folder: str = "unlabeled",
    recursive: bool = True,
    progress: bool = False,
) -> ImportReport:
    """Add every image file under ``directory`` (inside the images root) to ``folder``.

    Suffixes: jpg, jpeg, png, bmp, gif, webp, tif, tiff (any case). Files that do not
    decode (empty, truncated, not an image) are skipped and named in the report; images
    the project already has are counted, not added twice.

    Example:
        >>> print(import_images(project, "photos").summary())  # doctest: +SKIP
        40 images added, 0 already in the project, 0 annotations added, 0 categories added
    """
    path = Path(directory).absolute()
    if not path.is_dir():
        raise FormatError(f"{path}: not a directory")
    if os.path.normpath(path) != os.path.normpath(project.images_root):
        project.relative_path(path)  # a clear error when the folder is outside the root
    report = ImportReport()
    entries = [
        ImageEntry(file.relative_to(path).as_posix(), file)
        for file in find_images(path, recursive=recursive)
    ]
    resolved = resolve_images(
        project, entries, report, folder=folder, status="unlabeled", progress=progress
    )
    commit_images(project, resolved, [], report, source="import", progress=progress)
    return report
