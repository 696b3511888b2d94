"""Free ongoing evaluation: every reviewed image scores the model that pre-labeled it.

When a person corrects a model's predictions, the corrected image is a test image the model
never trained on (it predicted before the image was labeled). So each model can be scored on
the images it pre-labeled, with no held-out test set.

For each model, on each image it pre-labeled that is reviewed now, its *original*
predictions (as the model wrote them: recovered from the log's ``before`` payloads for boxes
that were edited, accepted or rejected, and from the rows themselves for boxes still
pending) are compared with the image's reviewed annotations as they are now:

* **precision / recall** at ``iou`` (0.5 by default), counting predictions whose score is at
  least ``threshold`` (:data:`DEFAULT_THRESHOLD`, the app's default score threshold, unless
  asked otherwise: every view of these numbers says which threshold it used); matching is
  per class, greedy by decreasing score (COCO's rule).
* **ap50**: COCO's 101-point interpolated AP at IoU 0.5 over all predictions whatever their
  score, averaged over the classes that have ground truth on these images; it reproduces
  ``pycocotools.COCOeval``'s AP50 on the same boxes (a test checks it).

An image counts for a model only if a person worked on it while that model's predictions
were on it and none of them was replaced unseen by a later prediction run (their content is
then lost). When a model pre-labeled an image twice, the later run counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from annowidget.effort import _ap, _replay
from annowidget.store import Project

#: The score a prediction needs to count for precision and recall, unless asked otherwise:
#: the same default as the Predict tab's and the Annotator's threshold.
DEFAULT_THRESHOLD = 0.5
#: The IoU at which a prediction matches a reviewed box.
DEFAULT_IOU = 0.5


@dataclass(frozen=True)
class ModelScore:
    """How one model did on the images people corrected after it pre-labeled them.

    ``precision`` is ``None`` when no prediction reached the threshold, ``recall`` when the
    images hold no reviewed box, ``ap50`` when no class has ground truth.

    Example:
        >>> ModelScore("round-1", images=4, ground_truth=10, predictions=8,
        ...            true_positives=6, precision=0.75, recall=0.6, ap50=0.58).recall
        0.6
    """

    model: str
    images: int
    ground_truth: int
    predictions: int
    true_positives: int
    precision: float | None
    recall: float | None
    ap50: float | None
    ap50_per_category: dict[int, float] = field(default_factory=dict)
    image_ids: tuple[int, ...] = ()
    threshold: float = DEFAULT_THRESHOLD  # the score precision and recall counted from
    iou: float = DEFAULT_IOU


def ongoing_evaluation(
    project: Project, *, iou: float = DEFAULT_IOU, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, ModelScore]:
    """Score every model on the reviewed images it pre-labeled, in the order models first ran.

    Example:
        >>> # for name, score in ongoing_evaluation(project).items():
        >>> #     print(name, score.images, score.precision, score.recall, score.ap50)
    """
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou!r}")
    replayed = _replay.replay_project(project, idle_gap=float("inf"))
    latest: dict[str, dict[int, list[_ap.Box]]] = {}
    for session in replayed.sessions:
        if session.model is None or not session.worked:
            continue  # browsing past predictions is not correcting them
        if replayed.status.get(session.image_id) != "reviewed":
            continue
        fates = _replay.fates(session, replayed.pending)
        if any(f.outcome == _replay.SUPERSEDED or f.original is None for f in fates):
            continue
        predictions = [
            _ap.Box(f.original["category_id"], f.original["bbox"], _score(f.original))
            for f in fates
            if f.original is not None
        ]
        # Sessions come oldest first, so a later run of the same model overwrites.
        latest.setdefault(session.model, {})[session.image_id] = predictions
    scored = sorted({image_id for per_image in latest.values() for image_id in per_image})
    truths = {
        image_id: [_ap.Box(a.category_id, a.bbox) for a in rows if not a.is_prediction]
        for image_id, rows in project.annotations_for(scored).items()
    }
    return {
        model: _score_model(model, per_image, truths, iou, threshold)
        for model, per_image in latest.items()
    }


def _score(annotation: dict) -> float:
    score = annotation.get("score")
    return 1.0 if score is None else float(score)


def _score_model(
    model: str,
    predictions: dict[int, list[_ap.Box]],
    truths: dict[int, list[_ap.Box]],
    iou: float,
    threshold: float,
) -> ModelScore:
    image_ids = sorted(predictions)  # COCOeval's order, which decides ties between scores
    pairs = [(predictions[i], truths[i]) for i in image_ids]
    above = [([b for b in dets if (b.score or 0.0) >= threshold], gts) for dets, gts in pairs]
    at_threshold = _ap.match(above, iou)
    ground_truth = sum(len(gts) for _, gts in pairs)
    n_predictions = sum(len(dets) for dets, _ in above)
    true_positives = sum(sum(m.matched) for m in at_threshold.values())
    per_category = {
        category: ap
        for category, entry in sorted(_ap.match(pairs, 0.5).items())
        if (ap := _ap.average_precision(entry)) is not None
    }
    return ModelScore(
        model=model,
        images=len(image_ids),
        ground_truth=ground_truth,
        predictions=n_predictions,
        true_positives=true_positives,
        precision=true_positives / n_predictions if n_predictions else None,
        recall=true_positives / ground_truth if ground_truth else None,
        ap50=_mean(list(per_category.values())),
        ap50_per_category=per_category,
        image_ids=tuple(image_ids),
        threshold=threshold,
        iou=iou,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
