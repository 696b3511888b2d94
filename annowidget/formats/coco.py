"""COCO JSON: boxes, polygons, RLE masks, keypoints and ``iscrowd``, in and out.

Import validates every category, image and annotation and skips (and reports) the bad
ones; export streams rows straight from SQLite into the file, so a million boxes take
about as long as ``json.dump`` of the finished dict (see ``benchmarks/bench_store.py``).
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from annowidget._io import atomic_writer
from annowidget.formats._common import (
    FormatError,
    ImageEntry,
    clip_box,
    commit_images,
    images_dir_of,
    is_number,
    iter_export_rows,
    resolve_images,
)
from annowidget.formats._masks import check_segmentation, mask_area
from annowidget.formats._memory import read_json_bytes
from annowidget.formats._report import ImportReport
from annowidget.store import Project, ProjectError

SOURCE = "import:coco"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def load_coco_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a COCO file; ``FormatError`` names the file and the line/column of bad JSON.

    A file that would not fit in memory once parsed is refused before parsing.

    Example:
        >>> load_coco_json("instances.json")["images"][0]["file_name"]  # doctest: +SKIP
        '000000000009.jpg'
    """
    file = Path(path)
    try:
        data = json.loads(read_json_bytes(file, FormatError))
    except MemoryError:
        # The estimate is a guess: a limit it did not see (overcommit off, another
        # process growing) still ends here, as one line instead of a traceback.
        raise FormatError(f"{file}: out of memory while reading it") from None
    except OSError as exc:
        raise FormatError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"{file}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise FormatError(f"{file}: not valid JSON: not UTF-8 text ({exc.reason})") from exc
    if not isinstance(data, dict):
        raise FormatError(f"{file}: a COCO file is a JSON object, got {_type_name(data)}")
    for key in ("images", "categories"):
        if key not in data:
            raise FormatError(f"{file}: missing '{key}'")
    for key in ("images", "categories", "annotations"):
        if key in data and not isinstance(data[key], list):
            raise FormatError(f"{file}: '{key}' must be a list, got {_type_name(data[key])}")
    return data


def _check_fields(
    item: str, value: Any, required: Sequence[str], report: ImportReport
) -> dict[str, Any] | None:
    """``value`` if it is an object with every required key, else None (and reported)."""
    if not isinstance(value, dict):
        report.skip(item, f"must be an object, got {_type_name(value)}")
        return None
    for key in required:
        if key not in value:
            report.skip(item, f"missing '{key}'")
            return None
    return value


def _categories(data: dict[str, Any], report: ImportReport) -> dict[int, dict[str, Any]]:
    categories: dict[int, dict[str, Any]] = {}
    first: dict[int, int] = {}
    for index, raw in enumerate(data["categories"]):
        item = f"categories[{index}]"
        category = _check_fields(item, raw, ("id", "name"), report)
        if category is None:
            continue
        id_, name = category["id"], category["name"]
        keypoints = category.get("keypoints") or []
        skeleton = category.get("skeleton") or []
        if not _is_int(id_):
            report.skip(item, f"'id' must be an integer, got {_type_name(id_)}")
        elif not isinstance(name, str) or not name.strip():
            report.skip(item, "'name' must be a non-empty string")
        elif id_ in first:
            report.skip(item, f"duplicate category id {id_} (first at categories[{first[id_]}])")
        elif not isinstance(keypoints, list) or not all(isinstance(k, str) for k in keypoints):
            report.skip(item, "'keypoints' must be a list of names")
        elif not isinstance(skeleton, list) or not all(
            isinstance(edge, list) and len(edge) == 2 and all(map(_is_int, edge))
            for edge in skeleton
        ):
            report.skip(item, "'skeleton' must be a list of [i, j] integer pairs")
        else:
            first[id_] = index
            categories[id_] = {
                "name": name.strip(),
                "supercategory": str(category.get("supercategory") or ""),
                "keypoints": keypoints,
                "skeleton": skeleton,
            }
    return categories


