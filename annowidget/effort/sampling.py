"""Active learning: which image to label next, and which box to look at next inside it.

Candidates are the images nobody reviewed yet (status ``unlabeled`` or ``predicted``),
optionally of some folders. Their pending predictions decide the order:

* ``"least_confident"``: lowest top score first. An image with no prediction counts as top
  score 0, so images the model found nothing on (or that were never predicted) come first:
  for the model they are the most uncertain. Ties: lower image id first. (The Gallery's
  ``"weakest prediction"`` sort is a review order instead: lowest *minimum* score first,
  images with nothing to check last.)
* ``"near_threshold"``: most boxes whose score lies within ``margin`` of ``threshold``
  first (the ones a person must decide about); ties: the box closest to the threshold
  first, then lower image id.
* ``"expected_cost"``: highest expected correction seconds first, reading each score as the
  probability that the box is right. Each shown box (score >= threshold) may be a false
  positive to delete: ``(1 - score) * DELETE_SECONDS``. The image is expected to hold as
  many objects as the reviewed images hold on average (1 when none is reviewed), or as
  many as its scores add up to if more; those not covered by the shown boxes' scores must
  be drawn: ``DRAW_SECONDS`` each. Verifying correct boxes is left out: it teaches the
  model nothing. Ties: lower image id first.
* ``"random"``: a seeded shuffle, the baseline the others must beat.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from annowidget.store import Annotation, Project

STRATEGIES = ("least_confident", "near_threshold", "expected_cost", "random")
CANDIDATE_STATUSES = ("unlabeled", "predicted")
# Papadopoulos et al. 2017 (extreme clicking): about 7 s to draw a box; verifying a box
# takes about 1.6-2 s (Papadopoulos et al. 2016), and deleting one is noticing it is wrong
# plus a key press, so 2 s.
DRAW_SECONDS = 7.0
DELETE_SECONDS = 2.0


def rank_images(
    project: Project,
    strategy: str,
    *,
    threshold: float = 0.5,
    margin: float = 0.15,
    seed: int = 0,
    folder: str | Sequence[str] | None = None,
) -> list[int]:
    """The ids of the images still to review, in the order ``strategy`` suggests.

    Example:
        >>> # rank_images(project, "least_confident", folder="unlabeled")[:3]
        >>> # [12, 40, 7]
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if margin < 0:
        raise ValueError(f"margin must not be negative, got {margin!r}")
    ids = [image.id for image in project.images(folder=folder, status=CANDIDATE_STATUSES)]
    if strategy == "random":
        random.Random(seed).shuffle(ids)
        return ids
    scores = {
        image_id: [a.score for a in rows if _pending(a)]
        for image_id, rows in project.annotations_for(ids).items()
    }
    if strategy == "least_confident":
        return sorted(ids, key=lambda i: (max(scores[i], default=0.0), i))
    if strategy == "near_threshold":
        return sorted(ids, key=lambda i: _near_threshold_key(scores[i], threshold, margin, i))
    prior = _objects_per_image(project)
    return sorted(ids, key=lambda i: (-expected_cost(scores[i], threshold, prior), i))


def _pending(annotation: Annotation) -> bool:
    return annotation.is_prediction and annotation.score is not None


def _near_threshold_key(
    scores: list[float], threshold: float, margin: float, image_id: int
) -> tuple[int, float, int]:
    distances = [abs(s - threshold) for s in scores]
    near = sum(d <= margin + 1e-9 for d in distances)  # inclusive, despite float noise
    return (-near, min(distances, default=float("inf")), image_id)


def expected_cost(scores: Sequence[float], threshold: float, objects_per_image: float) -> float:
    """Expected seconds to correct an image's predictions (see the module docstring).

    Example:
        >>> expected_cost([0.9, 0.2], threshold=0.5, objects_per_image=1.0)
        1.6
    """
    shown = [s for s in scores if s >= threshold]
    to_delete = sum(1.0 - s for s in shown)
    to_draw = max(objects_per_image, sum(scores)) - sum(shown)
    cost = to_delete * DELETE_SECONDS + to_draw * DRAW_SECONDS
    return round(cost, 9)  # rounding keeps equal costs equal through float noise


def _objects_per_image(project: Project) -> float:
    """People's boxes per reviewed image: the prior on how many objects an image holds.

    Counted with the store's aggregate query, so it stays instant on large projects.
    """
    info = project.info()
    reviewed = info["status"]["reviewed"]
    return info["annotations"] / reviewed if reviewed else 1.0


def next_image(
    project: Project,
    strategy: str,
    *,
    exclude: Iterable[int] = (),
    threshold: float = 0.5,
    margin: float = 0.15,
    seed: int = 0,
    folder: str | Sequence[str] | None = None,
) -> int | None:
    """The image "label next" opens: the first of :func:`rank_images` not in ``exclude``.

    ``exclude`` holds images already skipped in this sitting. ``None`` when none is left.

    Example:
        >>> # next_image(project, "near_threshold", exclude={current_id})
    """
    skipped = set(exclude)
    ranked = rank_images(
        project, strategy, threshold=threshold, margin=margin, seed=seed, folder=folder
    )
    return next((i for i in ranked if i not in skipped), None)


def predictions_by_confidence(
    project: Project, image_id: int, *, threshold: float | None = None
) -> list[int]:
    """An image's pending predictions, least confident first: the order Tab visits them.

    With ``threshold``, only the predictions shown (score >= threshold). Ties: lower id first.

    Example:
        >>> # predictions_by_confidence(project, 3, threshold=0.5) -> [17, 15, 16]
    """
    pending = [a for a in project.annotations(image_id, predictions=True) if _pending(a)]
    if threshold is not None:
        pending = [a for a in pending if a.score >= threshold]  # type: ignore[operator]
    return [a.id for a in sorted(pending, key=lambda a: (a.score, a.id))]
