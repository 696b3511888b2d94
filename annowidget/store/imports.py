"""Imports that land each image with its annotations, or not at all, in short transactions.

Example:
    >>> item = ImportItem("a.jpg", 640, 480, status="reviewed",
    ...                   annotations=[{"category_id": 1, "bbox": [0, 0, 9, 9]}])
    >>> item.folder
    'unlabeled'
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from annowidget.store._dialect import after_bulk_insert
from annowidget.store.annotations import check_bbox, check_status, insert, log, now
from annowidget.store.errors import ProjectError

BUDGET_S = 0.5
"""Longest an import holds the write lock before committing and letting other writers in."""
PAUSE_S = 0.11
"""Gap between two import transactions: longer than SQLite's longest busy-handler sleep
(100 ms), so a waiting writer's next retry falls in it instead of starving."""


def folder_name(folder: str) -> str:
    """A folder name as stored: non-empty, no slashes.

    Example:
        >>> folder_name(" train ")
        'train'
    """
    folder = str(folder).strip()
    if not folder or "/" in folder or "\\" in folder:
        raise ProjectError(f"folder name {folder!r} must be a non-empty name without slashes")
    return folder


def image_rows(
    rows: Iterable[dict[str, Any]], check_path: Callable[[str], str]
) -> list[tuple[Any, ...]]:
    """Checked ``(path, width, height, checksum, folder, status, added_at)`` rows of
    :func:`insert_images` from dicts with ``path``, ``width``, ``height`` and optionally
    ``checksum``, ``folder`` and ``status``."""
    stamp = now()
    return [
        (
            check_path(row["path"]),
            int(row["width"]),
            int(row["height"]),
            row.get("checksum", ""),
            folder_name(row.get("folder", "unlabeled")),
            check_status(row.get("status", "unlabeled")),
            stamp,
        )
        for row in rows
    ]


def insert_images(
    connection: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], action: str
) -> list[int]:
    """Insert ``(path, width, height, checksum, folder, status, added_at)`` rows; their ids."""
    first = connection.execute("SELECT COALESCE(MAX(id), 0) FROM images").fetchone()[0]
    connection.executemany(
        "INSERT INTO images (path, width, height, checksum, folder, status, added_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    # Read back rather than count on: a PostgreSQL sequence may skip values (a rolled-back
    # insert); the write transaction keeps every other writer out meanwhile.
    ids = [
        int(row[0])
        for row in connection.execute(
            "SELECT id FROM images WHERE id > ? ORDER BY id", (first,)
        ).fetchall()
    ]
    log(connection, action, payload={"images": len(rows)})
    after_bulk_insert(connection, "images", len(rows))
    return ids


def import_all(
    write: Callable[[], AbstractContextManager[sqlite3.Connection]],
    items: Iterable[ImportItem],
    source: str,
    check_path: Callable[[str], str],
) -> Iterator[ImportOutcome]:
    """Run :func:`import_item` over ``items`` in ``write()`` transactions of ~:data:`BUDGET_S`.

    ``check_path`` maps an item's path to the stored one (refusing paths outside the root).
    """
    pending = iter(items)
    busy = False
    while True:
        if busy:  # the last transaction used its whole budget: let a waiting writer in
            time.sleep(PAUSE_S)
        busy = False
        outcomes: list[ImportOutcome] = []
        with write() as connection:
            deadline = time.monotonic() + BUDGET_S
            for item in pending:
                try:
                    item.path = check_path(item.path)
                    item.folder = folder_name(item.folder)
                except ProjectError as exc:
                    outcomes.append(ImportOutcome(None, error=str(exc)))
                    continue
                outcomes.append(import_item(connection, item, source))
                if time.monotonic() > deadline:
                    busy = True
                    break
            if outcomes:
                added = sum(o.added for o in outcomes)
                new = sum(o.new for o in outcomes)
                log(connection, source, payload={"images": new, "annotations": added})
        yield from outcomes
        if not outcomes:
            return


@dataclass
class ImportItem:
    """One image of an import with its annotations: they land together or not at all.

    ``path`` is relative to the images root. ``status`` is what a new image gets; an
    image (new or not) that receives a person's annotation becomes ``reviewed``.
    """

    path: str
    width: int
    height: int
    checksum: str = ""
    folder: str = "unlabeled"
    status: str = "unlabeled"
    annotations: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ImportOutcome:
    """What :func:`import_item` did with one :class:`ImportItem`."""

    image_id: int | None
    new: bool = False
    added: int = 0
    existing: int = 0
    error: str | None = None


def box_key(category_id: int, bbox: Sequence[float]) -> tuple[Any, ...]:
    """What makes two boxes of one image "the same" for an import (rounded to 1/1000 px)."""
    return (int(category_id), *(round(float(v), 3) for v in bbox))


def import_item(connection: sqlite3.Connection, item: ImportItem, source: str) -> ImportOutcome:
    """Add one image (unless its path is stored) with its annotations, inside a savepoint.

    The path lookup and the duplicate check run inside the caller's write transaction, so
    two imports of one file racing each other still store every box once. A bad annotation
    rolls back this image only and is returned as ``error``.
    """
    connection.execute("SAVEPOINT import_item")
    try:
        outcome = _import_item(connection, item, source)
    except (ProjectError, sqlite3.IntegrityError, ValueError, TypeError, KeyError) as exc:
        connection.execute("ROLLBACK TO import_item")
        connection.execute("RELEASE import_item")
        return ImportOutcome(None, error=str(exc))
    connection.execute("RELEASE import_item")
    return outcome


def _import_item(connection: sqlite3.Connection, item: ImportItem, source: str) -> ImportOutcome:
    row = connection.execute("SELECT id FROM images WHERE path = ?", (item.path,)).fetchone()
    new = row is None
    if new:
        image_id = int(
            connection.execute(
                "INSERT INTO images (path, width, height, checksum, folder, status, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    item.path,
                    int(item.width),
                    int(item.height),
                    item.checksum,
                    item.folder,
                    check_status(item.status),
                    now(),
                ),
            ).lastrowid
        )
        stored: set[tuple[Any, ...]] = set()
    else:
        image_id = int(row[0])
        stored = {
            box_key(c, (x, y, w, h))
            for c, x, y, w, h in connection.execute(
                "SELECT category_id, x, y, w, h FROM annotations WHERE image_id = ?", (image_id,)
            )
        }
    added = existing = 0
    human = predicted = False
    for values in item.annotations:
        key = box_key(values["category_id"], check_bbox(values["bbox"]))
        if not new and key in stored:
            existing += 1
            continue
        stored.add(key)
        insert(connection, image_id, {**values, "source": values.get("source", source)})
        added += 1
        human = human or values.get("score") is None
        predicted = predicted or values.get("score") is not None
    if human:
        connection.execute("UPDATE images SET status = 'reviewed' WHERE id = ?", (image_id,))
    elif predicted:
        connection.execute(
            "UPDATE images SET status = 'predicted' WHERE id = ? AND status = 'unlabeled'",
            (image_id,),
        )
    return ImportOutcome(image_id, new=new, added=added, existing=existing)
