"""Small file helpers shared by the store, the trainer and the model registry."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same directory, are flushed to disk, and the
    temporary file is renamed over ``path`` (rename is atomic on POSIX and Windows).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "card.json"
        >>> atomic_write_bytes(p, b"{}").read_bytes()
        b'{}'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as indented JSON, atomically (see :func:`atomic_write_bytes`).

    Example:
        >>> import tempfile, pathlib, json
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
        >>> json.loads(atomic_write_json(p, {"a": 1}).read_text())
        {'a': 1}
    """
    return atomic_write_bytes(path, json.dumps(value, indent=2, sort_keys=True).encode())
