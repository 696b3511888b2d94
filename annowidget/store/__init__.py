"""The Project store: SQLite (one file per project) plus the image files where they are.

Example:
    >>> from annowidget.store import Project
    >>> # project = Project.open("my-project")
"""

from __future__ import annotations

from annowidget.store.project import Project, ProjectError
from annowidget.store.records import STATUSES, Action, Annotation, Category, Image, Snapshot

__all__ = [
    "STATUSES",
    "Action",
    "Annotation",
    "Category",
    "Image",
    "Project",
    "ProjectError",
    "Snapshot",
]
