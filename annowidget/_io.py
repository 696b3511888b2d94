"""The one atomic file write of the package, shared by the store, formats and models.

Readers see the old file or the new one, never half of it: the bytes go to a temporary
file in the same directory, are flushed to disk, and the file is renamed over the target
(rename is atomic on POSIX and Windows). The result gets the permissions a plain ``open``
would give (``0o666`` less the umask): ``mkstemp`` alone makes files private (``0o600``),
and exports, model cards and weights are meant to be read by a team.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where possible, else set and restored).

    Example:
        >>> 0 <= current_umask() <= 0o777
        True
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], mode: str = "wb", **open_kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    ``mode`` is ``"wb"`` or ``"w"`` (with ``encoding=...``); an exception inside the block
    removes the temporary file and leaves ``path`` as it was.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.txt"
        >>> with atomic_writer(p, "w", encoding="utf-8") as out:
        ...     _ = out.write("cat\\n")
        >>> p.read_text()
        'cat\\n'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer writes whole files: mode 'w' or 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX: the permissions open() would have given
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "card.json"
        >>> atomic_write_bytes(p, b"{}").read_bytes()
        b'{}'
    """
    with atomic_writer(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as indented JSON, atomically (see :func:`atomic_writer`).

    Example:
        >>> import tempfile, pathlib, json
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
        >>> json.loads(atomic_write_json(p, {"a": 1}).read_text())
        {'a': 1}
    """
    return atomic_write_bytes(path, json.dumps(value, indent=2, sort_keys=True).encode())
