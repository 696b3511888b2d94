"""The store's one error type, in its own module so every store module can raise it."""

from __future__ import annotations


class ProjectError(ValueError):
    """A project operation was refused; the message names the path or field at fault.

    Example:
        >>> str(ProjectError("category name must not be empty"))
        'category name must not be empty'
    """


class ChangedElsewhereError(ProjectError):
    """An annotation is no longer as the caller last saw it (another view or process edited it).

    Example:
        >>> isinstance(ChangedElsewhereError("annotation 3 changed elsewhere"), ProjectError)
        True
    """
