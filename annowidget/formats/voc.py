"""Pascal VOC XML: one file per image with ``<object>`` boxes, in and out.

Boxes are read as ``xmin, ymin, xmax, ymax`` pixel coordinates and stored as
``[xmin, ymin, xmax - xmin, ymax - ymin]`` (no 1-based shift: the raccoon set and most
tools that write VOC treat the numbers as plain pixel coordinates). ``pose``,
``truncated`` and ``difficult`` are not kept.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from annowidget.formats._common import (
    FormatError,
    ImageEntry,
    category_ids,
    clip_box,
    commit_images,
    images_dir_of,
    iter_export_rows,
    resolve_images,
)
from annowidget.formats._export import check_category_names, staged_directory, unwritable_text
from annowidget.formats._report import ImportReport
from annowidget.store import Project

SOURCE = "import:voc"


def _xml_files(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return sorted(path.glob("*.xml"))
        if path.is_file():
            return [path]
        raise FormatError(f"{path}: no such XML file or directory")
    return [Path(p) for p in source]


def _text(element: ET.Element, tag: str) -> str | None:
    child = element.find(tag)
    return None if child is None or child.text is None else child.text.strip()


def _size(root: ET.Element) -> tuple[int | None, int | None] | str:
    """The declared ``(width, height)`` (None where missing or 0), or why it is bad."""
    size = root.find("size")
    values = []
    for tag in ("width", "height"):
        text = None if size is None else _text(size, tag)
        try:
            value = float(text) if text else 0.0
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 <= value <= _MAX_SIDE):
            return f"<size><{tag}> must be a number of pixels, got {text!r}"
        values.append(int(value) or None)  # some tools write 0: "unknown", the file decides
    return values[0], values[1]


_MAX_SIDE = 1 << 20  # far above any real image; keeps int() and the size check sane


def _read_objects(root: ET.Element, item: str, report: ImportReport) -> list[dict[str, Any]]:
    objects = []
    for index, obj in enumerate(root.iter("object")):
        where = f"{item} object[{index}]"
        name = _text(obj, "name")
        box = obj.find("bndbox")
        if not name:
            report.skip(where, "missing <name>")
            continue
        if box is None:
            report.skip(where, "missing <bndbox>")
            continue
        try:
            xmin, ymin, xmax, ymax = (float(_text(box, tag) or "") for tag in _CORNERS)
        except ValueError:
            xmin = math.nan
        if not all(map(math.isfinite, (xmin, ymin, xmax, ymax))):
            texts = [_text(box, tag) for tag in _CORNERS]
            report.skip(where, f"<bndbox> needs numeric xmin, ymin, xmax, ymax; got {texts}")
            continue
        if xmax < xmin or ymax < ymin:
            report.skip(
                where, f"box ({xmin}, {ymin}, {xmax}, {ymax}) has xmax < xmin or ymax < ymin"
            )
            continue
        objects.append(
            {"item": where, "name": name, "bbox": [xmin, ymin, xmax - xmin, ymax - ymin]}
        )
    return objects


_CORNERS = ("xmin", "ymin", "xmax", "ymax")


def import_voc(
    project: Project,
    xml_dir_or_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    folder: str = "train",
    progress: bool = False,
) -> ImportReport:
    """Import Pascal VOC XML files (a directory of them, one file, or a list of files).

    Each file's ``<filename>`` is looked up in ``images_dir`` (the project's images root
    by default). A file that does not parse, an object without a name or a numeric box,
    or a missing image is skipped and named in the report; the rest is imported.

    Example:
        >>> report = import_voc(project, "raccoon/annotations",
        ...                     images_dir="raccoon/images")  # doctest: +SKIP
        >>> report.annotations_added  # doctest: +SKIP
        217
    """
    report = ImportReport()
    directory = images_dir_of(project, images_dir)
    entries = []
    for xml_path in _xml_files(xml_dir_or_files):
        item = xml_path.name
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            line, column = exc.position
            report.skip(item, f"XML does not parse (line {line}, column {column + 1})")
            continue
        except OSError as exc:
            report.skip(item, f"cannot read: {exc.strerror or exc}")
            continue
        if root.tag != "annotation":
            report.skip(item, f"root element is <{root.tag}>, not <annotation>")
            continue
        filename = _text(root, "filename")
        if not filename:
            report.skip(item, "missing <filename>")
            continue
        size = _size(root)
        if isinstance(size, str):
            report.skip(item, size)
            continue
        width, height = size
        image_path = directory / filename
        stored = _text(root, "path")
        if not image_path.exists() and stored and not Path(stored).is_absolute():
            image_path = directory / stored  # our own exports keep sub-folders in <path>
        entry = ImageEntry(f"{item} ({filename})", image_path, width, height)
        entry.annotations = _read_objects(root, item, report)
        entry.declared = len(root.findall("object"))
        entries.append(entry)

    names = sorted({obj["name"] for entry in entries for obj in entry.annotations})
    ids = category_ids(project, report, names)
    resolved = resolve_images(
        project, entries, report, folder=folder, status="reviewed", progress=progress
    )
    placed = {id(entry) for entry, _ in resolved}
    for entry in entries:
        if id(entry) not in placed:
            for obj in entry.annotations:
                report.skip(obj["item"], f"its image ({entry.item}) was skipped")
    rows = []
    for entry, image in resolved:
        for obj in entry.annotations:
            bbox, clipped = clip_box(obj["bbox"], image.width, image.height)
            if clipped:
                if bbox[2] <= 0 or bbox[3] <= 0:
                    report.skip(obj["item"], f"box lies outside the image ({clipped})")
                    continue
                report.clip(obj["item"], clipped)
            rows.append((image, {"category_id": ids[obj["name"]], "bbox": bbox}))
    commit_images(project, resolved, rows, report, source=SOURCE, progress=progress)
    return report


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def export_voc(
    project: Project,
    out_dir: str | os.PathLike[str],
    *,
    folders: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write one Pascal VOC XML file per image under ``out_dir`` (mirroring image paths).

    Only boxes are written (VOC has no polygons or keypoints); predictions waiting for
    review are left out. Images not reviewed yet with no annotation get no file. The
    folder appears complete or not at all; one that has files is replaced whole, only
    with ``overwrite``. An exported category name or image path with a control character
    (which XML cannot hold) raises ``FormatError`` before anything is written.

    Example:
        >>> export_voc(project, "voc", folders="train")  # doctest: +SKIP
        {'images': 160, 'annotations': 174}
    """
    names = {category.id: category.name for category in project.categories()}
    written = boxes = 0
    with project.read() as connection:
        images, annotations = iter_export_rows(
            project, connection, folders, status, include_predictions=False
        )
        by_image = {
            image_id: list(rows) for image_id, rows in groupby(annotations(), key=lambda r: r[0])
        }
    used = sorted({row[2] for rows in by_image.values() for row in rows})
    check_category_names(((id_, names[id_]) for id_ in used), "Pascal VOC")
    for _id, path, *_rest in images:
        if why := unwritable_text(path):
            raise FormatError(f"image {path!r} {why}: a Pascal VOC XML file cannot hold it")
    protect = (project.root, project.images_root)
    with staged_directory(out_dir, overwrite=overwrite, protect=protect) as out:
        for image_id, path, width, height, _status in images:
            root = _annotation_xml(path, width, height, by_image.get(image_id, []), names)
            boxes += len(root.findall("object"))
            target = out / Path(path).with_suffix(".xml")
            # Plain writes: one fsync per file would make big exports crawl.
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))
            written += 1
    return {"images": written, "annotations": boxes}


def _annotation_xml(
    path: str, width: int, height: int, rows: list[tuple[Any, ...]], names: dict[int, str]
) -> ET.Element:
    """The ``<annotation>`` element of one image and its boxes."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = Path(path).parent.name or "."
    ET.SubElement(root, "filename").text = Path(path).name
    ET.SubElement(root, "path").text = path
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "annowidget"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for _, _, category_id, x, y, w, h, *_rest in rows:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[category_id]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for tag, value in zip(_CORNERS, (x, y, x + w, y + h), strict=True):
            ET.SubElement(box, tag).text = _number(value)
    ET.indent(root, space="\t")
    return root
