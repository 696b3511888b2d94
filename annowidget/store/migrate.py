"""Move a project between SQLite and PostgreSQL, every row and id exactly.

The project folder stays where it is (with ``models/``, so the model registry and its
checkpoints come along untouched); only where its rows live changes. The source is kept:
a SQLite file is renamed ``project.sqlite.migrated``, a PostgreSQL database is left as it
was (drop it yourself once the copy is checked).

Example:
    >>> # migrate("raccoons", "postgresql://annowidget@db.lan/raccoons")
    >>> # migrate("raccoons", "sqlite")  # and back
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from annowidget.store import _dialect, _schema
from annowidget.store._postgres import PostgresConnections, describe
from annowidget.store.errors import ProjectError
from annowidget.store.project import DB_NAME, POINTER_NAME, Project

TABLES = ("meta", "categories", "images", "annotations", "actions", "leases")
"""Every table of a project, parents before children (foreign keys hold while copying)."""
_ORDER = {"meta": "key", "leases": "image_id"}
_BATCH = 5000


def table_rows(project: Project) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (ordered by key) and the annotation ids' high-water mark:
    what a migration must carry over unchanged."""
    with project.read() as connection:
        rows = {
            table: [
                tuple(row)
                for row in connection.execute(
                    f"SELECT * FROM {table} ORDER BY {_ORDER.get(table, 'id')}"
                ).fetchall()
            ]
            for table in TABLES
        }
        top = _dialect.id_high_water(connection, project.backend, "annotations")
    rows["annotations high-water"] = [(top,)]
    return rows


def migrate(root: str | os.PathLike[str], to: str) -> dict[str, int]:
    """Copy the project in ``root`` to ``to`` (``"sqlite"`` or a ``postgresql://`` DSN of
    an empty database) and point the folder at the copy; the rows copied per table.

    The source's write lock is held for the whole copy, so no edit lands in the old place
    meanwhile.
    """
    folder = Path(root).absolute()
    target_kind = "sqlite" if to == "sqlite" else "postgresql"
    if target_kind == "postgresql" and not to.startswith(("postgresql://", "postgres://")):
        raise ProjectError(f"--to {to!r}: expected 'sqlite' or a postgresql://user@host/db address")
    with Project.open(folder) as source:
        if target_kind == "sqlite" and source.backend == "sqlite":
            raise ProjectError(f"{folder}: the project is already a SQLite file")
        if to == source.dsn:
            raise ProjectError(f"{folder}: the project already lives in {describe(to)}")
        stored_root = source._meta("images_root") or ""
        with source.write() as reading:
            high = _dialect.id_high_water(reading, source.backend, "annotations")
            if target_kind == "sqlite":
                partial = folder / (DB_NAME + ".partial")
                partial.unlink(missing_ok=True)
                _schema.create(partial, images_root=stored_root)
                target = sqlite3.connect(partial, isolation_level=None)
                try:
                    target.execute("BEGIN IMMEDIATE")
                    counts = _copy(reading, target, "sqlite", high)
                    target.execute("COMMIT")
                except BaseException:
                    target.close()
                    partial.unlink(missing_ok=True)
                    raise
                target.close()
            else:
                _schema.create_postgres(to, images_root=stored_root)
                connections = PostgresConnections(to, pool_size=1)
                try:
                    with connections.transaction("BEGIN IMMEDIATE") as target:
                        counts = _copy(reading, target, "postgresql", high)
                finally:
                    connections.close()
        old_backend = source.backend
    _switch(folder, old_backend, target_kind, to)
    return counts


def _copy(reading: Any, target: Any, kind: str, high: int) -> dict[str, int]:
    target.execute("DELETE FROM meta")  # create() wrote its own; the source's come instead
    counts = {}
    for table in TABLES:
        cursor = reading.execute(f"SELECT * FROM {table} ORDER BY {_ORDER.get(table, 'id')}")
        rows = cursor.fetchall()
        counts[table] = len(rows)
        if not rows:
            continue
        columns = list(rows[0].keys())
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for start in range(0, len(rows), _BATCH):
            target.executemany(sql, [tuple(row) for row in rows[start : start + _BATCH]])
        if table not in ("meta", "leases"):
            top = int(rows[-1][0])
            set_to = max(high, top) if table == "annotations" else top
            _dialect.set_id_high_water(target, kind, table, set_to)
    if not counts["annotations"]:
        _dialect.set_id_high_water(target, kind, "annotations", high)
    return counts


def _switch(folder: Path, old: str, new: str, to: str) -> None:
    """Point the folder at the copy; the old SQLite file or pointer is kept beside it."""
    if old == "sqlite":
        os.replace(folder / DB_NAME, folder / (DB_NAME + ".migrated"))
        for suffix in ("-wal", "-shm"):
            (folder / (DB_NAME + suffix)).unlink(missing_ok=True)
    else:
        os.replace(folder / POINTER_NAME, folder / (POINTER_NAME + ".migrated"))
    if new == "sqlite":
        os.replace(folder / (DB_NAME + ".partial"), folder / DB_NAME)
    else:
        (folder / POINTER_NAME).write_text(json.dumps({"db": to}) + "\n", encoding="utf-8")
