"""Round against round on the same test images: AP and AP50 of both models, the number of
test images, and whether the difference is larger than the noise of so few images.

On a handful of test images one box more or less moves AP50 by ten points, and AP
(@[.5:.95]) and AP50 can even move in opposite directions. So both are reported, with a
*paired bootstrap* interval for the difference ``b - a``: the test images are drawn with
replacement ``resamples`` times (the same draw for both models), both models are scored on
each draw, and the central ``confidence`` share of the differences is the interval. When it
holds 0, the difference is within noise. The draws come from a seeded generator, so the same
inputs always give the same interval; each image is matched once per IoU threshold up front,
so a thousand draws take well under a second on a few dozen images.

Scores are COCO's: boxes matched per class greedily by score, 101-point interpolated AP,
AP averaged over IoU 0.50:0.05:0.95 and over the classes with ground truth in the draw (the
matching reproduces ``pycocotools.COCOeval``, see :mod:`annowidget.effort._ap`).

Example:
    >>> # print(compare_rounds(project, "model-1", "model-2", folder="test").text())
    >>> # model-1 -> model-2 on folder 'test' (6 images, 7 boxes):
    >>> #   AP    0.27 -> 0.34  (+0.07; 95% interval -0.05 to +0.19: within noise)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from annowidget.effort import _ap
from annowidget.store import Project, Snapshot

__all__ = ["Difference", "RoundComparison", "bootstrap_difference", "compare_rounds"]

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
DEFAULT_RESAMPLES = 1000
#: The tasks whose models predict boxes, the ones a round comparison scores.
BOX_TASKS = frozenset({"detection", "instance_segmentation", "keypoints"})
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Difference:
    """One metric for models A and B, and the bootstrap interval of ``b - a``.

    Example:
        >>> d = Difference("AP50", 0.83, 0.68, low=-0.40, high=0.05)
        >>> round(d.delta, 2), d.within_noise
        (-0.15, True)
    """

    metric: str
    a: float | None
    b: float | None
    low: float | None = None
    high: float | None = None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def within_noise(self) -> bool:
        """Whether the interval holds 0 (or could not be computed)."""
        if self.low is None or self.high is None:
            return True
        return self.low <= 0.0 <= self.high

    def line(self, confidence: float) -> str:
        """``AP50  0.83 -> 0.68  (-0.15; 95% interval -0.40 to +0.05: within noise)``."""
        if self.a is None or self.b is None or self.delta is None:
            return f"{self.metric:<5} {_value(self.a)} -> {_value(self.b)}"
        head = f"{self.metric:<5} {self.a:.2f} -> {self.b:.2f}  ({self.delta:+.2f}"
        if self.low is None or self.high is None:
            return head + ")"
        verdict = "within noise" if self.within_noise else "beyond noise"
        interval = f"{confidence:.0%} interval {self.low:+.2f} to {self.high:+.2f}"
        return f"{head}; {interval}: {verdict})"


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@dataclass(frozen=True)
class RoundComparison:
    """Two models on the same test images: AP and AP50, each with its bootstrap interval.

    Example:
        >>> c = RoundComparison("m1", "m2", "test", images=6, boxes=7,
        ...     ap=Difference("AP", 0.27, 0.34, -0.05, 0.19),
        ...     ap50=Difference("AP50", 0.83, 0.68, -0.40, 0.05))
        >>> print(c.text().splitlines()[0])
        m1 -> m2 on folder 'test' (6 images, 7 boxes):
    """

    model_a: str
    model_b: str
    folder: str
    images: int
    boxes: int
    ap: Difference
    ap50: Difference
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    confidence: float = 0.95

    def text(self) -> str:
        """Plain text, one line per metric, saying whether each difference is noise."""
        lines = [
            f"{self.model_a} -> {self.model_b} on folder {self.folder!r} "
            f"({self.images} images, {self.boxes} boxes):",
            "  " + self.ap.line(self.confidence),
            "  " + self.ap50.line(self.confidence),
        ]
        if self.images < 30:
            lines.append(
                f"  ({self.images} test images: a few boxes more or less swing these numbers; "
                "label more test images for a firmer verdict)"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


# ---------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class _Curve:
    """One class at one IoU threshold: every detection of every image, by falling score."""

    image: np.ndarray  # the image index of each detection
    matched: np.ndarray  # whether it matched a ground-truth box
    ground_truth: np.ndarray  # ground-truth boxes per image


def _curves(
    detections: Mapping[int, Sequence[_ap.Box]],
    truths: Mapping[int, Sequence[_ap.Box]],
    image_ids: Sequence[int],
) -> dict[tuple[float, int], _Curve]:
    """Match each image once per IoU threshold (COCO's rule, :func:`_ap.match`)."""
    curves = {}
    for t in IOU_THRESHOLDS:
        per_image = [_ap.match([(detections.get(i, ()), truths[i])], t) for i in image_ids]
        for category in sorted({c for entry in per_image for c in entry}):
            images, scores, matched = [], [], []
            counts = np.zeros(len(image_ids))
            for index, entry in enumerate(per_image):
                found = entry.get(category)
                if found is None:
                    continue
                counts[index] = found.ground_truth
                for score, hit, rank in zip(found.scores, found.matched, found.ranks, strict=True):
                    if rank < _ap.MAX_DETECTIONS:
                        images.append(index)
                        scores.append(score)
                        matched.append(hit)
            # A stable sort of the image-ordered list by falling score, as COCOeval sorts.
            order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
            curves[(t, category)] = _Curve(
                np.asarray(images, dtype=np.int64)[order],
                np.asarray(matched, dtype=bool)[order],
                counts,
            )
    return curves


def _average_precision(curve: _Curve, weights: np.ndarray) -> np.ndarray:
    """COCO's 101-point AP of one class for each row of ``weights`` (how many times each
    image is drawn); NaN where a draw holds no ground truth of the class.

    Counting a detection ``k`` times is what drawing its image ``k`` times does: copies of
    one detection are adjacent in score order, and the precision envelope sampled at the
    recall points is the same for ``k`` copies as for one step of weight ``k``.
    """
    ground_truth = weights @ curve.ground_truth
    result = np.full(len(weights), np.nan)
    if len(curve.image) == 0:
        result[ground_truth > 0] = 0.0
        return result
    counted = weights[:, curve.image]
    tp = np.cumsum(counted * curve.matched, axis=1)
    fp = np.cumsum(counted * ~curve.matched, axis=1)
    precision = tp / (tp + fp + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    for row in np.flatnonzero(ground_truth > 0):
        recall = tp[row] / ground_truth[row]
        indices = np.searchsorted(recall, _ap.RECALL_POINTS, side="left")
        sampled = precision[row, np.minimum(indices, len(recall) - 1)]
        result[row] = np.where(indices < len(recall), sampled, 0.0).mean()
    return result


def _scores(curves: Mapping[tuple[float, int], _Curve], weights: np.ndarray) -> np.ndarray:
    """``[AP, AP50]`` for each row of ``weights`` (NaN where no class has ground truth)."""
    per_threshold: dict[float, list[np.ndarray]] = {}
    for (t, _), curve in curves.items():
        per_threshold.setdefault(t, []).append(_average_precision(curve, weights))
    if not per_threshold:
        return np.full((len(weights), 2), np.nan)
    # COCO's AP: the mean over thresholds and classes with ground truth in the draw.
    every = np.stack([v for values in per_threshold.values() for v in values], axis=1)
    at_50 = np.stack(per_threshold[IOU_THRESHOLDS[0]], axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.stack([np.nanmean(every, axis=1), np.nanmean(at_50, axis=1)], axis=1)


def bootstrap_difference(
    detections_a: Mapping[int, Sequence[_ap.Box]],
    detections_b: Mapping[int, Sequence[_ap.Box]],
    truths: Mapping[int, Sequence[_ap.Box]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> tuple[Difference, Difference]:
    """AP and AP50 of A and B on the images of ``truths``, with paired bootstrap intervals.

    Images without detections of a model count with none. Deterministic for a given
    ``seed``.

    Example:
        >>> truth = {1: [_ap.Box(1, [0, 0, 10, 10])], 2: [_ap.Box(1, [20, 20, 10, 10])]}
        >>> a = {1: [_ap.Box(1, [0, 0, 10, 10], 0.9)]}
        >>> b = {1: [_ap.Box(1, [0, 0, 10, 10], 0.9)], 2: [_ap.Box(1, [20, 20, 10, 10], 0.8)]}
        >>> ap, ap50 = bootstrap_difference(a, b, truth, resamples=200)
        >>> (round(ap50.a, 3), ap50.b, ap50.within_noise)  # 101 recall points: 51 at 1.0
        (0.505, 1.0, True)
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    image_ids = sorted(truths)  # COCOeval's order, which decides ties between scores
    if not image_ids:
        return Difference("AP", None, None), Difference("AP50", None, None)
    curves_a = _curves(detections_a, truths, image_ids)
    curves_b = _curves(detections_b, truths, image_ids)
    n = len(image_ids)
    observed_a, observed_b = _scores(curves_a, np.ones((1, n))), _scores(curves_b, np.ones((1, n)))
    draws = np.random.default_rng(seed).integers(0, n, (resamples, n))
    weights = np.stack([np.bincount(draw, minlength=n) for draw in draws]).astype(np.float64)
    deltas = _scores(curves_b, weights) - _scores(curves_a, weights)
    deltas = deltas[~np.isnan(deltas).any(axis=1)]  # draws with no ground truth at all
    tail = (1.0 - confidence) / 2.0 * 100.0
    results = []
    for column, name in enumerate(("AP", "AP50")):
        a, b = _number(observed_a[0, column]), _number(observed_b[0, column])
        if len(deltas) == 0 or a is None or b is None:
            results.append(Difference(name, a, b))
            continue
        low, high = np.percentile(deltas[:, column], [tail, 100.0 - tail])
        results.append(Difference(name, a, b, float(low), float(high)))
    return results[0], results[1]


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


# ---------------------------------------------------------------------- models
def _detections(project: Project, name: str, snapshot: Snapshot, device: str) -> dict:
    """``{image id: [Box]}``: the model's detections in original pixels, project classes.

    The images go through the pipeline the training run's own evaluation uses (the test
    dataset resized to the model's input size, :func:`engine.eval_loader`,
    :func:`coco_eval.to_results`), so on the same images the observed AP and AP50 are the
    ones the model card holds.
    """
    import torch

    from annowidget.models.catalog import model_sizes
    from annowidget.models.predict import category_mapping
    from annowidget.models.registry import ModelRegistry
    from annowidget.train import coco_eval, engine
    from annowidget.train.dataset import SnapshotDataset

    net, card = ModelRegistry(project).load(name, device=device)
    if card.task not in BOX_TASKS:
        raise ValueError(
            f"model {name!r} is a {card.task} model: rounds are compared on boxes "
            f"({', '.join(sorted(BOX_TASKS))} models)"
        )
    to_project = category_mapping(project, card)
    image_size, max_size = model_sizes(card.base_model, card.model_config)  # the catalog's rule
    dataset = SnapshotDataset.from_snapshot(
        project, snapshot, task="detection", image_size=image_size, max_size=max_size
    )
    net.eval()
    result: dict[int, list[_ap.Box]] = {image.id: [] for image, _ in snapshot.items}
    with torch.inference_mode():
        for images, targets in engine.eval_loader(dataset):
            outputs = net([image.to(device) for image in images])
            for output, target in zip(outputs, targets, strict=True):
                entries = coco_eval.to_results(
                    output, target["image_id"], target["scale"], "detection"
                )
                result[int(target["image_id"])] += [
                    _ap.Box(to_project[int(r["category_id"])], r["bbox"], float(r["score"]))
                    for r in entries["bbox"]
                    if int(r["category_id"]) in to_project
                ]
    return result


def compare_rounds(
    project: Project,
    model_a: str,
    model_b: str,
    *,
    folder: str = "test",
    device: str = "cpu",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> RoundComparison:
    """Score two models of the registry on the reviewed images of ``folder``: AP and AP50,
    with paired bootstrap intervals over those images. ``ValueError`` when the folder holds
    no reviewed image.

    Example:
        >>> # print(compare_rounds(project, "model-1", "model-2").text())
    """
    snapshot = project.snapshot(folder)
    if not snapshot.items:
        raise ValueError(
            f"folder {folder!r} has no reviewed images to compare the models on "
            f"(folders: {', '.join(project.folders()) or 'none'})"
        )
    truths = {
        image.id: [_ap.Box(a.category_id, a.bbox) for a in rows if not a.iscrowd]
        for image, rows in snapshot.items
    }
    ap, ap50 = bootstrap_difference(
        _detections(project, model_a, snapshot, device),
        _detections(project, model_b, snapshot, device),
        truths,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
    )
    return RoundComparison(
        model_a,
        model_b,
        folder,
        images=len(snapshot.items),
        boxes=sum(len(t) for t in truths.values()),
        ap=ap,
        ap50=ap50,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
    )
