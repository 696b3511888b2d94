"""A throwaway PostgreSQL cluster for the tests: Debian's server, 127.0.0.1 only, trust auth.

``postgres_dsn`` (session scope) runs ``initdb`` into a fresh temporary folder as an
unprivileged user (PostgreSQL refuses to run as root), starts ``postgres`` on a free port
listening on 127.0.0.1 only (no Unix socket outside that folder), yields the DSN of the
cluster's ``postgres`` database and stops the server at the end of the session.
``postgres_db`` (function scope) gives each test its own empty database in that cluster.

Without the server binaries the PostgreSQL tests skip, naming the reason; with ``CI=true``
they fail instead, so a CI machine that lost its server cannot pass by skipping.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_USER = "annowidget-pg"
"""The system user the cluster runs as when the tests run as root."""
ROLE = "annowidget"
_counter = itertools.count()


def server_bin() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` folder holding ``initdb``, or None."""
    env = os.environ.get("ANNOWIDGET_PG_BIN")
    if env:
        return Path(env)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    return found[-1].parent if found else None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user() -> list[str]:
    """The command prefix that runs the server as an unprivileged user (root only)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )
    return ["runuser", "-u", PG_USER, "--"]


class Cluster:
    """The running throwaway server: its DSN, and a restart for the fault tests."""

    def __init__(self, binaries: Path, data: Path, log: Path, options: str, prefix: list[str]):
        self.binaries, self.data, self.log, self.options, self.prefix = (
            binaries,
            data,
            log,
            options,
            prefix,
        )
        self.dsn = ""

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(self.binaries / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            text=True,
        )

    def start(self) -> None:
        self.pg_ctl("-l", str(self.log), "-o", self.options, "-w", "-t", "60", "start")

    def restart(self) -> None:
        """Stop the server (dropping every connection) and start it again, same port."""
        self.pg_ctl("-m", "fast", "-w", "stop")
        self.start()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A running throwaway cluster (see the module's docstring)."""
    binaries = server_bin()
    if binaries is None or not (binaries / "pg_ctl").exists():
        _unavailable(
            "no PostgreSQL server binaries under /usr/lib/postgresql (apt install postgresql)"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'psycopg[binary]' psycopg-pool)")
    folder = Path(tempfile.mkdtemp(prefix="annowidget-pg-"))
    data = folder / "data"
    prefix = _as_user()
    if prefix:
        shutil.chown(folder, user=PG_USER)
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
        "-c fsync=off -c max_connections=200 -c shared_buffers=32MB"
    )
    cluster = Cluster(binaries, data, folder / "server.log", options, prefix)
    try:
        subprocess.run(
            [
                *prefix,
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                ROLE,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        cluster.start()
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        if cluster.log.exists():
            detail += cluster.log.read_text(errors="replace")[-2000:]
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(f"the throwaway server did not start: {exc} {detail.strip()}")
    cluster.dsn = f"postgresql://{ROLE}@127.0.0.1:{port}/postgres"
    try:
        yield cluster
    finally:
        subprocess.run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn(postgres_cluster: Cluster) -> str:
    """The DSN of a running throwaway cluster (its ``postgres`` database)."""
    return postgres_cluster.dsn


def create_database(dsn: str, name: str) -> str:
    """Create the empty database ``name`` in the cluster of ``dsn``; its DSN."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def postgres_db(postgres_dsn: str) -> str:
    """The DSN of a fresh, empty database for one test."""
    return create_database(postgres_dsn, f"t{os.getpid()}_{next(_counter)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_db(request: pytest.FixtureRequest) -> str | None:
    """``db`` for ``Project.create``: None (SQLite) or a fresh PostgreSQL database's DSN.

    A ``project`` fixture built on it runs every test of its module on both backends.
    """
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_db")
