"""Checking the geometry an Annotator edit carries, and turning it into store fields.

The front end sends a box, a polygon (COCO rings), a mask (COCO RLE) or keypoints (COCO
triples); each is checked against the image and the category here, and the derived values
the store keeps (COCO's bbox and area of a shape) are computed here, not trusted from the
browser.
"""

from __future__ import annotations

import math
from typing import Any

from pycocotools import mask as mask_utils

from annowidget.store import Category, Image, ProjectError
from annowidget.widgets._masks import mask_from_front_end

__all__ = ["check_bbox", "keypoint_values", "polygon_fields", "shape_fields"]

_SLACK = 1.0  # pixels: rounding on the front end may land a hair outside the image


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProjectError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _inside(x: float, y: float, image: Image, what: str) -> None:
    if not (-_SLACK <= x <= image.width + _SLACK and -_SLACK <= y <= image.height + _SLACK):
        raise ProjectError(
            f"{what} ({x:g}, {y:g}) is outside image {image.path} ({image.width}x{image.height})"
        )


def check_bbox(value: Any, image: Image) -> list[float]:
    """A box from the front end: four numbers, a positive size, inside the image (1 px slack).

    Example:
        >>> img = Image(1, "a.jpg", 100, 80, "", "", "unlabeled")
        >>> check_bbox([10, 10, 20, 20], img)
        [10.0, 10.0, 20.0, 20.0]
    """
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise ProjectError(f"bbox must be [x, y, w, h], got {value!r}")
    x, y, w, h = (_number(v, "bbox") for v in value)
    if w <= 0 or h <= 0:
        raise ProjectError(f"bbox must have a positive size, got {value!r}")
    if x < -_SLACK or y < -_SLACK or x + w > image.width + _SLACK or y + h > image.height + _SLACK:
        raise ProjectError(
            f"bbox {value!r} is outside image {image.path} ({image.width}x{image.height})"
        )
    return [x, y, w, h]


def polygon_fields(value: Any, image: Image) -> dict[str, Any]:
    """A COCO polygon from the front end -> ``segmentation``, ``bbox`` and ``area`` (COCO's).

    Example:
        >>> img = Image(1, "a.jpg", 100, 80, "", "", "unlabeled")
        >>> f = polygon_fields([[10, 10, 50, 10, 50, 30, 10, 30]], img)
        >>> f["bbox"], f["area"]
        ([10.0, 10.0, 40.0, 20.0], 800.0)
    """
    if not isinstance(value, list) or not value:
        raise ProjectError(
            f"polygon must be a list of [x1, y1, x2, y2, ...] rings, got {value!r:.80}"
        )
    rings: list[list[float]] = []
    for index, ring in enumerate(value):
        what = f"polygon[{index}]"
        if not isinstance(ring, list) or len(ring) < 6 or len(ring) % 2:
            raise ProjectError(f"{what} must hold at least 3 (x, y) vertices")
        coords = [_number(v, what) for v in ring]
        for x, y in zip(coords[::2], coords[1::2], strict=True):
            _inside(x, y, image, f"{what} vertex")
        rings.append(coords)
    xs = [v for ring in rings for v in ring[::2]]
    ys = [v for ring in rings for v in ring[1::2]]
    bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise ProjectError("polygon encloses no area")
    rle = mask_utils.merge(mask_utils.frPyObjects(rings, image.height, image.width))
    return {"segmentation": rings, "bbox": bbox, "area": float(mask_utils.area(rle))}


def mask_fields(value: Any, image: Image) -> dict[str, Any]:
    """A painted mask (COCO RLE) -> ``segmentation``, ``bbox`` and ``area``."""
    stored = mask_from_front_end(value, image.height, image.width)
    return {"segmentation": stored.segmentation, "bbox": stored.bbox, "area": stored.area}


def keypoint_values(value: Any, category: Category, image: Image) -> list[float]:
    """COCO keypoints from the front end, checked against the category's names.

    Absent points (v = 0) are stored at (0, 0), as COCO says.

    Example:
        >>> person = Category(1, "person", keypoints=["nose", "eye"])
        >>> img = Image(1, "a.jpg", 100, 80, "", "", "unlabeled")
        >>> keypoint_values([5, 6, 2, 9, 9, 0], person, img)
        [5.0, 6.0, 2, 0.0, 0.0, 0]
    """
    names = category.keypoints
    if not names:
        raise ProjectError(f"category {category.name!r} has no keypoints")
    if not isinstance(value, list) or len(value) != 3 * len(names):
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise ProjectError(
            f"keypoints of {category.name!r} must be {3 * len(names)} numbers "
            f"(x, y, v for {', '.join(names)}), got {got}"
        )
    out: list[float] = []
    for index, name in enumerate(names):
        x = _number(value[3 * index], f"keypoint {name!r} x")
        y = _number(value[3 * index + 1], f"keypoint {name!r} y")
        v = value[3 * index + 2]
        if v not in (0, 1, 2) or isinstance(v, bool):
            raise ProjectError(f"keypoint {name!r} visibility must be 0, 1 or 2, got {v!r}")
        if v:
            _inside(x, y, image, f"keypoint {name!r}")
            out += [x, y, int(v)]
        else:
            out += [0.0, 0.0, 0]
    return out


def shape_fields(command: dict[str, Any], image: Image, category: Category) -> dict[str, Any]:
    """The store fields an ``add``/``update`` command sets (only those it names).

    A mask or polygon decides the box and the area; keypoints keep the box sent with them.
    ``"polygon": None`` (a polygon painted over with the brush) drops the polygon.

    Example:
        >>> img = Image(1, "a.jpg", 100, 80, "", "", "unlabeled")
        >>> cmd = {"bbox": [0, 0, 5, 5], "polygon": [[10, 10, 50, 10, 50, 30]]}
        >>> shape_fields(cmd, img, Category(1, "cat"))["bbox"]
        [10.0, 10.0, 40.0, 20.0]
    """
    fields: dict[str, Any] = {}
    if "bbox" in command:
        fields["bbox"] = check_bbox(command["bbox"], image)
    if command.get("mask") is not None:
        fields.update(mask_fields(command["mask"], image))
    elif command.get("polygon") is not None:
        fields.update(polygon_fields(command["polygon"], image))
    elif "polygon" in command:
        fields["segmentation"] = None
    if command.get("keypoints") is not None:
        fields["keypoints"] = keypoint_values(command["keypoints"], category, image)
    return fields
