"""The one exception a command raises for a reason the user can act on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class CommandError(Exception):
    """A command failed for a reason the user can act on; ``main`` prints it as one line.

    Example:
        >>> str(CommandError("no reviewed images to split"))
        'no reviewed images to split'
    """


def check_folders(project: Any, folders: Iterable[str] | None, flag: str = "--folder") -> None:
    """Refuse a folder name the project does not have (it would silently select nothing).

    Example:
        >>> class P:
        ...     def folders(self): return ["train", "test"]
        >>> check_folders(P(), ["tset"])
        Traceback (most recent call last):
        ...
        annowidget.cli.errors.CommandError: --folder tset: no such folder (folders: train, test)
    """
    known = project.folders()
    for name in folders or ():
        if name not in known:
            listed = ", ".join(known) or "none yet"
            raise CommandError(f"{flag} {name}: no such folder (folders: {listed})")
