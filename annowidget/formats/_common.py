"""What every format shares: finding and probing images, clipping boxes, bulk inserts.

Imports run in three steps so that one bad item never aborts the rest: parse and validate
(bad items go to the report), probe the new image files (bad files go to the report), then
insert everything that is left through the store's bulk APIs (one transaction each).

Bulk reads go through :mod:`annowidget.store.queries` inside ``project.read()``, writes
through ``project.import_images``: each image lands with its annotations or not at all.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from annowidget.formats._report import ImportReport
from annowidget.store import ImportItem, Project, ProjectError, queries
from annowidget.store.images import ImageError, probe_image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
"""File suffixes (lower case) that imports treat as images."""

ROUNDING_PX = 0.01
"""Boxes that overflow their image by at most this much are clipped without a report."""


class FormatError(ValueError):
    """A whole dataset file cannot be read (bad JSON, missing top-level key); names the file."""


@dataclass
class ImageEntry:
    """One image a dataset file mentions, before it is resolved against the project.

    ``item`` names it in reports; ``path`` is absolute or relative to the images root;
    ``width``/``height`` are what the dataset declares (None when it does not say);
    ``declared`` counts the objects the file lists for it, valid or not.
    """

    item: str
    path: Path
    width: int | None = None
    height: int | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    declared: int = 0


@dataclass(eq=False)
class ResolvedImage:
    """An image an import attaches annotations to; ``id`` is known once it is committed.

    One object per file: entries that name the same file share it.
    """

    path: str
    width: int
    height: int
    existing: bool
    checksum: str = ""
    folder: str = "unlabeled"
    status: str = "unlabeled"
    id: int | None = None


def is_number(value: Any) -> bool:
    """True for finite ints and floats (JSON numbers), False for bools and the rest."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def images_dir_of(project: Project, images_dir: str | os.PathLike[str] | None) -> Path:
    """The directory dataset file names are relative to (the images root by default).

    It must lie inside the project's images root (``ProjectError`` otherwise).
    """
    if images_dir is None:
        return project.images_root
    directory = Path(images_dir).absolute()
    if not directory.is_dir():
        raise FormatError(f"{directory}: the images directory does not exist")
    if os.path.normpath(directory) != os.path.normpath(project.images_root):
        project.relative_path(directory)  # one clear error instead of one per image
    return directory


