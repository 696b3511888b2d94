"""The one exception a command raises for a reason the user can act on."""

from __future__ import annotations


class CommandError(Exception):
    """A command failed for a reason the user can act on; ``main`` prints it as one line.

    Example:
        >>> str(CommandError("no reviewed images to split"))
        'no reviewed images to split'
    """
