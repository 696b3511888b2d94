"""The annotation write path: one row builder, the image status rule, undo checks.

Every function takes the connection of a write transaction the caller holds (see
:meth:`Project.write`), so several of them compose into one all-or-nothing change.

Example:
    >>> # with project.write() as connection:
    >>> #     annotation = add(connection, image_id, {"category_id": 1, "bbox": [0, 0, 9, 9]})
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any

from annowidget.store.errors import ChangedElsewhereError, ProjectError
from annowidget.store.records import ANNOTATION_COLUMNS, STATUSES, Annotation

EDITABLE_FIELDS = frozenset({"bbox", "category_id", "segmentation", "keypoints", "iscrowd", "area"})
"""The fields of an annotation :func:`update` may change."""

# the columns after ``id``, in the order :func:`row_values` fills them
_INSERT_SQL = (
    f"INSERT INTO annotations ({ANNOTATION_COLUMNS.partition(', ')[2]}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_SQL = (
    "UPDATE annotations SET category_id=?, x=?, y=?, w=?, h=?, segmentation=?, keypoints=?, "
    "num_keypoints=?, iscrowd=?, area=?, score=NULL, is_prediction=0, updated_at=? WHERE id = ?"
)
# what "unchanged" compares: timestamps differ between a log payload and the row
_COMPARED = ("image_id", "category_id", "bbox", "segmentation", "keypoints", "iscrowd", "area")
_COMPARED += ("score", "is_prediction")


AUTHOR: ContextVar[str] = ContextVar("annowidget_author", default="")
"""Who the write transaction in progress (in this thread) acts for: :meth:`Project.write`
sets it to :attr:`Project.user`, and every log row records it."""


def now() -> float:
    return time.time()


def json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def check_bbox(bbox: Sequence[float], what: str = "bbox") -> tuple[float, float, float, float]:
    """``bbox`` as four finite floats with a non-negative size, or a ``ProjectError``.

    Example:
        >>> check_bbox([1, 2, 3, 4])
        (1.0, 2.0, 3.0, 4.0)
    """
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise ProjectError(f"{what} must be four numbers [x, y, w, h], got {bbox!r}") from exc
    if not all(map(math.isfinite, (x, y, w, h))):
        raise ProjectError(f"{what} has a non-finite value: {bbox!r}")
    if w < 0 or h < 0:
        raise ProjectError(f"{what} has a negative width or height: {bbox!r}")
    return (x, y, w, h)


def _num_visible(keypoints: Sequence[float] | None) -> int:
    if not keypoints:
        return 0
    if len(keypoints) % 3:
        raise ProjectError(
            f"keypoints must be a flat list [x, y, v, ...], got {len(keypoints)} values"
        )
    return sum(1 for v in keypoints[2::3] if v > 0)


def row_values(values: dict[str, Any]) -> tuple[Any, ...]:
    """The stored shape of an annotation: ``(category_id, x, y, w, h, segmentation,
    keypoints, num_keypoints, iscrowd, area)``, checked. The one place a row is built.

    Example:
        >>> row_values({"category_id": 2, "bbox": [0, 0, 4, 5]})
        (2, 0.0, 0.0, 4.0, 5.0, None, None, 0, 0, 20.0)
    """
    x, y, w, h = check_bbox(values["bbox"])
    keypoints = values.get("keypoints")
    area = values.get("area")
    return (
        int(values["category_id"]),
        x,
        y,
        w,
        h,
        json_or_none(values.get("segmentation")),
        json_or_none(keypoints),
        _num_visible(keypoints),
        int(values.get("iscrowd", 0)),
        float(w * h if area is None else area),
    )


def insert(connection: sqlite3.Connection, image_id: int, values: dict[str, Any]) -> int:
    """Insert one annotation (a prediction when ``values`` has a ``score``); its new id."""
    cursor = connection.execute(_INSERT_SQL, _insert_args(image_id, values, now()))
    return int(cursor.lastrowid)


def _insert_args(image_id: int, values: dict[str, Any], stamp: float) -> tuple[Any, ...]:
    score = values.get("score")
    return (
        int(image_id),
        *row_values(values),
        None if score is None else float(score),
        values.get("source", "human"),
        int(score is not None),
        stamp,
        stamp,
    )


def fetch(connection: sqlite3.Connection, annotation_id: int) -> Annotation:
    """One annotation by id; ``ProjectError`` if there is none."""
    row = connection.execute(
        f"SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE id = ?", (int(annotation_id),)
    ).fetchone()
    if row is None:
        raise ProjectError(f"annotation {annotation_id} does not exist in this project")
    return Annotation.from_row(row)


def log(
    connection: sqlite3.Connection,
    action: str,
    image_id: int | None = None,
    annotation_id: int | None = None,
    duration: float | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """Append one entry to the action log, signed with :data:`AUTHOR`; its id.

    An entry about an image its author holds a lease on renews the lease: a lease runs out
    only when its annotator goes quiet.
    """
    author = AUTHOR.get()
    stamp = now()
    cursor = connection.execute(
        "INSERT INTO actions (ts, action, image_id, annotation_id, duration, payload, author) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (stamp, action, image_id, annotation_id, duration, json.dumps(payload or {}), author),
    )
    if image_id is not None:
        from annowidget.store import leases

        leases.renew(connection, image_id, author, stamp)
    return int(cursor.lastrowid)


def image_status(connection: sqlite3.Connection, image_id: int) -> str:
    """An image's status; ``ProjectError`` if the image does not exist."""
    row = connection.execute("SELECT status FROM images WHERE id = ?", (image_id,)).fetchone()
    if row is None:
        raise ProjectError(f"image {image_id} does not exist in this project")
    return str(row[0])


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise ProjectError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    return status


