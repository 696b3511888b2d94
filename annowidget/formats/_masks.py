"""Checking COCO masks (polygons and RLE) before they reach pycocotools or the store.

pycocotools trusts its input: an RLE whose run lengths do not add up to the image makes its
C decoder write past its buffer. So every RLE is checked here, in Python, first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from annowidget.formats._common import is_number


def check_segmentation(value: Any) -> str | None:
    """Why ``value`` is not a COCO segmentation (polygon list or RLE dict), or None if it is.

    Example:
        >>> check_segmentation([[0, 0, 4, 0, 4, 4]]) is None
        True
        >>> check_segmentation([[0, 0, 4]])
        "'segmentation'[0] must have at least 3 (x, y) points, got 3 numbers"
    """
    if isinstance(value, list):
        for index, polygon in enumerate(value):
            where = f"'segmentation'[{index}]"
            if not isinstance(polygon, list) or not all(is_number(v) for v in polygon):
                return f"{where} must be a list of numbers"
            if len(polygon) < 6 or len(polygon) % 2:
                return f"{where} must have at least 3 (x, y) points, got {len(polygon)} numbers"
        return None
    if isinstance(value, dict):
        return _check_rle(value)
    return f"'segmentation' must be a list of polygons or an RLE object, got {type(value).__name__}"


def _check_rle(rle: dict[str, Any]) -> str | None:
    size, counts = rle.get("size"), rle.get("counts")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        return "'segmentation'.size must be [height, width] (positive integers)"
    height, width = size
    if isinstance(counts, str):
        runs = decode_counts(counts)
        if runs is None:
            return "'segmentation'.counts is not a valid compressed RLE string"
    elif isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            return "'segmentation'.counts must be non-negative integers"
        runs = counts
    else:
        return "'segmentation'.counts must be a list of run lengths or a compressed string"
    if sum(runs) != height * width:
        return (
            f"'segmentation'.counts cover {sum(runs)} pixels, "
            f"the mask size {height}x{width} has {height * width}"
        )
    return None


def decode_counts(text: str) -> list[int] | None:
    """Run lengths of a compressed COCO RLE string, or None if it is malformed.

    The same algorithm as pycocotools' ``rleFrString`` (6-bit chunks, offsets from the run
    two back), written out so a bad string is rejected instead of crashing the decoder.

    Example:
        >>> decode_counts(";230004")
        [11, 2, 3, 2, 3, 2, 7]
    """
    counts: list[int] = []
    position, length = 0, len(text)
    while position < length:
        value, shift, more = 0, 0, True
        while more:
            if position >= length:
                return None
            chunk = ord(text[position]) - 48
            if not 0 <= chunk < 64:
                return None
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            return None
        counts.append(value)
    return counts


def mask_area(segmentation: list[list[float]] | dict[str, Any], height: int, width: int) -> float:
    """The pixel area of a checked polygon list or RLE, as COCO computes it."""
    if isinstance(segmentation, dict):
        rle = segmentation
        if isinstance(rle["counts"], list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        return float(mask_utils.area(rle))
    rles = mask_utils.frPyObjects(segmentation, height, width)
    return float(mask_utils.area(mask_utils.merge(rles)))


def polygon_bounds(points: Sequence[float]) -> tuple[float, float, float, float]:
    """The ``[x, y, w, h]`` box around a flat ``[x1, y1, x2, y2, ...]`` polygon."""
    coords = np.asarray(points, dtype=float).reshape(-1, 2)
    x0, y0 = coords.min(axis=0)
    x1, y1 = coords.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
