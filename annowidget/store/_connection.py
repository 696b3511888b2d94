"""One SQLite connection per thread, and transactions that nest as savepoints.

Example:
    >>> import pathlib, sqlite3, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.sqlite"
    >>> sqlite3.connect(path).close()
    >>> pool = Connections(path)
    >>> with pool.transaction("BEGIN IMMEDIATE") as connection:
    ...     _ = connection.execute("CREATE TABLE t (x)")
    >>> pool.close()
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from annowidget.store import _schema
from annowidget.store.errors import ProjectError

_BROKEN = ("not a database", "malformed", "no such table")


class Connections:
    """The connections of one project file, one per thread (SQLite's rule), closed together.

    ``readonly`` opens the file with ``mode=ro``, falling back to ``immutable=1`` when the
    folder is not writable (WAL readers need to create the ``-shm`` index beside the file).
    """

    def __init__(self, db_path: Path, *, readonly: bool = False) -> None:
        self.db_path = db_path
        self.readonly = readonly
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
            self._local.depth = 0
            with self._lock:
                self._open.append(connection)
        return connection

    def close(self) -> None:
        """Close every connection (of every thread)."""
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            connection = sqlite3.connect(
                self.db_path, isolation_level=None, check_same_thread=False
            )
            _schema.configure(connection)
            return connection
        uri = self.db_path.as_uri()
        for options in ("mode=ro", "mode=ro&immutable=1"):
            connection = sqlite3.connect(
                f"{uri}?{options}", uri=True, isolation_level=None, check_same_thread=False
            )
            try:
                connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                connection.close()
                continue
            connection.execute("PRAGMA busy_timeout=10000")
            return connection
        raise ProjectError(f"{self.db_path}: cannot open the project file for reading")

    def broken(self, exc: sqlite3.DatabaseError) -> ProjectError:
        """A one-line error naming the file, for a damaged or foreign ``project.sqlite``."""
        text = str(exc)
        if any(mark in text for mark in _BROKEN):
            return ProjectError(f"{self.db_path}: not a readable annowidget project ({text})")
        return ProjectError(f"{self.db_path}: {text}")

    @contextmanager
    def transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        """``begin`` a transaction, commit it on success, roll it back on any exception.

        Inside another transaction of this thread it is a savepoint instead, so a group of
        edits commits together, and an inner failure the caller catches undoes only itself.
        """
        connection = self.get()
        depth = self._local.depth
        start, undo, done = (
            (begin, "ROLLBACK", "COMMIT")
            if depth == 0
            else (f"SAVEPOINT s{depth}", f"ROLLBACK TO s{depth}", f"RELEASE s{depth}")
        )
        try:
            connection.execute(start)
        except sqlite3.DatabaseError as exc:
            if any(mark in str(exc) for mark in _BROKEN):
                raise self.broken(exc) from exc
            raise  # locked, read-only...: the caller's message says it as SQLite does
        self._local.depth = depth + 1
        try:
            yield connection
        except BaseException:
            if connection.in_transaction:  # SQLite may have rolled back already (disk full)
                connection.execute(undo)
                if depth:
                    connection.execute(done)
            raise
        finally:
            self._local.depth = depth
        connection.execute(done)
