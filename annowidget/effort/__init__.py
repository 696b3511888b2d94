"""What each round of labeling cost, how good each model is on the images people corrected,
and which image to label next.

Example:
    >>> from annowidget.effort import effort_per_round, ongoing_evaluation
    >>> # effort_per_round(project)[-1].seconds_per_image
"""

from __future__ import annotations

from annowidget.effort.meter import ImageEffort, RoundEffort, effort_per_image, effort_per_round
from annowidget.effort.ongoing import ModelScore, ongoing_evaluation

__all__ = [
    "ImageEffort",
    "ModelScore",
    "RoundEffort",
    "effort_per_image",
    "effort_per_round",
    "ongoing_evaluation",
]
