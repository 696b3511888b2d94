"""Will a JSON file fit in memory once parsed? Asked before parsing, not answered by a crash.

``json.loads`` builds a Python object per JSON value: a file of empty objects (``{},`` is
3 bytes, a dict 64) takes 25 times its size, a real COCO file about 5 times. So the need
is estimated from the bytes (a count of ``{``, ``[`` and ``,`` is fast) and compared with
what the machine, the container (cgroup) and the process limit (``ulimit -v``) leave.

Example:
    >>> json_memory_needed(b'{"images":[{},{}]}') > 18
    True
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

# CPython 3.11/3.12 sizes, rounded up: an empty dict, an empty list, and a pointer plus a
# float per element. Measured estimate/actual: 1.4 on a file of "{}" items, 1.2 on coco128.
_PER_OBJECT = 64
_PER_ARRAY = 56
_PER_ELEMENT = 40


def json_memory_needed(data: bytes) -> int:
    """About how many bytes ``json.loads(data)`` allocates (an overestimate, within ~1.5x)."""
    return (
        len(data)
        + _PER_OBJECT * data.count(b"{")
        + _PER_ARRAY * data.count(b"[")
        + _PER_ELEMENT * data.count(b",")
    )


def memory_available() -> int | None:
    """Bytes this process can still allocate: the least of what the machine, the cgroup
    and ``RLIMIT_AS`` leave; None where none of them can be read (not Linux)."""
    found = [
        value
        for value in (_meminfo_available(), _cgroup_available(), _rlimit_available())
        if value is not None
    ]
    return min(found) if found else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def _rlimit_available() -> int | None:
    if resource is None:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return soft - pages * os.sysconf("SC_PAGE_SIZE")


def read_json_bytes(file: Path, error: type[Exception]) -> bytes:
    """The bytes of ``file``; raises ``error`` naming it when parsing them would not fit.

    Example:
        >>> # data = read_json_bytes(Path("instances.json"), FormatError); json.loads(data)
    """
    available = memory_available()
    size = file.stat().st_size
    if available is None:
        return file.read_bytes()
    needed = size  # the bytes alone do not fit: no need to read them to know
    if size <= available:
        data = file.read_bytes()
        needed = json_memory_needed(data)
        if needed <= available:
            return data
        del data
    raise error(
        f"{file}: reading this {_size(size)} file takes about {_size(needed)} of memory, "
        f"{_size(max(available, 0))} is free; split the file or free memory"
    )


def _size(value: int) -> str:
    if value >= 1 << 30:
        return f"{value / (1 << 30):.1f} GiB"
    return f"{value / (1 << 20):.0f} MiB"