def _images(data: dict[str, Any], images_dir: Path, report: ImportReport) -> dict[int, ImageEntry]:
    entries: dict[int, ImageEntry] = {}
    first: dict[int, int] = {}
    for index, raw in enumerate(data["images"]):
        item = f"images[{index}]"
        image = _check_fields(item, raw, ("id", "file_name"), report)
        if image is None:
            continue
        id_, name = image["id"], image["file_name"]
        if not _is_int(id_):
            report.skip(item, f"'id' must be an integer, got {_type_name(id_)}")
            continue
        if not isinstance(name, str) or not name.strip():
            report.skip(item, "'file_name' must be a non-empty string")
            continue
        if "\x00" in name:
            report.skip(item, f"'file_name' {name!r} contains a NUL byte")
            continue
        # Windows tools write "sub\a.jpg": on POSIX that is one odd name, never found.
        name = name.replace("\\", "/")
        item = f"images[{index}] ({name})"
        if id_ in first:
            report.skip(item, f"duplicate image id {id_} (first at images[{first[id_]}])")
            continue
        size = []
        for key in ("width", "height"):
            value = image.get(key)
            if value is not None and not (_is_int(value) and value > 0):
                report.skip(item, f"'{key}' must be a positive integer, got {value!r}")
                break
            size.append(value)
        else:
            first[id_] = index
            entries[id_] = ImageEntry(item, images_dir / name, size[0], size[1])
    return entries


def _annotation(
    index: int,
    raw: Any,
    images: dict[int, ImageEntry],
    categories: dict[int, dict[str, Any]],
    report: ImportReport,
) -> dict[str, Any] | None:
    """A structurally valid annotation (not yet checked against its image), or None."""
    item = f"annotations[{index}]"
    ann = _check_fields(item, raw, ("id", "image_id", "category_id", "bbox"), report)
    if ann is None:
        return None
    reason = _why_bad(ann, images, categories)
    if reason:
        report.skip(item, reason)
        return None
    return ann


