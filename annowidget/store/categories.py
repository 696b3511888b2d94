"""Category names as stored (one line, NFC) and the race-free add.

Example:
    >>> category_name("  person ")
    'person'
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from annowidget.store import annotations
from annowidget.store.errors import ProjectError
from annowidget.store.records import Category


def category_name(name: str) -> str:
    """A category name as stored: stripped, NFC-normalised, free of control characters.

    A newline or another control character would break YOLO's ``classes.txt`` and VOC's
    XML; NFC makes a composed and a decomposed ``café`` the same category.

    Example:
        >>> category_name(" cafe\\u0301 ") == "caf\\u00e9"
        True
    """
    clean = unicodedata.normalize("NFC", str(name).strip())
    if not clean:
        raise ProjectError("category name must not be empty")
    bad = [c for c in clean if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    if bad:
        raise ProjectError(
            f"category name {clean!r} has a control character ({bad[0]!r}); "
            "names must be one line of printable text"
        )
    return clean


def by_name(connection: sqlite3.Connection, name: str) -> Category | None:
    """The category called ``name`` (compared as :func:`category_name` stores it), or None."""
    clean = unicodedata.normalize("NFC", str(name).strip())
    row = connection.execute("SELECT * FROM categories WHERE name = ?", (clean,)).fetchone()
    return None if row is None else Category.from_row(row)


def add(
    connection: sqlite3.Connection,
    name: str,
    supercategory: str = "",
    keypoints: Sequence[str] | None = None,
    skeleton: Sequence[Sequence[int]] | None = None,
) -> int:
    """The id of the category ``name``, inserted if missing; call inside a write transaction.

    Looking up and inserting in one transaction is what keeps two processes adding the
    same name from racing into a ``UNIQUE`` failure. Keypoint names given for a category
    that has none are added to it.
    """
    name = category_name(name)
    existing = by_name(connection, name)
    if existing is not None:
        if keypoints and not existing.keypoints:
            connection.execute(
                "UPDATE categories SET keypoints = ?, skeleton = ? WHERE id = ?",
                (_json(keypoints), _json(_skeleton(skeleton)), existing.id),
            )
        return existing.id
    cursor = connection.execute(
        "INSERT INTO categories (name, supercategory, keypoints, skeleton) VALUES (?, ?, ?, ?)",
        (name, supercategory, _json(keypoints), _json(_skeleton(skeleton))),
    )
    annotations.log(connection, "add_category", payload={"name": name})
    return int(cursor.lastrowid)


def _json(values: Iterable[Any] | None) -> str:
    return json.dumps(list(values or []))


def _skeleton(skeleton: Sequence[Sequence[int]] | None) -> list[list[int]]:
    return [[int(a), int(b)] for a, b in (skeleton or [])]
