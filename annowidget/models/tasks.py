"""The four COCO tasks annowidget trains models for (shared by the zoo, cards and trainer)."""

from __future__ import annotations

TASKS: tuple[str, ...] = (
    "detection",
    "instance_segmentation",
    "keypoints",
    "semantic_segmentation",
)


def check_task(task: str) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else raise ``ValueError`` naming it.

    Example:
        >>> check_task("detection")
        'detection'
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    return task