def _why_bad(
    ann: dict[str, Any], images: dict[int, ImageEntry], categories: dict[int, dict[str, Any]]
) -> str | None:
    """What is wrong with an annotation that has every required key, or None."""
    for key in ("id", "image_id", "category_id"):
        if not _is_int(ann[key]):
            return f"'{key}' must be an integer, got {_type_name(ann[key])}"
    if ann["image_id"] not in images:
        return f"image_id {ann['image_id']} is not an image of the file"
    if ann["category_id"] not in categories:
        return f"unknown category id {ann['category_id']}"
    bbox = ann["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(is_number, bbox)):
        return f"'bbox' must be four numbers [x, y, w, h], got {bbox!r}"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"'bbox' {bbox} has a negative width or height (rejected)"
    segmentation = ann.get("segmentation")
    if segmentation not in (None, []) and (why := check_segmentation(segmentation)):
        return why
    iscrowd = ann.get("iscrowd", 0)
    if iscrowd not in (0, 1) or isinstance(iscrowd, bool):
        return f"'iscrowd' must be 0 or 1, got {iscrowd!r}"
    area = ann.get("area")
    if area is not None and not (is_number(area) and area >= 0):
        return f"'area' must be a non-negative number, got {area!r}"
    score = ann.get("score")
    if score is not None and not is_number(score):
        return f"'score' must be a number, got {score!r}"
    keypoints = ann.get("keypoints")
    if keypoints is not None:
        return _check_keypoints(keypoints, categories, ann)
    return None


def _check_keypoints(
    keypoints: Any, categories: dict[int, dict[str, Any]], ann: dict[str, Any]
) -> str | None:
    if not isinstance(keypoints, list) or not all(map(is_number, keypoints)):
        return "'keypoints' must be a flat list of numbers [x, y, v, ...]"
    names = categories[ann["category_id"]]["keypoints"]
    if names and len(keypoints) not in (0, 3 * len(names)):
        return f"'keypoints' has {len(keypoints)} values; the category has {len(names)} keypoints"
    if len(keypoints) % 3:
        return f"'keypoints' has {len(keypoints)} values, not a multiple of 3"
    return None


def import_coco(
    project: Project,
    json_path: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    folder: str = "train",
    progress: bool = False,
) -> ImportReport:
    """Import a COCO JSON file: its categories (matched by name), images and annotations.

    ``file_name`` is relative to ``images_dir`` (the project's images root by default);
    backslashes in it are read as ``/``.
    Bad categories, images and annotations are skipped and named in the report; boxes
    poking out of their image are clipped and reported; the rest is imported. Imported
    images are ``reviewed`` (a person labeled them) and go to ``folder``.

    Example:
        >>> report = import_coco(project, "instances.json", folder="train")  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
        128 images added, 0 already in the project, 939 annotations added, 80 categories added
    """
    data = load_coco_json(json_path)
    report = ImportReport()
    directory = images_dir_of(project, images_dir)
    categories = _categories(data, report)
    images = _images(data, directory, report)

    valid: list[tuple[str, dict[str, Any]]] = []
    first: dict[int, int] = {}
    for index, raw in enumerate(data.get("annotations", [])):
        image_id = raw.get("image_id") if isinstance(raw, dict) else None
        if type(image_id) is int and image_id in images:  # counted even if invalid below
            images[image_id].declared += 1
        ann = _annotation(index, raw, images, categories, report)
        if ann is None:
            continue
        if ann["id"] in first:
            report.skip(
                f"annotations[{index}]",
                f"duplicate annotation id {ann['id']} (first at annotations[{first[ann['id']]}])",
            )
            continue
        first[ann["id"]] = index
        images[ann["image_id"]].annotations.append(ann)
        valid.append((f"annotations[{index}]", ann))

    category_ids = _add_categories(project, categories, report)
    item_of = {id(ann): item for item, ann in valid}
    rows = []
    resolved = resolve_images(
        project, list(images.values()), report, folder=folder, status="reviewed", progress=progress
    )
    placed = {id(entry) for entry, _ in resolved}
    for entry in images.values():
        if id(entry) not in placed:
            for ann in entry.annotations:
                report.skip(item_of[id(ann)], f"its image ({entry.item}) was skipped")
    for entry, image in resolved:
        for ann in entry.annotations:
            if ann["category_id"] not in category_ids:
                report.skip(item_of[id(ann)], "its category's name was refused")
                continue
            values = _values(item_of[id(ann)], ann, image.width, image.height, report)
            if values is not None:
                values["category_id"] = category_ids[ann["category_id"]]
                rows.append((image, values))
    commit_images(project, resolved, rows, report, source=SOURCE, progress=progress)
    return report


def _add_categories(
    project: Project, categories: dict[int, dict[str, Any]], report: ImportReport
) -> dict[int, int]:
    """File category id -> project category id, creating categories by name as needed."""
    known = {category.name for category in project.categories()}
    ids = {}
    for file_id, category in categories.items():
        try:
            added = project.add_category(
                category["name"],
                supercategory=category["supercategory"],
                keypoints=category["keypoints"],
                skeleton=category["skeleton"],
            )
        except ProjectError as exc:  # a name no format could hold (a newline...)
            report.skip(f"categories[id {file_id}]", str(exc))
            continue
        if added.name not in known:
            report.categories_added += 1
            known.add(added.name)
        ids[file_id] = added.id
    return ids


def _values(
    item: str, ann: dict[str, Any], width: int, height: int, report: ImportReport
) -> dict[str, Any] | None:
    """The store's values for a valid annotation on an image of the given size."""
    segmentation = ann.get("segmentation") or None
    if isinstance(segmentation, dict) and segmentation["size"] != [height, width]:
        report.skip(
            item,
            f"RLE size {segmentation['size']} is not the image's [height, width] "
            f"[{height}, {width}]",
        )
        return None
    bbox, clipped = clip_box(ann["bbox"], width, height)
    if clipped:
        if bbox[2] <= 0 or bbox[3] <= 0:
            report.skip(item, f"'bbox' {ann['bbox']} lies outside the image {width}x{height}")
            return None
        report.clip(item, clipped)
    area = ann.get("area")
    if area is None or (clipped and segmentation is None):
        area = mask_area(segmentation, height, width) if segmentation else bbox[2] * bbox[3]
    keypoints = ann.get("keypoints") or None
    return {
        "bbox": bbox,
        "segmentation": segmentation,
        "keypoints": keypoints,
        "iscrowd": int(ann.get("iscrowd", 0)),
        "area": float(area),
        "score": ann.get("score"),
    }


def export_coco(
    project: Project,
    out_path: str | os.PathLike[str],
    *,
    folders: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    include_predictions: bool = False,
) -> dict[str, int]:
    """Write the project (or some folders / statuses) as a COCO JSON file.

    Image ids and category ids are the project's; ``file_name`` is the path relative to
    the images root. Predictions waiting for review are left out unless
    ``include_predictions`` (then they carry their ``score``); images not reviewed yet
    with nothing to export are left out. The file is replaced atomically, so a reader
    never sees half of it.

    Example:
        >>> export_coco(project, "train.json", folders="train", status="reviewed")  # doctest: +SKIP
        {'images': 160, 'annotations': 174, 'categories': 1}
    """
    target = Path(out_path).absolute()
    with (
        atomic_writer(target, "w", encoding="utf-8", buffering=1 << 20) as out,
        project.read() as connection,
    ):
        counts = _write_coco(out, project, connection, folders, status, include_predictions)
    return counts


def _write_coco(
    out: Any,
    project: Project,
    connection: sqlite3.Connection,
    folders: str | Sequence[str] | None,
    status: str | Sequence[str] | None,
    include_predictions: bool,
) -> dict[str, int]:
    categories = []
    for category in project.categories():
        entry: dict[str, Any] = {
            "id": category.id,
            "name": category.name,
            "supercategory": category.supercategory,
        }
        if category.keypoints:
            entry["keypoints"] = category.keypoints
            entry["skeleton"] = category.skeleton
        categories.append(entry)
    images, annotations = iter_export_rows(
        project, connection, folders, status, include_predictions=include_predictions
    )
    info = {
        "description": f"exported by annowidget from {project.root.name}",
        "date_created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    out.write('{"info":' + json.dumps(info) + ',"licenses":[],"categories":')
    out.write(json.dumps(categories, separators=(",", ":")))
    out.write(',"images":')
    out.write(
        json.dumps(
            [{"id": i, "file_name": p, "width": w, "height": h} for i, p, w, h, _ in images],
            separators=(",", ":"),
        )
    )
    out.write(',"annotations":[')
    count = _write_annotations(out, annotations())
    out.write("]}\n")
    return {"images": len(images), "annotations": count, "categories": len(categories)}


def _write_annotations(out: Any, rows: Any) -> int:
    # One %-format per row, with the stored JSON of masks and keypoints pasted in as is:
    # no dict per annotation and no re-parsing, which is what makes the export fast.
    # %r of a float is what json writes for it (float.__repr__).
    box = '{"id":%d,"image_id":%d,"category_id":%d,"bbox":[%r,%r,%r,%r],"area":%r,"iscrowd":%d'
    parts: list[str] = []
    count = 0
    for image_id, id_, category_id, x, y, w, h, seg, kps, nkps, crowd, area, score in rows:
        text = box % (id_, image_id, category_id, x, y, w, h, area, crowd)
        text += ',"segmentation":' + (seg or "[]")
        if kps is not None:
            text += f',"keypoints":{kps},"num_keypoints":{nkps}'
        if score is not None:
            text += f',"score":{score!r}'
        parts.append(text + "}")
        count += 1
        if len(parts) == 10_000:
            out.write(("," if count > len(parts) else "") + ",".join(parts))
            parts.clear()
    if parts:
        out.write(("," if count > len(parts) else "") + ",".join(parts))
    return count
