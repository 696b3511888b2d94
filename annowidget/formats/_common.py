"""What every format shares: finding and probing images, clipping boxes, bulk inserts.

Imports run in three steps so that one bad item never aborts the rest: parse and validate
(bad items go to the report), probe the new image files (bad files go to the report), then
insert everything that is left through the store's bulk APIs (one transaction each).

A few read queries here use the project's connection (``project._db``) directly: they
fetch plain tuples for thousands of rows at once, which the record-per-row public API
would make slow on big datasets. They only read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from annowidget.formats._report import ImportReport
from annowidget.store import Project, ProjectError
from annowidget.store.images import ImageError, probe_image
from annowidget.store.project import image_filter

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
"""File suffixes (lower case) that imports treat as images."""

ROUNDING_PX = 0.01
"""Boxes that overflow their image by at most this much are clipped without a report."""

_CHUNK = 500  # stay well under SQLite's limit on bound variables


class FormatError(ValueError):
    """A whole dataset file cannot be read (bad JSON, missing top-level key); names the file."""


@dataclass
class ImageEntry:
    """One image a dataset file mentions, before it is resolved against the project.

    ``item`` names it in reports; ``path`` is absolute or relative to the images root;
    ``width``/``height`` are what the dataset declares (None when it does not say).
    """

    item: str
    path: Path
    width: int | None = None
    height: int | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ResolvedImage:
    """An image of the project an import attaches annotations to."""

    id: int
    width: int
    height: int
    existing: bool


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


def _existing_images(project: Project, paths: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """``path -> (id, width, height)`` of the paths the project already has."""
    found: dict[str, tuple[int, int, int]] = {}
    db = project._db
    for start in range(0, len(paths), _CHUNK):
        chunk = list(paths[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        for path, id_, width, height in db.execute(
            f"SELECT path, id, width, height FROM images WHERE path IN ({marks})", chunk
        ):
            found[path] = (id_, width, height)
    return found


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
    """Find or add the images of ``entries``; returns the usable ones with their project ids.

    Paths that escape the images root, files that are missing or do not decode are skipped
    and reported. New images are probed (size after EXIF orientation, checksum) in a few
    threads, since decoding releases the GIL, then inserted in one transaction. When the
    dataset's declared size disagrees with the file, the file wins and the report says so.
    """
    relative: list[tuple[ImageEntry, str]] = []
    for entry in entries:
        try:
            relative.append((entry, project.relative_path(entry.path)))
        except ProjectError as exc:
            report.skip(entry.item, str(exc))
    existing = _existing_images(project, sorted({rel for _, rel in relative}))

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

    new_rows: list[dict[str, Any]] = []
    for rel, info in probed.items():
        if isinstance(info, Exception):
            continue
        new_rows.append(
            {
                "path": rel,
                "width": info.width,
                "height": info.height,
                "checksum": info.checksum,
                "folder": folder,
                "status": status,
            }
        )
    if new_rows:
        ids = project.add_images_bulk(new_rows)
        for row, id_ in zip(new_rows, ids, strict=True):
            existing[row["path"]] = (id_, row["width"], row["height"])
        report.images_added += len(new_rows)

    resolved: list[tuple[ImageEntry, ResolvedImage]] = []
    counted: set[str] = set()
    for entry, rel in relative:
        info = probed.get(rel)
        if isinstance(info, Exception):
            reason = info.reason if isinstance(info, ImageError) else str(info)
            report.skip(entry.item, f"{rel}: {reason}")
            continue
        id_, width, height = existing[rel]
        is_new = info is not None
        if not is_new and rel not in counted:
            report.images_existing += 1
        counted.add(rel)
        declared = (entry.width, entry.height)
        if declared != (None, None) and declared != (width, height):
            report.warn(
                entry.item,
                f"declared size {entry.width}x{entry.height} differs from the file's "
                f"{width}x{height} (after EXIF orientation); the file's size is used",
            )
        resolved.append((entry, ResolvedImage(id_, width, height, existing=not is_new)))
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
            known[clean] = project.add_category(clean).id
            report.categories_added += 1
        result[name] = known[clean]
    return result


def _box_key(image_id: int, category_id: int, bbox: Sequence[float]) -> tuple[Any, ...]:
    return (image_id, category_id, *(round(float(v), 3) for v in bbox))


def insert_annotations(
    project: Project,
    rows: Sequence[tuple[ResolvedImage, dict[str, Any]]],
    report: ImportReport,
    *,
    source: str,
) -> None:
    """Insert validated annotations in one transaction, leaving out ones already stored.

    Re-importing a dataset into the same project must not double its boxes, so an
    annotation with the same image, category and box as a stored one is counted as
    existing instead of added.
    """
    existing_ids = sorted({image.id for image, _ in rows if image.existing})
    stored = _stored_box_keys(project, existing_ids)
    new: list[tuple[int, dict[str, Any]]] = []
    for image, values in rows:
        if image.existing:
            key = _box_key(image.id, values["category_id"], values["bbox"])
            if key in stored:
                report.annotations_existing += 1
                continue
            stored.add(key)
        new.append((image.id, {**values, "source": source}))
    if new:
        report.annotations_added += project.add_annotations_bulk(new, log=source)


def _stored_box_keys(project: Project, image_ids: Sequence[int]) -> set[tuple[Any, ...]]:
    keys: set[tuple[Any, ...]] = set()
    db = project._db
    for start in range(0, len(image_ids), _CHUNK):
        chunk = list(image_ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        for image_id, category_id, x, y, w, h in db.execute(
            f"SELECT image_id, category_id, x, y, w, h FROM annotations "
            f"WHERE image_id IN ({marks})",
            chunk,
        ):
            keys.add(_box_key(image_id, category_id, (x, y, w, h)))
    return keys


def iter_export_rows(
    project: Project,
    folders: str | Sequence[str] | None,
    status: str | Sequence[str] | None,
    *,
    include_predictions: bool,
) -> tuple[list[tuple[Any, ...]], Callable[[], Iterator[tuple[Any, ...]]]]:
    """The selected images, and a function streaming their annotations as plain tuples.

    Images are ``(id, path, width, height, status)``; annotations are ``(image_id, id,
    category_id, x, y, w, h, segmentation_json, keypoints_json, num_keypoints, iscrowd, area,
    score)`` ordered by image then id, read straight from SQLite without building records.

    An image that is not reviewed and has no exported annotation is left out: in every
    format an image with no object reads as "labeled, nothing here", which an image
    nobody has looked at is not.
    """
    where, args = image_filter(folders, status, table="i")
    prediction_clause = "" if include_predictions else " AND a.is_prediction = 0"
    labeled = (
        "(i.status = 'reviewed' OR EXISTS (SELECT 1 FROM annotations a "
        f"WHERE a.image_id = i.id{prediction_clause}))"
    )
    where = (where + " AND " if where else " WHERE ") + labeled
    db = project._db
    images = db.execute(
        f"SELECT i.id, i.path, i.width, i.height, i.status FROM images i{where} ORDER BY i.id",
        args,
    ).fetchall()
    joined_where = where + prediction_clause

    def annotations() -> Iterator[tuple[Any, ...]]:
        cursor = db.cursor()
        cursor.row_factory = None  # plain tuples: sqlite3.Row costs time on a million rows
        cursor.arraysize = 4096
        cursor.execute(
            "SELECT a.image_id, a.id, a.category_id, a.x, a.y, a.w, a.h, a.segmentation, "
            "a.keypoints, a.num_keypoints, a.iscrowd, a.area, a.score "
            f"FROM annotations a JOIN images i ON i.id = a.image_id{joined_where} "
            "ORDER BY a.image_id, a.id",
            args,
        )
        while rows := cursor.fetchmany():
            yield from rows

    return [tuple(row) for row in images], annotations
