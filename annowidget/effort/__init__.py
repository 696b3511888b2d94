"""What each round of labeling cost, how good each model is on the images people corrected,
and which image to label next.

Example:
    >>> from annowidget.effort import effort_per_round, ongoing_evaluation, rank_images
    >>> # effort_per_round(project)[-1].seconds_per_image
"""

from __future__ import annotations

from annowidget.effort.meter import ImageEffort, RoundEffort, effort_per_image, effort_per_round
from annowidget.effort.ongoing import ModelScore, ongoing_evaluation
from annowidget.effort.sampling import (
    STRATEGIES,
    expected_cost,
    next_image,
    predictions_by_confidence,
    rank_images,
)

__all__ = [
    "STRATEGIES",
    "ImageEffort",
    "ModelScore",
    "RoundEffort",
    "effort_per_image",
    "effort_per_round",
    "expected_cost",
    "next_image",
    "ongoing_evaluation",
    "predictions_by_confidence",
    "rank_images",
]
