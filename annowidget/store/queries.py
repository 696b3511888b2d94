"""Documented bulk reads on a project connection: plain tuples for thousands of rows.

Formats and training snapshots read here instead of record by record. Run them inside
one :meth:`Project.read` (or ``write``) so every query sees the same snapshot:

Example:
    >>> # with project.read() as connection:
    >>> #     images, annotations = export_rows(connection, project.images_root, "train", None,
    >>> #                                       include_predictions=False)
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from annowidget.store.errors import ProjectError
from annowidget.store.records import ANNOTATION_COLUMNS, STATUSES, Annotation

CHUNK = 500
"""Ids per ``IN (...)`` query: well under SQLite's limit on bound variables."""


def image_filter(
    folder: str | Sequence[str] | None,
    status: str | Sequence[str] | None,
    *,
    table: str = "",
) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause selecting images by folder(s) and status(es), with its arguments.

    ``table`` prefixes the columns when the ``images`` table is aliased in a join.

    Example:
        >>> image_filter("train", ["reviewed"], table="i")
        (' WHERE i.folder IN (?) AND i.status IN (?)', ['train', 'reviewed'])
    """
    prefix = f"{table}." if table else ""
    clauses, args = [], []
    for column, value in ((f"{prefix}folder", folder), (f"{prefix}status", status)):
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        clauses.append(f"{column} IN ({','.join('?' * len(values))})")
        args.extend(values)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def checked_path(images_root: Path, stored: str, image_id: int | None = None) -> Path:
    """The file of a stored ``images.path``; ``ProjectError`` when it escapes the root.

    Paths are checked on import, but a shared or hand-edited ``project.sqlite`` can hold
    anything, so every read of a path checks it again (lexically, like the import).

    Example:
        >>> checked_path(Path("/data"), "a/b.jpg")
        PosixPath('/data/a/b.jpg')
    """
    root = os.path.normpath(images_root)
    full = os.path.normpath(os.path.join(root, stored))
    if not stored or os.path.isabs(stored) or not full.startswith(root + os.sep):
        what = f"image {image_id}" if image_id is not None else "an image"
        raise ProjectError(
            f"{what}: stored path {stored!r} escapes the images root {root}; "
            "the project file was edited by hand or is not to be trusted"
        )
    return Path(full)


def existing_images(
    connection: sqlite3.Connection, paths: Sequence[str]
) -> dict[str, tuple[int, int, int]]:
    """``path -> (id, width, height)`` of those ``paths`` the project already has."""
    found: dict[str, tuple[int, int, int]] = {}
    for start in range(0, len(paths), CHUNK):
        chunk = list(paths[start : start + CHUNK])
        marks = ",".join("?" * len(chunk))
        for path, id_, width, height in connection.execute(
            f"SELECT path, id, width, height FROM images WHERE path IN ({marks})", chunk
        ):
            found[path] = (id_, width, height)
    return found


def annotations(
    connection: sqlite3.Connection, image_id: int | None, predictions: bool | None
) -> list[Annotation]:
    """Annotations of one image (or all), optionally only predictions or only reviewed."""
    sql = f"SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE 1 = 1"
    args: list[Any] = []
    if image_id is not None:
        sql += " AND image_id = ?"
        args.append(int(image_id))
    if predictions is not None:
        sql += " AND is_prediction = ?"
        args.append(int(predictions))
    rows = connection.execute(sql + " ORDER BY id", args).fetchall()
    return [Annotation.from_row(row) for row in rows]


def annotations_for(
    connection: sqlite3.Connection, image_ids: Sequence[int]
) -> dict[int, list[Annotation]]:
    """``image id -> its annotations`` (ordered by id) for many images at once."""
    result: dict[int, list[Annotation]] = {int(i): [] for i in image_ids}
    ids = list(result)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = connection.execute(
            f"SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE image_id IN ({marks}) ORDER BY id",
            chunk,
        ).fetchall()
        for row in rows:
            annotation = Annotation.from_row(row)
            result[annotation.image_id].append(annotation)
    return result


def export_rows(
    connection: sqlite3.Connection,
    images_root: Path,
    folders: str | Sequence[str] | None,
    status: str | Sequence[str] | None,
    *,
    include_predictions: bool,
) -> tuple[list[tuple[Any, ...]], Callable[[], Iterator[tuple[Any, ...]]]]:
    """The selected images, and a function streaming their annotations as plain tuples.

    Images are ``(id, path, width, height, status)``; annotations are ``(image_id, id,
    category_id, x, y, w, h, segmentation_json, keypoints_json, num_keypoints, iscrowd, area,
    score)`` ordered by image then id, read straight from SQLite without building records.
    Every image path is checked with :func:`checked_path` first: an export never writes
    next to a file outside the images root.

    An image that is not reviewed and has no exported annotation is left out: in every
    format an image with no object reads as "labeled, nothing here", which an image
    nobody has looked at is not.
    """
    where, args = image_filter(folders, status, table="i")
    prediction_clause = "" if include_predictions else " AND a.is_prediction = 0"
    labeled = (
        "(i.status = 'reviewed' OR EXISTS (SELECT 1 FROM annotations a "
        f"WHERE a.image_id = i.id{prediction_clause}))"
    )
    where = (where + " AND " if where else " WHERE ") + labeled
    images = [
        tuple(row)
        for row in connection.execute(
            f"SELECT i.id, i.path, i.width, i.height, i.status FROM images i{where} ORDER BY i.id",
            args,
        )
    ]
    for image_id, path, *_ in images:
        checked_path(images_root, path, image_id)
    joined_where = where + prediction_clause

    def annotations() -> Iterator[tuple[Any, ...]]:
        cursor = connection.cursor()
        cursor.row_factory = None  # plain tuples: sqlite3.Row costs time on a million rows
        cursor.arraysize = 4096
        cursor.execute(
            "SELECT a.image_id, a.id, a.category_id, a.x, a.y, a.w, a.h, a.segmentation, "
            "a.keypoints, a.num_keypoints, a.iscrowd, a.area, a.score "
            f"FROM annotations a JOIN images i ON i.id = a.image_id{joined_where} "
            "ORDER BY a.image_id, a.id",
            args,
        )
        while rows := cursor.fetchmany():
            yield from rows

    return images, annotations


def counts(connection: sqlite3.Connection) -> dict[str, Any]:
    """Images per folder and status, annotations and predictions per category, totals."""
    per_category = {
        name: {"annotations": n, "predictions": p}
        for name, n, p in connection.execute(
            "SELECT c.name, COUNT(a.id) - COALESCE(SUM(a.is_prediction), 0), "
            "COALESCE(SUM(a.is_prediction), 0) "
            "FROM categories c LEFT JOIN annotations a ON a.category_id = c.id "
            "GROUP BY c.id ORDER BY c.id"
        )
    }
    annotations, predictions = connection.execute(
        "SELECT COUNT(*), COALESCE(SUM(is_prediction), 0) FROM annotations"
    ).fetchone()
    statuses = dict(
        connection.execute("SELECT status, COUNT(*) FROM images GROUP BY status").fetchall()
    )
    return {
        "images": connection.execute("SELECT COUNT(*) FROM images").fetchone()[0],
        "annotations": annotations - predictions,
        "predictions": predictions,
        "folders": dict(
            connection.execute("SELECT folder, COUNT(*) FROM images GROUP BY folder").fetchall()
        ),
        "status": {s: statuses.get(s, 0) for s in STATUSES},
        "categories": per_category,
    }
