"""The throwaway PostgreSQL cluster the store's tests run against."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg


def test_the_cluster_listens_on_localhost_and_runs_unprivileged(postgres_db: str) -> None:
    assert "@127.0.0.1:" in postgres_db
    with psycopg.connect(postgres_db) as connection:
        address = connection.execute("SELECT inet_server_addr()").fetchone()[0]
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert str(address) == "127.0.0.1"
    status = Path(f"/proc/{backend}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    assert uid != 0 or os.geteuid() != 0  # never the superuser of the machine
