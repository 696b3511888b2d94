"""Semantic masks as PNG label maps: one image-sized PNG per image, a pixel's value is its class.

Value 0 is background (stored as nothing), ``ignore_index`` (255) is "void" (object borders,
regions nobody could label), and every other value ``v`` is the class ``classes[v]``.
In the project a label map becomes one RLE mask per class present (the Annotator's
semantic mode keeps the same: one mask per class, a pixel in one class only).

Label maps mirror the image paths: ``masks/a/b.png`` is the label map of ``images/a/b.jpg``.
Export writes 8-bit palette PNGs (the colours of Pascal VOC, so they are readable in any
viewer) and a ``classes.txt`` whose line ``v`` names value ``v`` (line 0: ``background``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

from annowidget.formats._classes import load_classes
from annowidget.formats._common import (
    FormatError,
    ImageEntry,
    category_ids,
    commit_images,
    images_dir_of,
    iter_export_rows,
    progress_bar,
    resolve_images,
)
from annowidget.formats._export import check_category_names, staged_directory
from annowidget.formats._report import ImportReport
from annowidget.formats.folder import find_images
from annowidget.store import Project

SOURCE = "import:masks"
BACKGROUND = "background"
MAX_CLASSES = 254  # values 1..254 in an 8-bit PNG; 255 stays "void"
_LABEL_MODES = frozenset({"P", "L", "1", "I", "I;16", "I;16L", "I;16B", "I;16N"})


def _palette() -> list[int]:
    """Pascal VOC's colour map (bits of the index spread over R, G, B), 256 entries."""
    colours = []
    for index in range(256):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours += [r, g, b]
    return colours


_PALETTE = _palette()


def read_label_map(path: str | os.PathLike[str]) -> np.ndarray:
    """The class values of a PNG label map as an ``(H, W)`` integer array.

    Palette (``P``), 8-bit and 16-bit grey PNGs are label maps; colour PNGs are refused
    (their colours would have to be mapped back to classes). ``FormatError`` names the file.

    Example:
        >>> read_label_map("masks/2007_000032.png").dtype  # doctest: +SKIP
        dtype('uint8')
    """
    from annowidget.store.images import MAX_PIXELS

    file = Path(path)
    try:
        with PILImage.open(file) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise FormatError(f"{file}: {width}x{height} pixels is over the limit")
            if image.mode not in _LABEL_MODES:
                raise FormatError(
                    f"{file}: a {image.mode} image is not a label map "
                    "(expected an indexed or grey PNG whose pixel values are class numbers)"
                )
            image.load()
            values = np.asarray(image)
    except FormatError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, PILImage.DecompressionBombError) as exc:
        raise FormatError(f"{file}: cannot read the label map ({exc})") from exc
    return values.astype(np.uint8) if values.dtype == bool else values


