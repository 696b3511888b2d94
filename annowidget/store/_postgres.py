"""Connections to a PostgreSQL project: a psycopg 3 pool behind SQLite's connection API.

The store's functions take a connection and call ``execute``/``executemany``/``cursor``
on it, read rows by index or by column name and ``lastrowid`` after an insert, exactly as
on ``sqlite3``. :class:`PostgresConnections` hands them an object that does the same on a
pooled psycopg connection, translating the SQL through :mod:`annowidget.store._dialect`.

A thread holds a pooled connection only for the length of a transaction; a statement
outside one borrows a connection for itself (autocommit), so twenty idle widgets do not
pin twenty server connections. A connection the server dropped (a restart) is discarded
by the pool and the next statement gets a fresh one.

Example:
    >>> # pool = PostgresConnections("postgresql://annowidget@127.0.0.1/shared")
    >>> # with pool.transaction("BEGIN IMMEDIATE") as connection:
    >>> #     connection.execute("UPDATE images SET folder = ? WHERE id = ?", ("train", 1))
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from annowidget.store import _dialect
from annowidget.store.errors import ProjectError

POOL_SIZE = 8
"""Most server connections one process opens (threads share them transaction by transaction)."""
WAIT_S = 5.0
"""Longest a statement waits for a pooled connection (the server down: then it says
"reconnecting" instead of freezing the UI thread for long)."""


def describe(dsn: str) -> str:
    """The DSN with any password masked, for messages and ``info``.

    Example:
        >>> describe("postgresql://ann:secret@db.example/shared")
        'postgresql://ann:***@db.example/shared'
    """
    import re

    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)


class Row(tuple):
    """A result row read by position or by column name, like ``sqlite3.Row``.

    Example:
        >>> row = Row((1, "a.jpg"), {"id": 0, "path": 1})
        >>> row[0], row["path"], row.keys()
        (1, 'a.jpg', ['id', 'path'])
    """

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


class Cursor:
    """A finished statement's rows (read eagerly) and ``lastrowid``, ``sqlite3`` style."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self._position = 0
        self.lastrowid: int | None = None
        self.rowcount = -1
        self.row_factory: Any = Row
        self.arraysize = 1

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        text = _dialect.postgres_sql(sql)
        with self._connection._borrow() as raw:
            try:
                # always a parameter tuple, even empty: then `%%` reads as `%` as it should
                cursor = raw.execute(text, tuple(args))
                self.rowcount = cursor.rowcount
                if cursor.description is None:
                    self._rows = []
                else:
                    names = {column.name: i for i, column in enumerate(cursor.description)}
                    values = cursor.fetchall()
                    plain = self.row_factory is None
                    self._rows = values if plain else [Row(v, names) for v in values]
            except Exception as exc:
                raise _dialect.as_sqlite_error(exc) from exc
        self._position = 0
        if text.endswith(" RETURNING id") and self._rows:
            self.lastrowid = int(self._rows[0][0])
            self._rows = []
        return self

    def executemany(self, sql: str, rows: Any) -> Cursor:
        text = _dialect.postgres_sql(sql)
        with self._connection._borrow() as raw:
            try:
                with raw.cursor() as cursor:
                    cursor.executemany(text, [tuple(row) for row in rows])
            except Exception as exc:
                raise _dialect.as_sqlite_error(exc) from exc
        return self

    def fetchone(self) -> Any:
        if self._position >= len(self._rows):
            return None
        self._position += 1
        return self._rows[self._position - 1]

    def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        rows = self._rows[self._position : self._position + size]
        self._position += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._position :]
        self._position = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        while (row := self.fetchone()) is not None:
            yield row


class Connection:
    """One thread's view of the pool: ``execute`` and friends, inside or outside a transaction."""

    dialect = "postgresql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.held: Any = None  # the pooled connection of the transaction in progress

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        if self.held is not None:
            yield self.held
            return
        try:
            raw = self._pool.getconn()
        except Exception as exc:
            raise _dialect.as_sqlite_error(exc) from exc
        try:
            yield raw
        finally:
            self._pool.putconn(raw)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        return Cursor(self).execute(sql, args)

    def executemany(self, sql: str, rows: Any) -> Cursor:
        return Cursor(self).executemany(sql, rows)

    def cursor(self) -> Cursor:
        return Cursor(self)

    @property
    def in_transaction(self) -> bool:
        import psycopg

        return (
            self.held is not None
            and not self.held.closed
            and self.held.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        )


class PostgresConnections:
    """The pooled connections of one PostgreSQL project; the interface of ``Connections``."""

    def __init__(self, dsn: str, *, readonly: bool = False, pool_size: int = POOL_SIZE) -> None:
        from psycopg_pool import ConnectionPool

        self.dsn = dsn
        self.db_path = describe(dsn)  # what messages name
        self.readonly = readonly
        self._local = threading.local()
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced
            timeout=WAIT_S,
            reconnect_timeout=24 * 3600.0,  # keep trying through a long server outage
            open=False,
            name="annowidget",
        )
        try:
            self._pool.open(wait=True, timeout=15)
        except Exception as exc:
            self._pool.close()
            raise ProjectError(
                f"{self.db_path}: cannot connect to the PostgreSQL server ({exc})"
            ) from None

    def get(self) -> Connection:
        """This thread's connection object."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = Connection(self._pool)
            self._local.depth = 0
        return connection

    def close(self) -> None:
        self._pool.close()
        self._local = threading.local()

    def broken(self, exc: Exception) -> ProjectError:
        return ProjectError(f"{self.db_path}: {exc}")

    @contextmanager
    def transaction(self, begin: str) -> Iterator[Connection]:
        """A write (``BEGIN IMMEDIATE``: serialised by an advisory lock) or a read (one
        snapshot) transaction; nested calls are savepoints, as on SQLite."""
        connection = self.get()
        depth = self._local.depth
        if depth:
            connection.execute(f"SAVEPOINT s{depth}")
        else:
            try:
                connection.held = self._pool.getconn()
            except Exception as exc:
                raise _dialect.as_sqlite_error(exc) from exc
            kind = "write" if begin.upper().startswith("BEGIN IMMEDIATE") else "read"
            try:
                for statement in _dialect.BEGIN["postgresql"][kind].split("; "):
                    connection.execute(statement)
            except BaseException:
                self._release(connection)
                raise
        self._local.depth = depth + 1
        try:
            yield connection
        except BaseException:
            self._local.depth = depth
            if depth:
                if connection.in_transaction:
                    connection.execute(f"ROLLBACK TO s{depth}")
                    connection.execute(f"RELEASE s{depth}")
            else:
                self._release(connection, rollback=True)
            raise
        self._local.depth = depth
        if depth:
            connection.execute(f"RELEASE s{depth}")
            return
        try:
            connection.execute("COMMIT")
        finally:
            self._release(connection, rollback=True)

    def _release(self, connection: Connection, *, rollback: bool = False) -> None:
        raw, connection.held = connection.held, None
        if raw is None:
            return
        try:
            if rollback and not raw.closed and raw.info.transaction_status.name != "IDLE":
                raw.rollback()
        except Exception:
            pass  # a dead connection: the pool discards it below
        finally:
            self._pool.putconn(raw)
