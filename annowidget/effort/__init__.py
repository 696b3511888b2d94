"""What each round of labeling cost, how good each model is on the images people corrected,
whether a new round beat the last beyond noise, and which image to label next.

Example:
    >>> from annowidget.effort import effort_per_round, gain_summary, compare_rounds
    >>> # effort_per_round(project)[-1].seconds_per_image
    >>> # print(gain_summary(project))
    >>> # print(compare_rounds(project, "model-1", "model-2", folder="test"))
"""

from __future__ import annotations

from annowidget.effort.meter import (
    ImageEffort,
    RoundEffort,
    effort_per_annotator,
    effort_per_image,
    effort_per_round,
)
from annowidget.effort.ongoing import DEFAULT_THRESHOLD, ModelScore, ongoing_evaluation
from annowidget.effort.rounds import RoundComparison, bootstrap_difference, compare_rounds
from annowidget.effort.sampling import (
    STRATEGIES,
    expected_cost,
    next_image,
    predictions_by_confidence,
    rank_images,
)
from annowidget.effort.summary import gain_summary

__all__ = [
    "DEFAULT_THRESHOLD",
    "STRATEGIES",
    "ImageEffort",
    "ModelScore",
    "RoundComparison",
    "RoundEffort",
    "bootstrap_difference",
    "compare_rounds",
    "effort_per_annotator",
    "effort_per_image",
    "effort_per_round",
    "expected_cost",
    "gain_summary",
    "next_image",
    "ongoing_evaluation",
    "predictions_by_confidence",
    "rank_images",
]