def _encode(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _class_masks(
    path: Path, names: dict[int, str], ignore_index: int | None
) -> tuple[tuple[int, int], dict[int, dict[str, Any]]] | str:
    """``(shape, {value: RLE})`` for each class (and void) of a label map, or why it is bad.

    Runs in a worker thread; only the compact RLEs are kept, never the decoded maps.
    """
    try:
        values = read_label_map(path)
    except FormatError as exc:
        return str(exc)
    present = [int(v) for v in np.unique(values)]
    unknown = [v for v in present if v != 0 and v != ignore_index and v not in names]
    if unknown:
        shown = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        return f"value(s) {shown} not in the class list (values 1..{max(names, default=0)})"
    shape = (int(values.shape[0]), int(values.shape[1]))
    return shape, {v: _encode(values == v) for v in present if v != 0}


def import_label_maps(
    project: Project,
    masks_dir: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    classes: Sequence[str] | str | os.PathLike[str],
    folder: str = "train",
    ignore_index: int | None = 255,
    void_category: str | None = None,
    progress: bool = False,
) -> ImportReport:
    """Import PNG label maps as one RLE mask per class present in each image.

    ``classes`` names the pixel values: a list (``classes[v]`` is value ``v``; entry 0 is
    the background's name and is never stored), a ``classes.txt`` (line ``v``), or a YAML
    ``names`` mapping. Pixels equal to ``ignore_index`` are void: with ``void_category``
    they are stored as an ``iscrowd`` mask of that category, which training ignores, else
    they are left unlabeled (read as background) and the report says so. Only images that
    have a label map are imported; they are ``reviewed``. A label map with a value the
    class list lacks, of another size than its image, or not a label map at all is
    skipped and named.

    Example:
        >>> report = import_label_maps(project, "VOC2012/SegmentationClass",
        ...                            images_dir="VOC2012/JPEGImages",
        ...                            classes="classes.txt")  # doctest: +SKIP
        >>> report.annotations_added  # doctest: +SKIP
        3507
    """
    names = load_classes(classes)
    if ignore_index is not None and not 0 < int(ignore_index) <= 65535:
        raise FormatError(f"ignore_index must be between 1 and 65535, got {ignore_index!r}")
    if ignore_index is not None and ignore_index in names:
        raise FormatError(
            f"value {ignore_index} is both a class ({names[ignore_index]!r}) and ignore_index"
        )
    masks_root = Path(masks_dir).absolute()
    if not masks_root.is_dir():
        raise FormatError(f"{masks_root}: the masks directory does not exist")
    images_root = images_dir_of(project, images_dir)
    report = ImportReport()
    images: dict[str, Path] = {}
    for path in find_images(images_root):
        images.setdefault(path.relative_to(images_root).with_suffix("").as_posix(), path)
    pairs: list[tuple[str, Path, Path]] = []
    for mask_file in find_images(masks_root):
        if mask_file.suffix.lower() != ".png":
            continue
        item = mask_file.relative_to(masks_root).as_posix()
        image = images.get(mask_file.relative_to(masks_root).with_suffix("").as_posix())
        if image is None or image == mask_file:
            report.skip(item, f"no image with this name under {images_root}")
            continue
        pairs.append((item, mask_file, image))

    masks = [mask for _, mask, _ in pairs]
    workers = max(1, min(4, os.cpu_count() or 1))  # PNG decoding releases the GIL
    with ThreadPoolExecutor(max_workers=workers) as pool:
        loaded = progress_bar(
            pool.map(lambda mask: _class_masks(mask, names, ignore_index), masks),
            total=len(pairs),
            desc="reading label maps",
            enabled=progress,
        )
        entries: list[ImageEntry] = []
        for (item, _, image), found in zip(pairs, loaded, strict=True):
            if isinstance(found, str):
                report.skip(item, found)
                continue
            entry = ImageEntry(f"{item} ({image.name})", image)
            entry.annotations.append({"item": item, "shape": found[0], "masks": found[1]})
            entries.append(entry)

    # Every named class, in value order (absent ones too): the project's categories, and so
    # a model's labels and an exported label map's values, follow the class list.
    wanted = [names[v] for v in sorted(names) if v != 0]
    if void_category:
        wanted.append(void_category)
    category = category_ids(project, report, wanted)

    # Images go in unlabeled; the ones whose label map fits become reviewed below.
    resolved = resolve_images(
        project, entries, report, folder=folder, status="unlabeled", progress=progress
    )
    rows, reviewed = [], []
    for entry, image in resolved:
        data = entry.annotations[0]
        if data["shape"] != (image.height, image.width):
            report.skip(
                data["item"],
                f"label map is {data['shape'][1]}x{data['shape'][0]}, its image "
                f"{image.width}x{image.height} (after EXIF orientation)",
            )
            continue
        reviewed.append(image)
        image.status = "reviewed"
        for value, rle in data["masks"].items():
            compressed = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            area = float(mask_utils.area(compressed))
            crowd = value == ignore_index
            if crowd and not void_category:
                report.warn(
                    data["item"],
                    f"{area:.0f} void pixels (value {value}) left unlabeled; "
                    "pass void_category to keep them out of training",
                )
                continue
            name = str(void_category) if crowd else names[value]
            values = {
                "category_id": category[name],
                "bbox": tuple(float(v) for v in mask_utils.toBbox(compressed)),
                "segmentation": rle,
                "iscrowd": int(crowd),
                "area": area,
            }
            rows.append((image, values))
    commit_images(
        project,
        resolved,
        rows,
        report,
        source=SOURCE,
        empty_is_negative=True,
        progress=progress,
    )
    # An all-background label map still means "a person looked: nothing here".
    with_rows = {image.id for image, _ in rows}
    for image in reviewed:
        if image.id is None or image.id in with_rows:
            continue
        if project.image(image.id).status != "reviewed":
            project.set_status(image.id, "reviewed")
    return report


def _decode_segmentation(
    segmentation: str | None, bbox: Sequence[float], height: int, width: int
) -> np.ndarray:
    """The full-size binary mask of a stored annotation (its box when it has no mask)."""
    seg = json.loads(segmentation) if segmentation else None
    if isinstance(seg, dict):
        rle = dict(seg)
        if isinstance(rle["counts"], list):
            rle = mask_utils.frPyObjects(rle, height, width)
        else:
            rle["counts"] = rle["counts"].encode("ascii")
        return mask_utils.decode(rle).astype(bool)
    if isinstance(seg, list) and seg:
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        return mask_utils.decode(rle).astype(bool)
    mask = np.zeros((height, width), dtype=bool)
    x, y, w, h = bbox
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    mask[y0:y1, x0:x1] = True
    return mask


def export_label_maps(
    project: Project,
    out_dir: str | os.PathLike[str],
    *,
    folders: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    ignore_index: int = 255,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write ``out_dir/<image path>.png`` label maps and ``out_dir/classes.txt``.

    Value ``i`` is the ``i``-th category in id order (1..N; 0 is background), as the
    semantic model's labels are. Masks are painted as training reads them: larger objects
    first so smaller ones stay visible, boxes without a mask as their box, ``iscrowd``
    regions as ``ignore_index``. Images not reviewed yet with no annotation get no file.
    The folder appears complete or not at all; one that has files is replaced whole,
    only with ``overwrite``. A category name with a control character raises first.

    Example:
        >>> export_label_maps(project, "label_maps", folders="train")  # doctest: +SKIP
        {'images': 40, 'annotations': 75, 'classes': 2}
    """
    categories = project.categories()
    if len(categories) > MAX_CLASSES:
        raise FormatError(
            f"{len(categories)} categories do not fit an 8-bit label map (at most {MAX_CLASSES})"
        )
    if not 0 < int(ignore_index) <= 255:
        raise FormatError(f"ignore_index must be between 1 and 255, got {ignore_index!r}")
    check_category_names(((c.id, c.name) for c in categories), "label map")
    value = {category.id: index + 1 for index, category in enumerate(categories)}
    lines = [BACKGROUND, *(c.name for c in categories)]
    with project.read() as connection:
        images, annotations = iter_export_rows(
            project, connection, folders, status, include_predictions=False
        )
        by_image = {
            image_id: list(rows) for image_id, rows in groupby(annotations(), key=lambda r: r[0])
        }
    written = count = 0
    protect = (project.root, project.images_root)
    with staged_directory(out_dir, overwrite=overwrite, protect=protect) as out:
        (out / "classes.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        for image_id, path, width, height, _status in images:
            label_map = np.zeros((height, width), dtype=np.uint8)
            rows = sorted(by_image.get(image_id, []), key=lambda r: -r[11])  # by area, stable
            for _, _, category_id, x, y, w, h, segmentation, _kps, _n, crowd, _a, _s in rows:
                mask = _decode_segmentation(segmentation, (x, y, w, h), height, width)
                label_map[mask] = ignore_index if crowd else value[category_id]
                count += 1
            image = PILImage.fromarray(label_map)  # "L"; a palette makes it "P", same values
            image.putpalette(_PALETTE)
            target = out / Path(path).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, format="PNG")
            written += 1
    return {"images": written, "annotations": count, "classes": len(categories)}
