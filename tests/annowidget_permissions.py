"""Run a command as if file permissions applied, even when the tests run as root.

Root ignores a folder's missing write bit through the CAP_DAC_OVERRIDE capability; a child
started without it (and without CAP_DAC_READ_SEARCH) meets permissions like any user, while
keeping root's uid so it can still run the venv's Python under /root.

Example:
    >>> subprocess.run([*AS_A_USER, "touch", "/read-only/x"])  # doctest: +SKIP
"""

from __future__ import annotations

import os

#: a prefix for subprocess commands: empty for a normal user, setpriv for root
AS_A_USER: list[str] = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
)