def refresh_status(connection: sqlite3.Connection, image_id: int, human: bool) -> None:
    """Keep an image's status in step with its annotations after an edit.

    Pending predictions make it ``predicted``; a person's edit with none left makes it
    ``reviewed``.
    """
    pending = connection.execute(
        "SELECT COUNT(*) FROM annotations WHERE image_id = ? AND is_prediction = 1",
        (image_id,),
    ).fetchone()[0]
    current = image_status(connection, image_id)
    if pending and current != "reviewed":
        new = "predicted"
    elif human and not pending:
        new = "reviewed"
    else:
        return
    if new != current:
        connection.execute("UPDATE images SET status = ? WHERE id = ?", (new, image_id))


def _same(current: Annotation, expected: dict[str, Any]) -> bool:
    # through JSON both ways, so tuples/lists and a log payload's floats compare alike
    a = json.loads(json.dumps({k: current.to_dict()[k] for k in _COMPARED}))
    b = json.loads(json.dumps({k: expected.get(k) for k in _COMPARED}))
    b["iscrowd"] = b["iscrowd"] or 0
    b["is_prediction"] = bool(b["is_prediction"])
    return a == b


def _expect(connection: sqlite3.Connection, annotation_id: int, expected: Any) -> Annotation:
    """The annotation, checked against what the caller last saw (``None``: no check)."""
    row = connection.execute(
        f"SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE id = ?", (int(annotation_id),)
    ).fetchone()
    if row is None:
        if expected is not None:
            raise ChangedElsewhereError(f"annotation {annotation_id} was deleted elsewhere")
        raise ProjectError(f"annotation {annotation_id} does not exist in this project")
    current = Annotation.from_row(row)
    if expected is not None and not _same(current, expected):
        raise ChangedElsewhereError(f"annotation {annotation_id} was changed elsewhere")
    return current


def add(
    connection: sqlite3.Connection,
    image_id: int,
    values: dict[str, Any],
    duration: float | None = None,
) -> Annotation:
    """Add one annotation, log it and refresh its image's status."""
    image_status(connection, image_id)
    annotation_id = insert(connection, image_id, values)
    after = fetch(connection, annotation_id)
    log(connection, "add", image_id, annotation_id, duration, {"after": after.to_dict()})
    refresh_status(connection, image_id, human=values.get("score") is None)
    return after


def update(
    connection: sqlite3.Connection,
    annotation_id: int,
    fields: dict[str, Any],
    duration: float | None = None,
    expected: dict[str, Any] | None = None,
) -> Annotation:
    """Change some of :data:`EDITABLE_FIELDS`; the result is a person's annotation."""
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ProjectError(f"cannot edit field(s) {sorted(unknown)} of an annotation")
    before = _expect(connection, annotation_id, expected)
    values = before.to_dict()
    values.update(fields)
    if "bbox" in fields and "area" not in fields:
        values["area"] = None  # recompute from the new box
    connection.execute(_UPDATE_SQL, (*row_values(values), now(), annotation_id))
    after = fetch(connection, annotation_id)
    payload = {"before": before.to_dict(), "after": after.to_dict()}
    log(connection, "update", before.image_id, annotation_id, duration, payload)
    refresh_status(connection, before.image_id, human=True)
    return after


