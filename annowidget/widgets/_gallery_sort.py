"""How the Gallery orders images: pure functions over store records, no widgets.

``"weakest prediction"`` is a review order, not an active-learning one: it brings first the
images holding the least certain box a person must check (lowest *minimum* pending score),
and puts images with nothing to check last. The sampler's ``least_confident``
(:func:`annowidget.effort.rank_images`) answers another question, "which image does the model
understand least": lowest *top* score first, images with no prediction first. The two
names say which is which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from annowidget.store import Annotation, Image

SORTS: tuple[str, ...] = ("status", "weakest prediction", "most predictions", "file name")
# the name "weakest prediction" had before it was told apart from the sampler's least_confident
_OLD_NAMES = {"lowest confidence": "weakest prediction"}

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


def sort_name(by: str) -> str:
    """The current name of a sort (``"lowest confidence"`` is the old name of one).

    Example:
        >>> sort_name("lowest confidence")
        'weakest prediction'
    """
    return _OLD_NAMES.get(by, by)


def sort_images(
    images: Sequence[Image],
    by: str,
    annotations: Mapping[int, Sequence[Annotation]] | None = None,
) -> list[Image]:
    """``images`` ordered for review; ties keep id order.

    - ``"status"``: predicted, then unlabeled, then reviewed.
    - ``"weakest prediction"`` (formerly ``"lowest confidence"``): images whose least certain
      pending prediction is lowest come first; images without predictions go last.
    - ``"most predictions"``: most pending predictions first.
    - ``"file name"``: by path.

    Example:
        >>> sort_images([], "status")
        []
    """
    by = sort_name(by)
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