def progress_bar(iterable: Iterable[Any], *, total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar on stderr when ``enabled`` (the CLI), the plain iterable otherwise."""
    if not enabled:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)


def _probe(path: Path) -> Any:
    try:
        return probe_image(path)
    except (ValueError, OSError) as exc:  # ImageError, and ValueError for a NUL in the path
        return exc


def resolve_images(
    project: Project,
    entries: Sequence[ImageEntry],
    report: ImportReport,
    *,
    folder: str,
    status: str,
    progress: bool = False,
) -> list[tuple[ImageEntry, ResolvedImage]]:
    """Find or probe the images of ``entries``; returns the usable ones (nothing is stored).

    Paths that escape the images root, files that are missing or do not decode are skipped
    and reported. New images are probed (size after EXIF orientation, checksum) in a few
    threads, since decoding releases the GIL. When the dataset's declared size disagrees
    with the file, the file wins and the report says so. :func:`commit_images` stores them.
    """
    relative: list[tuple[ImageEntry, str]] = []
    for entry in entries:
        try:
            relative.append((entry, project.relative_path(entry.path)))
        except ProjectError as exc:
            report.skip(entry.item, str(exc))
    with project.read() as connection:
        existing = queries.existing_images(connection, sorted({rel for _, rel in relative}))

    to_probe: dict[str, ImageEntry] = {}
    for entry, rel in relative:
        if rel not in existing:
            to_probe.setdefault(rel, entry)
    probed: dict[str, Any] = {}
    if to_probe:
        workers = max(1, min(4, os.cpu_count() or 1))
        paths = [project.images_root / rel for rel in to_probe]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = progress_bar(
                pool.map(_probe, paths), total=len(paths), desc="probing images", enabled=progress
            )
            probed = dict(zip(to_probe, results, strict=True))

    images: dict[str, ResolvedImage] = {}
    resolved: list[tuple[ImageEntry, ResolvedImage]] = []
    for entry, rel in relative:
        info = probed.get(rel)
        if isinstance(info, Exception):
            reason = info.reason if isinstance(info, ImageError) else str(info)
            report.skip(entry.item, f"{rel}: {reason}")
            continue
        if rel not in images:
            if info is None:
                _, width, height = existing[rel]
                images[rel] = ResolvedImage(rel, width, height, True, "", folder, status)
            else:
                images[rel] = ResolvedImage(
                    rel, info.width, info.height, False, info.checksum, folder, status
                )
        image = images[rel]
        declared = (entry.width, entry.height)
        if declared != (None, None) and declared != (image.width, image.height):
            report.warn(
                entry.item,
                f"declared size {entry.width}x{entry.height} differs from the file's "
                f"{image.width}x{image.height} (after EXIF orientation); the file's size is used",
            )
        resolved.append((entry, image))
    return resolved


def clip_box(
    bbox: Sequence[float], width: int, height: int
) -> tuple[tuple[float, float, float, float], str | None]:
    """Clip an ``[x, y, w, h]`` box to the image; returns the box and what changed, if any.

    Example:
        >>> clip_box([-5, 0, 20, 10], 100, 100)
        ((0.0, 0.0, 15.0, 10.0), 'box [-5, 0, 20, 10] clipped to [0, 0, 15, 10] (image 100x100)')
    """
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return (x, y, w, h), None
    clipped = (x0, y0, x1 - x0, y1 - y0)
    excess = max(abs(a - b) for a, b in zip((x0, y0, x1, y1), (x, y, x + w, y + h), strict=True))
    if excess <= ROUNDING_PX:
        return clipped, None  # rounding noise of normalized coordinates, not a real overflow
    what = (
        f"box [{_num(x)}, {_num(y)}, {_num(w)}, {_num(h)}] clipped to "
        f"[{', '.join(_num(v) for v in clipped)}] (image {width}x{height})"
    )
    return clipped, what


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def category_ids(project: Project, report: ImportReport, names: Iterable[str]) -> dict[str, int]:
    """Project category ids for ``names``, creating the missing ones (matched by name)."""
    known = {category.name: category.id for category in project.categories()}
    result: dict[str, int] = {}
    for name in names:
        clean = str(name).strip()
        if clean not in known:
            category = project.add_category(clean)  # validates and NFC-normalises
            if category.name not in known:
                report.categories_added += 1
            known[clean] = known[category.name] = category.id
        result[name] = known[clean]
    return result


def commit_images(
    project: Project,
    resolved: Sequence[tuple[ImageEntry, ResolvedImage]],
    rows: Sequence[tuple[ResolvedImage, dict[str, Any]]],
    report: ImportReport,
    *,
    source: str,
    empty_is_negative: bool = False,
    progress: bool = False,
) -> None:
    """Store the resolved images with their annotations, each image all-or-nothing.

    An image lands together with its boxes or not at all (a killed import never leaves an
    image reviewed without them); an annotation with the same image, category and box as a
    stored one is counted as existing instead of added, so re-running an import doubles
    nothing. An image whose dataset entry had objects but none survived validation is not
    stored as a reviewed "nothing here" (it goes in unlabeled), unless
    ``empty_is_negative`` (label maps: all background is an answer).
    """
    by_image: dict[int, list[dict[str, Any]]] = {}
    for image, values in rows:
        by_image.setdefault(id(image), []).append({**values, "source": source})
    entries_of: dict[int, list[ImageEntry]] = {}
    images: dict[int, ResolvedImage] = {}
    for entry, image in resolved:
        entries_of.setdefault(id(image), []).append(entry)
        images.setdefault(id(image), image)
    items = []
    for key, image in images.items():
        kept = by_image.get(key, [])
        declared = any(e.annotations or e.declared for e in entries_of[key])
        status = image.status
        if status == "reviewed" and declared and not kept and not empty_is_negative:
            status = "unlabeled"
        items.append(
            ImportItem(
                image.path, image.width, image.height, image.checksum, image.folder, status, kept
            )
        )
    outcomes = progress_bar(
        project.import_images(items, source=source),
        total=len(items),
        desc="importing",
        enabled=progress and bool(items),
    )
    for image, outcome in zip(images.values(), outcomes, strict=True):
        if outcome.error is not None:
            for entry in entries_of[id(image)]:
                report.skip(entry.item, f"{image.path}: not imported: {outcome.error}")
            continue
        image.id = outcome.image_id
        if outcome.new:
            report.images_added += 1
        else:
            report.images_existing += 1
        report.annotations_added += outcome.added
        report.annotations_existing += outcome.existing


def iter_export_rows(
    project: Project,
    connection: sqlite3.Connection,
    folders: str | Sequence[str] | None,
    status: str | Sequence[str] | None,
    *,
    include_predictions: bool,
) -> tuple[list[tuple[Any, ...]], Callable[[], Iterator[tuple[Any, ...]]]]:
    """The selected images, and a function streaming their annotations as plain tuples.

    Call it inside ``with project.read() as connection`` and stream within it.

    Images are ``(id, path, width, height, status)``; annotations are ``(image_id, id,
    category_id, x, y, w, h, segmentation_json, keypoints_json, num_keypoints, iscrowd, area,
    score)`` ordered by image then id, read straight from SQLite without building records.

    An image that is not reviewed and has no exported annotation is left out: in every
    format an image with no object reads as "labeled, nothing here", which an image
    nobody has looked at is not.
    """
    return queries.export_rows(
        connection,
        project.images_root,
        folders,
        status,
        include_predictions=include_predictions,
    )
