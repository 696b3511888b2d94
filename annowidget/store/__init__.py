"""The Project store: SQLite (one file per project) or a shared PostgreSQL database (see
:mod:`annowidget.store._dialect`), plus the image files where they are.

Example:
    >>> from annowidget.store import Project
    >>> # project = Project.open("my-project")
"""

from __future__ import annotations

from annowidget.store._postgres import describe as describe_database
from annowidget.store.errors import ChangedElsewhereError, ProjectError
from annowidget.store.images import (
    DisplayImage,
    ImageError,
    ImageInfo,
    decode_for_model,
    display_bytes,
    load_rgb,
    probe_image,
    thumbnail,
)
from annowidget.store.imports import ImportItem, ImportOutcome
from annowidget.store.project import Project
from annowidget.store.records import STATUSES, Action, Annotation, Category, Image, Snapshot

__all__ = [
    "STATUSES",
    "Action",
    "Annotation",
    "Category",
    "ChangedElsewhereError",
    "DisplayImage",
    "Image",
    "ImageError",
    "ImageInfo",
    "ImportItem",
    "ImportOutcome",
    "Project",
    "ProjectError",
    "Snapshot",
    "decode_for_model",
    "describe_database",
    "display_bytes",
    "load_rgb",
    "probe_image",
    "thumbnail",
]
