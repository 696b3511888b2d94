"""Telling a live training run from a dead one (its process killed: kill -9, a crashed kernel).

A run writes ``{"pid", "host", "heartbeat"}`` into its card while it trains. On the same host
the process id says it all; from another host (a shared folder) only a heartbeat older than
:data:`STALE_SECONDS` does.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: A run on another host whose heartbeat is older than this is taken for dead.
STALE_SECONDS = 30 * 60


def _now() -> datetime:
    return datetime.now(UTC)


def run_marker() -> dict[str, Any]:
    """What the card of a running model records about the process training it.

    Example:
        >>> run_marker()["pid"] == os.getpid()
        True
    """
    return {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": _now().isoformat()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


def run_is_dead(run: dict[str, Any]) -> bool:
    """Whether the process behind a ``run_marker()`` is gone (``False`` when unsure).

    Example:
        >>> run_is_dead(run_marker())
        False
    """
    pid, host = run.get("pid"), run.get("host")
    if not isinstance(pid, int) or not isinstance(host, str):
        return False  # an older card: no way to tell
    if host == socket.gethostname():
        return not _pid_alive(pid)
    try:
        beat = datetime.fromisoformat(str(run.get("heartbeat")))
    except ValueError:
        return False
    return (_now() - beat).total_seconds() > STALE_SECONDS


def remove_temp_files(folder: Path) -> int:
    """Delete the half-written temporary files an interrupted atomic write left in ``folder``
    (``.<name>.<random>.tmp``, see ``annowidget._io``); returns how many.

    Example:
        >>> import tempfile
        >>> remove_temp_files(Path(tempfile.mkdtemp()))
        0
    """
    removed = 0
    for path in [*folder.glob(".*.tmp"), *folder.glob("*/.*.tmp")]:
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
