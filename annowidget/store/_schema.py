"""The SQLite schema of a project, and the pragmas every connection uses."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = 1

# Boxes are plain columns (not JSON) so paging and exporting a million of them stays cheap;
# polygons, RLE masks and keypoints are JSON text because they are read whole or not at all.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id        INTEGER PRIMARY KEY,
    path      TEXT NOT NULL UNIQUE,
    width     INTEGER NOT NULL CHECK (width > 0),
    height    INTEGER NOT NULL CHECK (height > 0),
    checksum  TEXT NOT NULL DEFAULT '',
    folder    TEXT NOT NULL DEFAULT 'unlabeled',
    status    TEXT NOT NULL DEFAULT 'unlabeled'
              CHECK (status IN ('unlabeled', 'predicted', 'reviewed')),
    added_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_folder_status ON images (folder, status);
CREATE INDEX IF NOT EXISTS images_status ON images (status);
CREATE TABLE IF NOT EXISTS categories (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    supercategory TEXT NOT NULL DEFAULT '',
    keypoints     TEXT NOT NULL DEFAULT '[]',
    skeleton      TEXT NOT NULL DEFAULT '[]'
);
-- AUTOINCREMENT: an annotation id is never reused, so the browser, the undo history and
-- the action log can name an annotation by id without ambiguity.
CREATE TABLE IF NOT EXISTS annotations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id      INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    category_id   INTEGER NOT NULL REFERENCES categories (id),
    x             REAL NOT NULL,
    y             REAL NOT NULL,
    w             REAL NOT NULL,
    h             REAL NOT NULL,
    segmentation  TEXT,
    keypoints     TEXT,
    num_keypoints INTEGER NOT NULL DEFAULT 0,
    iscrowd       INTEGER NOT NULL DEFAULT 0,
    area          REAL NOT NULL,
    score         REAL,
    source        TEXT NOT NULL DEFAULT 'human',
    is_prediction INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS annotations_image ON annotations (image_id);
CREATE TABLE IF NOT EXISTS actions (
    id            INTEGER PRIMARY KEY,
    ts            REAL NOT NULL,
    action        TEXT NOT NULL,
    image_id      INTEGER,
    annotation_id INTEGER,
    duration      REAL,
    payload       TEXT NOT NULL DEFAULT '{}',
    author        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS actions_image ON actions (image_id);
-- An image being labeled is leased to its annotator until ``expires`` (a Unix time): the
-- next unlabeled image handed to someone else skips it; a quiet annotator's lease runs out.
CREATE TABLE IF NOT EXISTS leases (
    image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    author   TEXT NOT NULL,
    expires  REAL NOT NULL
);
-- The action log is append-only: history that feeds undo and effort metrics must not be rewritten.
CREATE TRIGGER IF NOT EXISTS actions_no_update BEFORE UPDATE ON actions
BEGIN SELECT RAISE(ABORT, 'the action log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS actions_no_delete BEFORE DELETE ON actions
BEGIN SELECT RAISE(ABORT, 'the action log is append-only'); END;
"""


def configure(connection: sqlite3.Connection) -> None:
    """Apply the pragmas every connection to a project database needs.

    WAL lets readers (the UI, a training thread, another process) see a consistent snapshot
    while one writer commits. synchronous=NORMAL in WAL mode survives a killed process (the
    kernel dying); only an OS crash or power loss can drop the last commits.

    Example:
        >>> import sqlite3
        >>> configure(sqlite3.connect(":memory:"))
    """
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=10000")


def upgrade(connection: sqlite3.Connection) -> None:
    """Bring a SQLite project made by an earlier version up to this schema (idempotent).

    Example:
        >>> import sqlite3
        >>> db = sqlite3.connect(":memory:")
        >>> old = SCHEMA.replace("payload       TEXT NOT NULL DEFAULT '{}',", "payload TEXT")
        >>> _ = db.executescript(old.replace("    author        TEXT NOT NULL DEFAULT ''", ""))
        >>> upgrade(db)
        >>> "author" in [row[1] for row in db.execute("PRAGMA table_info(actions)")]
        True
    """
    columns = [row[1] for row in connection.execute("PRAGMA table_info(actions)")]
    if "author" not in columns:
        connection.execute("ALTER TABLE actions ADD COLUMN author TEXT NOT NULL DEFAULT ''")
    connection.executescript(SCHEMA)  # new tables only: every statement is IF NOT EXISTS


def create(path: Path, *, images_root: str) -> None:
    """Create the project database at ``path``, recording where its images live.

    Example:
        >>> import pathlib, tempfile
        >>> create(pathlib.Path(tempfile.mkdtemp()) / "project.sqlite", images_root="images")
    """
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        configure(connection)
        connection.executescript(SCHEMA)
        connection.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("schema_version", str(SCHEMA_VERSION)),
                ("images_root", images_root),
                ("created", str(time.time())),
            ],
        )
    finally:
        connection.close()


def create_postgres(dsn: str, *, images_root: str) -> None:
    """Create the project's tables in the (empty) PostgreSQL database of ``dsn``.

    Refuses a database that already holds a project: two folders must not share one
    database by accident (participants open the one shared project folder instead).
    """
    import psycopg

    from annowidget.store import _dialect
    from annowidget.store._postgres import describe
    from annowidget.store.errors import ProjectError

    try:
        with psycopg.connect(dsn, autocommit=True) as connection, connection.transaction():
            exists = connection.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
            if exists and exists[0]:
                raise ProjectError(f"{describe(dsn)}: this database already holds a project")
            connection.execute(_dialect.postgres_schema(SCHEMA))
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO meta (key, value) VALUES (%s, %s)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("images_root", images_root),
                        ("created", str(time.time())),
                    ],
                )
    except psycopg.Error as exc:
        raise ProjectError(f"{describe(dsn)}: cannot create the project there ({exc})") from None
