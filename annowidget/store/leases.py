"""Image leases: an image opened by one annotator is theirs for a while, so that "next
unlabeled image" never hands two people the same one.

A lease is a row ``(image_id, author, expires)``. Taking it, the check for someone else's
live lease and the choice of the next image all run inside one write transaction (writers
are serialised on both backends), so two annotators asking at the same moment get two
different images. Every logged edit renews its author's lease; an annotator who goes quiet
for :data:`LEASE_S` loses it (a killed kernel frees its images the same way).

Example:
    >>> # with project.write() as connection:
    >>> #     holder = take(connection, image_id, "ana", now(), LEASE_S)  # None: it is ana's
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

LEASE_S = float(os.environ.get("ANNOWIDGET_LEASE_S", "120"))
"""How long an image stays leased to an annotator who does nothing with it (seconds)."""


class Lease(NamedTuple):
    """Who holds an image, and until when (epoch seconds; renewed by each of their edits)."""

    author: str
    expires: float


def holder(connection: Any, image_id: int, now: float) -> str | None:
    """Who holds a live lease on ``image_id``, or None."""
    row = connection.execute(
        "SELECT author FROM leases WHERE image_id = ? AND expires > ?", (int(image_id), now)
    ).fetchone()
    return None if row is None else str(row[0])


def live(connection: Any, now: float) -> dict[int, Lease]:
    """Every live lease, by image id: one small query (a row per image someone has open)."""
    rows = connection.execute(
        "SELECT image_id, author, expires FROM leases WHERE expires > ?", (now,)
    ).fetchall()
    return {int(row[0]): Lease(str(row[1]), float(row[2])) for row in rows}


def take(connection: Any, image_id: int, author: str, now: float, seconds: float) -> str | None:
    """Lease ``image_id`` to ``author`` until ``now + seconds``; None on success, else the
    other annotator whose live lease stands (nothing changes then)."""
    current = holder(connection, image_id, now)
    if current is not None and current != author:
        return current
    # delete + insert: one upsert that reads the same on SQLite and PostgreSQL
    connection.execute("DELETE FROM leases WHERE image_id = ?", (int(image_id),))
    connection.execute(
        "INSERT INTO leases (image_id, author, expires) VALUES (?, ?, ?)",
        (int(image_id), author, now + seconds),
    )
    return None


def renew(connection: Any, image_id: int, author: str, now: float) -> None:
    """Push back the expiry of ``author``'s live lease on ``image_id`` (if they hold one)."""
    connection.execute(
        "UPDATE leases SET expires = ? WHERE image_id = ? AND author = ? AND expires > ?",
        (now + LEASE_S, int(image_id), author, now),
    )


def release(connection: Any, image_id: int, author: str) -> None:
    """Give back ``author``'s lease on ``image_id`` (a no-op if they hold none)."""
    connection.execute(
        "DELETE FROM leases WHERE image_id = ? AND author = ?", (int(image_id), author)
    )


def others_clause(column: str = "id") -> str:
    """A ``WHERE`` condition keeping images nobody else holds a live lease on; takes the
    arguments ``(author, now)``.

    Example:
        >>> others_clause()
        'id NOT IN (SELECT image_id FROM leases WHERE author <> ? AND expires > ?)'
    """
    return f"{column} NOT IN (SELECT image_id FROM leases WHERE author <> ? AND expires > ?)"
