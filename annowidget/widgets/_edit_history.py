"""Undo and redo of the Annotator's edits, backed by the project's action log.

The store logs every edit with its ``before``/``after`` payload. An undo entry is just the
ids of the log entries one user action wrote (a drag: one ``update``; accept all: several
``accept``), plus the image's status around it. Undo reads those entries back from the log
and applies their inverse through the store's public API; redo applies them again. Ids stay
stable both ways (``restore_annotation`` puts a deleted row back under its own id), so a
later entry that names an annotation still finds it.

Undo and redo are logged as ``undo``/``redo`` entries naming the actions they reverted or
replayed, so effort metrics can leave them out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from annowidget.store import Action, ChangedElsewhereError, Project, ProjectError

__all__ = ["EDIT_ACTIONS", "EditHistory"]

EDIT_ACTIONS = frozenset({"add", "update", "accept", "delete", "reject"})


@dataclass(frozen=True)
class _Entry:
    action_ids: tuple[int, ...]
    status_before: str
    status_after: str


class EditHistory:
    """Per-image undo/redo stacks of action-log entries.

    Example:
        >>> # history = EditHistory(project)
        >>> # mark = history.mark(image_id)
        >>> # ann = project.add_annotation(image_id, category_id, [0, 0, 10, 10])
        >>> # history.record(image_id, mark, [ann.id], status_before="unlabeled")
        >>> # history.undo(image_id)  # the box is gone again
    """

    def __init__(self, project: Project, *, limit: int = 500) -> None:
        self._project = project
        self._limit = limit
        self._done: dict[int, list[_Entry]] = {}
        self._undone: dict[int, list[_Entry]] = {}
        self._cursor: dict[int, int] = {}  # image id -> newest log entry seen for it

    # ------------------------------------------------------------------ queries
    def can_undo(self, image_id: int) -> bool:
        return bool(self._done.get(image_id))

    def can_redo(self, image_id: int) -> bool:
        return bool(self._undone.get(image_id))

    def mark(self, image_id: int) -> int:
        """The newest log entry of ``image_id`` now: what an edit logs next comes after it.

        Per image, so it reads that image's few entries, never the whole project's log.
        """
        newer = self._project.actions(image_id=image_id, since_id=self._cursor.get(image_id, 0))
        if newer:
            self._cursor[image_id] = newer[-1].id
        return self._cursor.get(image_id, 0)

    # ------------------------------------------------------------------ recording
    def record(
        self,
        image_id: int,
        since: int,
        annotation_ids: Iterable[int],
        *,
        status_before: str,
    ) -> bool:
        """Push the edits of ``annotation_ids`` logged after ``since`` as one undo step.

        Filtering by annotation keeps out entries other writers (a prediction thread, say)
        logged for the same image meanwhile. Returns False when nothing was logged.
        """
        wanted = set(annotation_ids)
        ids = tuple(
            a.id
            for a in self._project.actions(image_id=image_id, since_id=since)
            if a.action in EDIT_ACTIONS and a.annotation_id in wanted
        )
        if not ids:
            return False
        status_after = self._project.image(image_id).status
        done = self._done.setdefault(image_id, [])
        done.append(_Entry(ids, status_before, status_after))
        del done[: -self._limit]
        self._undone.pop(image_id, None)
        return True

    # ------------------------------------------------------------------ replay
    def undo(self, image_id: int) -> list[int]:
        """Revert the newest step on ``image_id``; returns the annotation ids it touched.

        The step is reverted in one transaction, and only if every annotation it touched is
        still as this view left it: an edit made elsewhere since (another tab or kernel)
        is never overwritten; the step is dropped with "changed elsewhere, not undone".
        """
        return self._step(image_id, self._done, self._undone, self._revert, "undo")

    def redo(self, image_id: int) -> list[int]:
        """Apply again the newest undone step on ``image_id``; returns the ids it touched."""
        return self._step(image_id, self._undone, self._done, self._replay, "redo")

    def _step(
        self,
        image_id: int,
        source: dict[int, list[_Entry]],
        target: dict[int, list[_Entry]],
        apply: Callable[[Action], int],
        kind: str,
    ) -> list[int]:
        entry = self._pop(source, image_id)
        if entry is None:
            return []
        try:
            with self._project.write():  # the whole step, or nothing
                actions = self._actions(image_id, entry.action_ids)
                ordered = reversed(actions) if kind == "undo" else actions
                touched = [apply(action) for action in ordered]
                status = entry.status_before if kind == "undo" else entry.status_after
                self._set_status(image_id, status)
                self._project.log_action(
                    kind, image_id=image_id, payload={"actions": list(entry.action_ids)}
                )
        except ChangedElsewhereError as exc:
            # the step no longer describes the image: dropped, so a redo cannot bring back
            # what another view deleted
            raise ProjectError(f"changed elsewhere, not {kind}ne: {exc}") from exc
        except BaseException:
            source.setdefault(image_id, []).append(entry)  # nothing changed: try again later
            raise
        target.setdefault(image_id, []).append(entry)
        return touched

    @staticmethod
    def _pop(stacks: dict[int, list[_Entry]], image_id: int) -> _Entry | None:
        stack = stacks.get(image_id)
        return stack.pop() if stack else None

    def _actions(self, image_id: int, ids: tuple[int, ...]) -> list[Action]:
        by_id = {a.id: a for a in self._project.actions(image_id=image_id, since_id=min(ids) - 1)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ProjectError(f"action log entries {missing} are missing; cannot undo/redo")
        return [by_id[i] for i in ids]

    def _revert(self, action: Action) -> int:
        project = self._project
        payload = action.payload
        ann_id = int(action.annotation_id or 0)
        if action.action == "add":
            project.delete_annotation(ann_id, expected=payload["after"])
        elif action.action in ("update", "accept"):
            before = payload["before"]
            if before.get("is_prediction"):
                # the store's update always makes a box a person's: put the row back whole
                project.delete_annotation(ann_id, expected=payload["after"])
                project.restore_annotation(before)
            else:
                project.update_annotation(ann_id, expected=payload["after"], **_editable(before))
        elif action.action in ("delete", "reject"):
            project.restore_annotation(payload["before"])
        return ann_id

    def _replay(self, action: Action) -> int:
        project = self._project
        payload = action.payload
        ann_id = int(action.annotation_id or 0)
        if action.action == "add":
            project.restore_annotation(payload["after"])
        elif action.action == "update":
            before = payload["before"]
            project.update_annotation(ann_id, expected=before, **_editable(payload["after"]))
        elif action.action == "accept":
            project.accept_prediction(ann_id, expected=payload["before"])
        elif action.action in ("delete", "reject"):
            project.delete_annotation(ann_id, expected=payload["before"])
        return ann_id

    def _set_status(self, image_id: int, status: str) -> None:
        # back to the status around the step, unless someone else's predictions came in
        # since (or the ones it had are gone): those decide between unlabeled and predicted
        if status != "reviewed":
            pending = self._project.annotations(image_id, predictions=True)
            status = "predicted" if pending else "unlabeled"
        if self._project.image(image_id).status != status:
            self._project.set_status(image_id, status)


def _editable(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "bbox": values["bbox"],
        "category_id": values["category_id"],
        "segmentation": values.get("segmentation"),
        "keypoints": values.get("keypoints"),
        "iscrowd": values.get("iscrowd", 0),
        "area": values.get("area"),
    }