def accept(
    connection: sqlite3.Connection,
    annotation_id: int,
    duration: float | None = None,
    expected: dict[str, Any] | None = None,
) -> Annotation:
    """Accept a prediction unchanged: it becomes a reviewed annotation."""
    before = _expect(connection, annotation_id, expected)
    connection.execute(
        "UPDATE annotations SET is_prediction = 0, updated_at = ? WHERE id = ?",
        (now(), annotation_id),
    )
    after = fetch(connection, annotation_id)
    payload = {"before": before.to_dict(), "after": after.to_dict()}
    log(connection, "accept", before.image_id, annotation_id, duration, payload)
    refresh_status(connection, before.image_id, human=True)
    return after


def delete(
    connection: sqlite3.Connection,
    annotation_id: int,
    duration: float | None = None,
    expected: dict[str, Any] | None = None,
) -> None:
    """Delete an annotation (or reject a prediction); the log keeps what it was."""
    before = _expect(connection, annotation_id, expected)
    connection.execute("DELETE FROM annotations WHERE id = ?", (annotation_id,))
    action = "reject" if before.is_prediction else "delete"
    log(connection, action, before.image_id, annotation_id, duration, {"before": before.to_dict()})
    refresh_status(connection, before.image_id, human=True)


def restore(connection: sqlite3.Connection, values: dict[str, Any]) -> Annotation:
    """Put back a deleted annotation with its original id (undo); refused if it exists."""
    annotation_id = int(values["id"])
    if connection.execute("SELECT 1 FROM annotations WHERE id = ?", (annotation_id,)).fetchone():
        raise ChangedElsewhereError(f"annotation {annotation_id} already exists")
    new_id = insert(connection, int(values["image_id"]), values)
    connection.execute(
        "UPDATE annotations SET id = ?, is_prediction = ? WHERE id = ?",
        (annotation_id, int(bool(values.get("is_prediction"))), new_id),
    )
    after = fetch(connection, annotation_id)
    log(connection, "restore", after.image_id, annotation_id, payload={"after": after.to_dict()})
    refresh_status(connection, after.image_id, human=not after.is_prediction)
    return after


def replace_predictions(
    connection: sqlite3.Connection,
    image_id: int,
    predictions: Iterable[dict[str, Any]],
    source: str,
) -> list[Annotation]:
    """Swap an image's pending predictions for new ones; reviewed annotations stay."""
    image_status(connection, image_id)
    connection.execute(
        "DELETE FROM annotations WHERE image_id = ? AND is_prediction = 1", (image_id,)
    )
    ids = []
    for prediction in predictions:
        if prediction.get("score") is None:
            raise ProjectError(f"prediction for image {image_id} has no score")
        ids.append(insert(connection, image_id, dict(prediction, source=source)))
    log(connection, "predict", image_id, payload={"source": source, "annotations": ids})
    refresh_status(connection, image_id, human=False)
    return [fetch(connection, i) for i in ids]


def add_bulk(
    connection: sqlite3.Connection, rows: Iterable[tuple[int, dict[str, Any]]], action: str
) -> int:
    """Insert many ``(image_id, values)``; reviewed/predicted statuses follow. The count."""
    count = 0
    reviewed, predicted = set(), set()
    stamp = now()
    batch: list[tuple[Any, ...]] = []
    for image_id, values in rows:
        batch.append(_insert_args(image_id, values, stamp))
        (predicted if values.get("score") is not None else reviewed).add(image_id)
        count += 1
        if len(batch) >= 10_000:  # one round trip per batch, not per box (PostgreSQL)
            connection.executemany(_INSERT_SQL, batch)
            batch.clear()
    if batch:
        connection.executemany(_INSERT_SQL, batch)
    connection.executemany(
        "UPDATE images SET status = 'reviewed' WHERE id = ?", [(i,) for i in reviewed]
    )
    connection.executemany(
        "UPDATE images SET status = 'predicted' WHERE id = ? AND status = 'unlabeled'",
        [(i,) for i in predicted - reviewed],
    )
    log(connection, action, payload={"annotations": count})
    from annowidget.store._dialect import after_bulk_insert

    after_bulk_insert(connection, "annotations", count)
    return count
