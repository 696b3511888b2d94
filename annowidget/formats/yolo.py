"""YOLO txt labels: one file per image, one object per row, coordinates normalized to 0..1.

A row is a box ``class cx cy w h`` or a segment polygon ``class x1 y1 x2 y2 ...`` (at least
three points). Label files mirror the image paths: ``labels/a/b.txt`` is the label of
``images/a/b.jpg``. An image with no label file is imported as unlabeled (to label later);
an empty label file means a labeled image with no object.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from annowidget.formats._classes import load_classes
from annowidget.formats._common import (
    IMAGE_EXTENSIONS,
    FormatError,
    ImageEntry,
    category_ids,
    clip_box,
    commit_images,
    images_dir_of,
    iter_export_rows,
    resolve_images,
)
from annowidget.formats._export import check_category_names, staged_directory
from annowidget.formats._masks import mask_area, polygon_bounds
from annowidget.formats._report import ImportReport
from annowidget.store import Project

SOURCE = "import:yolo"
_ROW_SHAPE = "expected 5 (class cx cy w h) or 1 + an even number >= 6 (class x1 y1 x2 y2 ...)"


def _images_by_stem(images_dir: Path) -> dict[str, Path]:
    """Image files under ``images_dir`` keyed by their path without suffix (posix)."""
    found: dict[str, Path] = {}
    for path in sorted(images_dir.rglob("*")):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            key = path.relative_to(images_dir).with_suffix("").as_posix()
            found.setdefault(key, path)
    return found


def _parse_row(tokens: list[str], classes: dict[int, str]) -> tuple[str, list[float]] | str:
    """``(class name, values)`` for a good row, or why the row is bad."""
    if len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0):
        return f"{len(tokens)} values; {_ROW_SHAPE}"
    try:
        class_id = int(tokens[0])
    except ValueError:
        return f"class {tokens[0]!r} is not an integer"
    if class_id not in classes:
        return f"class {class_id} is not in the class list ({len(classes)} classes)"
    try:
        values = [float(token) for token in tokens[1:]]
    except ValueError:
        return "coordinates must be numbers"
    if not all(map(math.isfinite, values)):
        return "coordinates must be finite numbers"
    if len(values) == 4 and (values[2] < 0 or values[3] < 0):
        return f"negative width or height ({values[2]}, {values[3]}) rejected"
    return classes[class_id], values


def _read_labels(
    label_file: Path, item: str, classes: dict[int, str], report: ImportReport
) -> list[dict[str, Any]] | None:
    try:
        text = label_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.skip(item, f"cannot read the label file ({exc})")
        return None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        parsed = _parse_row(tokens, classes)
        where = f"{item}:{number}"
        if isinstance(parsed, str):
            report.skip(where, parsed)
        else:
            rows.append({"item": where, "name": parsed[0], "values": parsed[1]})
    return rows


def import_yolo(
    project: Project,
    labels_dir: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str],
    classes: Sequence[str] | str | os.PathLike[str],
    folder: str = "train",
    progress: bool = False,
) -> ImportReport:
    """Import YOLO labels (boxes and segment polygons) for the images under ``images_dir``.

    ``classes`` is a list of names, a text file with one name per line, or a YOLO data
    YAML with ``names``. Rows with the wrong number of values, an unknown class or
    non-numeric coordinates are skipped and reported as ``file:line``; label files with
    no image are reported; the rest is imported.

    Example:
        >>> import_yolo(project, "labels/train2017", images_dir="images/train2017",
        ...             classes="config.yaml").annotations_added  # doctest: +SKIP
        929
    """
    names = load_classes(classes)
    labels = Path(labels_dir).absolute()
    if not labels.is_dir():
        raise FormatError(f"{labels}: the labels directory does not exist")
    images_root = images_dir_of(project, images_dir)
    report = ImportReport()
    images = _images_by_stem(images_root)
    labeled: list[ImageEntry] = []
    for label_file in sorted(labels.rglob("*.txt")):
        item = label_file.relative_to(labels).as_posix()
        if label_file.name == "classes.txt" and label_file.parent == labels:
            continue
        image = images.pop(label_file.relative_to(labels).with_suffix("").as_posix(), None)
        if image is None:
            report.skip(item, f"no image with this name under {images_root}")
            continue
        skipped_before = len(report.skipped)
        rows = _read_labels(label_file, item, names, report)
        if rows is not None:
            entry = ImageEntry(f"{item} ({image.name})", image, annotations=rows)
            entry.declared = len(report.skipped) - skipped_before  # its bad rows
            labeled.append(entry)
    unlabeled = [ImageEntry(path.name, path) for path in images.values()]

    ids = category_ids(
        project, report, sorted({row["name"] for entry in labeled for row in entry.annotations})
    )
    resolved = resolve_images(
        project, labeled, report, folder=folder, status="reviewed", progress=progress
    )
    unlabeled_resolved = (
        resolve_images(
            project, unlabeled, report, folder=folder, status="unlabeled", progress=progress
        )
        if unlabeled
        else []
    )
    placed = {id(entry) for entry, _ in resolved}
    for entry in labeled:
        if id(entry) not in placed:
            for row in entry.annotations:
                report.skip(row["item"], f"its image ({entry.item}) was skipped")
    out = []
    for entry, image in resolved:
        for row in entry.annotations:
            values = _values(row, image.width, image.height, report)
            if values is not None:
                values["category_id"] = ids[row["name"]]
                out.append((image, values))
    commit_images(
        project, resolved + unlabeled_resolved, out, report, source=SOURCE, progress=progress
    )
    return report


def _values(
    row: dict[str, Any], width: int, height: int, report: ImportReport
) -> dict[str, Any] | None:
    values = row["values"]
    if len(values) == 4:
        cx, cy, w, h = values
        box = ((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height)
        bbox, clipped = clip_box(box, width, height)
        if clipped:
            if bbox[2] <= 0 or bbox[3] <= 0:
                report.skip(row["item"], f"box lies outside the image ({clipped})")
                return None
            report.clip(row["item"], clipped)
        return {"bbox": bbox}
    points = [
        min(max(v, 0.0), 1.0) * (width if i % 2 == 0 else height) for i, v in enumerate(values)
    ]
    if any(not 0.0 <= v <= 1.0 for v in values):
        report.clip(row["item"], f"polygon points clipped to the image {width}x{height}")
    bbox = polygon_bounds(points)
    if bbox[2] <= 0 or bbox[3] <= 0:
        report.skip(row["item"], "polygon has no area inside the image")
        return None
    return {"bbox": bbox, "segmentation": [points], "area": mask_area([points], height, width)}


def _largest_polygon(polygons: list[list[float]]) -> list[float]:
    def area(points: list[float]) -> float:
        xs, ys = points[0::2], points[1::2]
        return abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2

    return max(polygons, key=area)


def export_yolo(
    project: Project,
    out_dir: str | os.PathLike[str],
    *,
    folders: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    segments: bool = False,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write ``out_dir/labels/<image path>.txt`` per image and ``out_dir/classes.txt``.

    Class ids are the positions of the project's categories in ``classes.txt``. With
    ``segments=True`` rows are polygons: an annotation's largest polygon (YOLO has one
    per row), or its box's four corners when it has no polygon (RLE masks included).
    Images not reviewed yet with no annotation get no file (YOLO's "not labeled yet").
    The folder appears complete or not at all; one that has files is replaced whole,
    only with ``overwrite``. A category name with a line break or another control
    character (``classes.txt`` is one name per line) raises ``FormatError`` first.

    Example:
        >>> export_yolo(project, "yolo", folders="train")  # doctest: +SKIP
        {'images': 160, 'annotations': 174, 'classes': 1}
    """
    categories = project.categories()
    check_category_names(((c.id, c.name) for c in categories), "YOLO")
    index = {category.id: position for position, category in enumerate(categories)}
    written = count = 0
    with project.read() as connection:
        images, annotations = iter_export_rows(
            project, connection, folders, status, include_predictions=False
        )
        by_image = {
            image_id: list(rows) for image_id, rows in groupby(annotations(), key=lambda r: r[0])
        }
    protect = (project.root, project.images_root)
    with staged_directory(out_dir, overwrite=overwrite, protect=protect) as out:
        text = "".join(f"{c.name}\n" for c in categories)
        (out / "classes.txt").write_text(text, encoding="utf-8")
        labels = out / "labels"
        labels.mkdir()
        for image_id, path, width, height, _status in images:
            lines = _label_lines(by_image.get(image_id, []), index, width, height, segments)
            count += len(lines)
            target = labels / Path(path).with_suffix(".txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            written += 1
    return {"images": written, "annotations": count, "classes": len(categories)}


def _label_lines(
    rows: list[tuple[Any, ...]], index: dict[int, int], width: int, height: int, segments: bool
) -> list[str]:
    """The label file rows of one image: ``class cx cy w h`` or ``class x1 y1 ...``."""
    lines = []
    for _, _, category_id, x, y, w, h, segmentation, *_rest in rows:
        if segments:
            polygons = json.loads(segmentation) if segmentation else None
            if isinstance(polygons, list) and polygons:
                points = _largest_polygon(polygons)
            else:
                points = [x, y, x + w, y, x + w, y + h, x, y + h]
            coords = [_unit(v / (width if i % 2 == 0 else height)) for i, v in enumerate(points)]
        else:
            coords = [
                _unit((x + w / 2) / width),
                _unit((y + h / 2) / height),
                _unit(w / width),
                _unit(h / height),
            ]
        lines.append(" ".join([str(index[category_id]), *coords]))
    return lines


def _unit(value: float) -> str:
    return f"{min(max(value, 0.0), 1.0):.6f}"
