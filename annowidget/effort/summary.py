"""The payoff in words: what each round of labeling cost against labeling from scratch, and
how each model did on the images people corrected after it pre-labeled them.

This is the text the quickstart's "See the gain" prints; the Effort tab shows the same
numbers (:mod:`annowidget.widgets.effort_panel`). Both come from
:func:`~annowidget.effort.effort_per_round` (browsing is not labeling: only images that were
unlabeled when opened and got work make the from-scratch baseline) and
:func:`~annowidget.effort.ongoing_evaluation`, whose score threshold is printed with them.

Example:
    >>> # print(gain_summary(project))
    >>> # from scratch: 12 images, 24.1 s/image, missed boxes drawn: 14
    >>> # model-1: 10 images, 9.3 s/image (0.39x from scratch), kept unchanged: 55%, ...
"""

from __future__ import annotations

from annowidget.effort.meter import DEFAULT_IDLE_GAP, RoundEffort, effort_per_round
from annowidget.effort.ongoing import DEFAULT_IOU, DEFAULT_THRESHOLD, ongoing_evaluation
from annowidget.store import Project

__all__ = ["FROM_SCRATCH", "UNKNOWN_ANNOTATOR", "annotator_label", "gain_summary", "round_label"]

#: The name of the round of images labeled without a model's predictions.
FROM_SCRATCH = "from scratch"


def round_label(model: str | None) -> str:
    """The name a round goes by.

    Example:
        >>> round_label(None), round_label("round-2")
        ('from scratch', 'round-2')
    """
    return FROM_SCRATCH if model is None else model


#: The name of the author of log rows written before the log named its authors.
UNKNOWN_ANNOTATOR = "(unknown)"


def annotator_label(author: str) -> str:
    """The name an annotator goes by in tables.

    Example:
        >>> annotator_label("ana"), annotator_label("")
        ('ana', '(unknown)')
    """
    return author or UNKNOWN_ANNOTATOR


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _round_line(round_: RoundEffort, baseline: RoundEffort | None) -> str:
    kept = round_.share_accepted_unchanged
    speed = ""
    if round_.model is not None and baseline is not None and baseline.seconds_per_image > 0:
        speed = f" ({round_.seconds_per_image / baseline.seconds_per_image:.2f}x from scratch)"
    line = (
        f"{round_label(round_.model)}: {round_.images} image(s), "
        f"{round_.seconds_per_image:.1f} s/image{speed}"
    )
    if round_.model is not None:
        line += f", kept unchanged: {'-' if kept is None else f'{kept:.0%}'}"
    return line + f", missed boxes drawn: {round_.drawn_from_scratch}"


def gain_summary(
    project: Project,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    iou: float = DEFAULT_IOU,
    idle_gap: float = DEFAULT_IDLE_GAP,
) -> str:
    """Seconds per image per round (against the from-scratch baseline) and each model's
    precision, recall and AP50 on the images corrected after it pre-labeled them.

    Example:
        >>> # print(gain_summary(project))
    """
    rounds = effort_per_round(project, idle_gap=idle_gap)
    if not rounds:
        return (
            "no labeling in the action log yet: label images (from scratch or after a model's "
            "predictions) and mark them reviewed"
        )
    baseline = next((r for r in rounds if r.model is None), None)
    lines = ["Labeling cost per round (reviewed images; browsing is not labeling):"]
    lines += ["  " + _round_line(r, baseline) for r in rounds]
    if baseline is None:
        lines.append("  (no image labeled from scratch yet: no baseline to compare with)")
    scores = ongoing_evaluation(project, iou=iou, threshold=threshold)
    if scores:
        lines.append(
            f"Each model on the images corrected after it pre-labeled them "
            f"(precision and recall at score >= {threshold:.2f}, IoU {iou:.2f}):"
        )
    for name, score in scores.items():
        lines.append(
            f"  {name} on {score.images} corrected image(s): precision "
            f"{_number(score.precision)}, recall {_number(score.recall)}, "
            f"AP50 {_number(score.ap50)}"
        )
    return "\n".join(lines)
