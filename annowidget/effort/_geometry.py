"""Box overlap in COCO's convention: ``[x, y, w, h]`` boxes, areas without a +1 pixel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = Sequence[float]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``[x, y, w, h]`` boxes (0.0 when both are empty).

    Example:
        >>> box_iou([0, 0, 10, 10], [5, 0, 10, 10])
        0.3333333333333333
    """
    return float(iou_matrix([a], [b])[0, 0])


def iou_matrix(boxes_a: Sequence[Box], boxes_b: Sequence[Box]) -> np.ndarray:
    """IoU of every box of ``boxes_a`` (rows) with every box of ``boxes_b`` (columns).

    Example:
        >>> iou_matrix([[0, 0, 2, 2]], [[0, 0, 2, 2], [4, 4, 1, 1]]).tolist()
        [[1.0, 0.0]]
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ax1, ay1, aw, ah = (a[:, i, None] for i in range(4))
    bx1, by1, bw, bh = (b[None, :, i] for i in range(4))
    inter_w = np.clip(np.minimum(ax1 + aw, bx1 + bw) - np.maximum(ax1, bx1), 0.0, None)
    inter_h = np.clip(np.minimum(ay1 + ah, by1 + bh) - np.maximum(ay1, by1), 0.0, None)
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
