"""The app header's "annotator" field: whose name the next edits are signed with.

It shows and sets :attr:`Project.user <annowidget.store.Project.user>` (by default
``$ANNOWIDGET_USER`` or the login name, as the store chooses), so the log rows written after
a change name the new person. The lease on the image open in the Annotator moves with the
name (released under the old one, taken under the new one), so the image stays with
whoever is at the keyboard. A name the store refuses (blank, too long) is not applied: the
field goes back to the name in force and says why. Small and at the header's edge, so a
single user can ignore it.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets

from annowidget.store import Image, Project, ProjectError

__all__ = ["UserField"]


class UserField(widgets.HBox):
    """A text field that sets who the project's next edits are signed with.

    Example:
        >>> field = UserField(project, current_image=lambda: annotator.image)  # doctest: +SKIP
        >>> field.name.value = "ana"  # the next log rows name ana  # doctest: +SKIP
    """

    def __init__(
        self, project: Project, *, current_image: Callable[[], Image | None] = lambda: None
    ) -> None:
        self.project = project
        self._current_image = current_image
        self.name = widgets.Text(
            value=project.user,
            description="annotator",
            tooltip="your name: every edit and log row is signed with it (shared projects)",
            continuous_update=False,  # one change per Enter / blur, not per key
            style={"description_width": "initial"},
            layout=widgets.Layout(width="200px"),
        )
        self.message = widgets.HTML()
        self.name.observe(self._on_name, names="value")
        super().__init__([self.name, self.message], layout=widgets.Layout(align_items="center"))

    def set_user(self, name: str) -> str:
        """Sign the next edits with ``name`` and move the open image's lease to it; the
        name in force. Raises :class:`~annowidget.store.ProjectError` for a bad name.

        Example:
            >>> field.set_user("ben")  # doctest: +SKIP
            'ben'
        """
        project = self.project
        old = project.user
        project.user = name  # checked by the store: a bad name changes nothing
        new = project.user
        image = self._current_image()
        if new != old and image is not None and not project.readonly:
            project.release(image.id, author=old)
            project.lease(image.id)  # False if someone else took it meanwhile: no matter
        if self.name.value != new:
            self.name.value = new
        return new

    def _on_name(self, change: dict[str, object]) -> None:
        try:
            self.set_user(str(change["new"]))
        except ProjectError as exc:
            self.name.value = self.project.user  # first: this change clears the message
            self.message.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
            return
        self.message.value = ""
