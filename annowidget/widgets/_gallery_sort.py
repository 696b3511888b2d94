"""How the Gallery orders images: pure functions over store records, no widgets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from annowidget.store import Annotation, Image

SORTS: tuple[str, ...] = ("status", "lowest confidence", "most predictions", "file name")

# Predicted first: those are the images waiting for a person to check them.
_STATUS_RANK = {"predicted": 0, "unlabeled": 1, "reviewed": 2}


def lowest_score(annotations: Sequence[Annotation]) -> float | None:
    """The smallest prediction score on an image, ``None`` when it has no predictions.

    Example:
        >>> lowest_score([])
    """
    scores = [a.score for a in annotations if a.is_prediction and a.score is not None]
    return min(scores) if scores else None


def prediction_count(annotations: Sequence[Annotation]) -> int:
    """How many pending predictions an image has.

    Example:
        >>> prediction_count([])
        0
    """
    return sum(1 for a in annotations if a.is_prediction)


def sort_images(
    images: Sequence[Image],
    by: str,
    annotations: Mapping[int, Sequence[Annotation]] | None = None,
) -> list[Image]:
    """``images`` ordered for review; ties keep id order.

    - ``"status"``: predicted, then unlabeled, then reviewed.
    - ``"lowest confidence"``: images whose least certain prediction is lowest come first;
      images without predictions go last.
    - ``"most predictions"``: most pending predictions first.
    - ``"file name"``: by path.

    Example:
        >>> sort_images([], "status")
        []
    """
    if by not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}; got {by!r}")
    anns = annotations or {}
    if by == "status":
        return sorted(images, key=lambda im: (_STATUS_RANK.get(im.status, 3), im.id))
    if by == "file name":
        return sorted(images, key=lambda im: (im.path, im.id))
    if by == "most predictions":
        return sorted(images, key=lambda im: (-prediction_count(anns.get(im.id, ())), im.id))

    def confidence_key(im: Image) -> tuple[int, float, int]:
        score = lowest_score(anns.get(im.id, ()))
        return (1, 0.0, im.id) if score is None else (0, score, im.id)

    return sorted(images, key=confidence_key)
