"""Greedy matching of detections to ground truth and COCO's 101-point average precision.

This reproduces ``pycocotools.COCOeval`` for boxes at one IoU threshold, area range "all"
and at most 100 detections per image and class (a test checks the two agree), without its
printing and its per-call setup, so scoring a few reviewed images stays instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from annowidget.effort._geometry import iou_matrix

MAX_DETECTIONS = 100  # per image and class, as COCOeval's default maxDets[-1]
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class Box:
    """A ground-truth box (``score`` None) or a detection, ``bbox`` as ``[x, y, w, h]``."""

    category_id: int
    bbox: Sequence[float]
    score: float | None = None


@dataclass
class CategoryMatches:
    """Per class: every detection's score, whether it matched, its rank in its image."""

    ground_truth: int = 0
    scores: list[float] = field(default_factory=list)
    matched: list[bool] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)


def match(
    images: Iterable[tuple[Sequence[Box], Sequence[Box]]], iou_threshold: float
) -> dict[int, CategoryMatches]:
    """Match each image's detections to its ground truth, class by class, COCO's way.

    Detections are taken by decreasing score; each takes the still-free ground-truth box of
    its class with the highest IoU, if that IoU is at least ``iou_threshold``.

    Example:
        >>> gt, det = [Box(1, [0, 0, 10, 10])], [Box(1, [1, 0, 10, 10], 0.9)]
        >>> match([(det, gt)], 0.5)[1].matched
        [True]
    """
    threshold = min(iou_threshold, 1 - 1e-10)
    result: dict[int, CategoryMatches] = {}
    for detections, truths in images:
        categories = {b.category_id for b in detections} | {b.category_id for b in truths}
        for category in sorted(categories):
            entry = result.setdefault(category, CategoryMatches())
            gts = [b.bbox for b in truths if b.category_id == category]
            dts = sorted(
                (b for b in detections if b.category_id == category),
                key=lambda b: -float(b.score or 0.0),
            )
            entry.ground_truth += len(gts)
            ious = iou_matrix([d.bbox for d in dts], gts)
            taken = np.zeros(len(gts), dtype=bool)
            for rank, detection in enumerate(dts):
                best, best_iou = -1, threshold
                for g in range(len(gts)):
                    # ">=" keeps the last of equal candidates, as COCOeval does.
                    if not taken[g] and ious[rank, g] >= best_iou:
                        best, best_iou = g, ious[rank, g]
                if best >= 0:
                    taken[best] = True
                entry.scores.append(float(detection.score or 0.0))
                entry.matched.append(best >= 0)
                entry.ranks.append(rank)
    return result


def average_precision(entry: CategoryMatches) -> float | None:
    """COCO's 101-point interpolated AP of one class; ``None`` when it has no ground truth.

    Example:
        >>> round(average_precision(CategoryMatches(1, [0.9], [True], [0])), 6)
        1.0
    """
    if entry.ground_truth == 0:
        return None
    keep = np.asarray(entry.ranks, dtype=np.int64) < MAX_DETECTIONS
    scores = np.asarray(entry.scores, dtype=np.float64)[keep]
    matched = np.asarray(entry.matched, dtype=bool)[keep]
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(matched[order])
    fp = np.cumsum(~matched[order])
    if len(tp) == 0:
        return 0.0
    recall = tp / entry.ground_truth
    precision = tp / (tp + fp + np.spacing(1))
    # The precision envelope: the best precision reachable at this recall or beyond.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    indices = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(indices < len(precision), precision[np.minimum(indices, len(tp) - 1)], 0.0)
    return float(sampled.mean())
