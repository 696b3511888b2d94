"""The Annotator: edit the annotations of one image at a time, on a canvas in the browser.

Boxes, polygons, pixel masks (instance or semantic) and keypoints, each with its tool (B, P,
M brush / E eraser, K). Every pointer and key event is handled by the front end (``js/``,
built into ``annowidget/static/annotator.js``). The kernel hears only committed edits, one
message per mouse-up or key-up, applies each to the project store at once (autosave, logged
with its duration) and echoes the saved state back through the traits. Images travel as
their file's bytes in binary buffers (see ``_image_feed``); the next one is sent ahead.
Masks travel as RLE text or PNG bytes in binary buffers, each once (see ``_masks``);
polygons and keypoints as coordinate lists in the traits.

What the notebook file keeps: the synced traits hold the current image's metadata and
boxes only (no image bytes, no other image's labels), so a saved widget state stays small
whatever the size of the project.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t
from ipywidgets import CallbackDispatcher

from annowidget.store import STATUSES, Annotation, Image, Project, ProjectError
from annowidget.store.images import ImageError
from annowidget.widgets._annotation_fields import shape_fields
from annowidget.widgets._edit_history import EditHistory
from annowidget.widgets._image_feed import ImageFeed
from annowidget.widgets._masks import MaskFeed, compressed_rle, mask_key
from annowidget.widgets._palette import category_color
from annowidget.widgets._project_events import publish, subscribe

__all__ = ["Annotator"]

_log = logging.getLogger(__name__)
_STATIC = Path(__file__).parent.parent / "static"
ALL = ""  # folder / status filter value meaning "no filter"
_NAVIGATION = ("next", "previous", "next_unlabeled", "submit")
_TODO = ("unlabeled", "predicted")
TOOLS = ("box", "polygon", "brush", "eraser", "keypoints")
MASK_MODES = ("instance", "semantic")
_BATCHABLE = ("add", "update", "delete")
# SQLite refusing a write for now (disk full, database locked by a long import): the edit
# is kept, shown as not saved, and tried again.
_TRANSIENT = (sqlite3.OperationalError,)
RETRY_SECONDS = 2.0


class Annotator(anywidget.AnyWidget):
    """An editor of boxes, polygons, masks and keypoints, saving every change as it is made.

    ``tool`` is the active tool (``"box"``, ``"polygon"``, ``"brush"``, ``"eraser"``,
    ``"keypoints"``; keys B P M E K in the widget). ``mask_mode="semantic"`` makes the brush
    keep one mask per class, a pixel belonging to one class only.

    Example:
        >>> # from annowidget.widgets import Annotator
        >>> # annotator = Annotator(project, folder="unlabeled", tool="polygon")
        >>> # annotator                      # draw, fix, accept; every edit is saved
        >>> # annotator.next_unlabeled()     # or press Space / U in the widget
    """

    _esm = _STATIC / "annotator.js"
    _css = _STATIC / "annotator.css"

    # what the front end sees (small: the current image only)
    _image = t.Dict().tag(sync=True)
    _boxes = t.List(t.Dict()).tag(sync=True)
    _acked = t.Int(0).tag(sync=True)
    categories = t.List(t.Dict()).tag(sync=True)
    threshold = t.Float(0.5, min=0.0, max=1.0).tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    last_saved = t.Float(0.0).tag(sync=True)
    display_scale = t.Float(1.0).tag(sync=True)
    position = t.List(t.Int(), default_value=[0, 0]).tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    height = t.Int(560).tag(sync=True)
    can_undo = t.Bool(False).tag(sync=True)
    can_redo = t.Bool(False).tag(sync=True)
    # the filter, editable in the toolbar ("" = all)
    folder = t.Unicode("").tag(sync=True)
    status_filter = t.Unicode("").tag(sync=True)
    folders = t.List(t.Unicode()).tag(sync=True)
    # the editing tool and how the brush treats classes
    tool = t.Enum(TOOLS, default_value="box").tag(sync=True)
    mask_mode = t.Enum(MASK_MODES, default_value="instance").tag(sync=True)

    def __init__(
        self,
        project: Project,
        folder: str | None = None,
        status: str | None = None,
        *,
        threshold: float = 0.5,
        max_side: int = 4096,
        height: int = 560,
        tool: str = "box",
        mask_mode: str = "instance",
        **kwargs: Any,
    ) -> None:
        if status is not None and status not in STATUSES:
            raise ProjectError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        if tool not in TOOLS:
            raise ProjectError(f"tool must be one of {', '.join(TOOLS)}; got {tool!r}")
        if mask_mode not in MASK_MODES:
            raise ProjectError(
                f"mask_mode must be one of {', '.join(MASK_MODES)}; got {mask_mode!r}"
            )
        self.project = project
        super().__init__(
            threshold=threshold,
            height=height,
            folder=folder or ALL,
            status_filter=status or ALL,
            tool=tool,
            mask_mode=mask_mode,
            **kwargs,
        )
        self._feed = ImageFeed(self._send_image, max_side=max_side)
        self._masks = MaskFeed(self._send_image)
        self._history = EditHistory(project)
        self._client_ids: dict[str, int] = {}  # front-end ids of new boxes -> store ids
        self._change_callbacks = CallbackDispatcher()
        self._image_callbacks = CallbackDispatcher()
        self._ids: list[int] = []
        self._current: Image | None = None
        # edits the store refused for now, oldest first: (command, image, seq)
        self._unsaved: list[tuple[dict[str, Any], Image, Any]] = []
        self._queue_lock = threading.Lock()  # guards _unsaved only, never held during I/O
        self._retry_lock = threading.Lock()  # one retry runner at a time
        self._unsaved_reason = ""
        self._retry_timer: threading.Timer | None = None
        #: picks the image Next opens (continuous mode's ranking); ``None``: the list order
        self.next_order: Callable[[Image | None], int | None] | None = None
        self._came_from: list[int] = []  # images left by a ranked Next: what Previous revisits
        self.on_msg(self._on_message)
        self.refresh_categories()
        self.refresh(keep_position=False)
        self.observe(self._on_filter, names=["folder", "status_filter"])
        subscribe(project, "categories", self.refresh_categories)
        subscribe(project, "annotations", self._on_store_change)

    @t.validate("status_filter")
    def _check_status(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value not in (ALL, *STATUSES):
            raise t.TraitError(f"status must be one of {', '.join(STATUSES)} or ''; got {value!r}")
        return value

    def _on_filter(self, _change: dict[str, Any]) -> None:
        self.refresh(keep_position=False)

    # ------------------------------------------------------------------ reading
    @property
    def image(self) -> Image | None:
        """The image being edited (``None`` when the filter matches no image)."""
        return self._current

    @property
    def boxes(self) -> list[Annotation]:
        """The current image's reviewed annotations (people's boxes), as stored."""
        return self._annotations(predictions=False)

    @property
    def predictions(self) -> list[Annotation]:
        """The current image's pending predictions, as stored (all scores)."""
        return self._annotations(predictions=True)

    @property
    def image_ids(self) -> list[int]:
        """The ids the Annotator steps through (the folder/status filter when created)."""
        return list(self._ids)

    @property
    def bytes_sent(self) -> int:
        """Image bytes sent to the browser so far (not counting the small JSON messages)."""
        return self._feed.bytes_sent

    @property
    def mask_bytes_sent(self) -> int:
        """Mask bytes sent to the browser so far (buffers and their JSON headers)."""
        return self._masks.bytes_sent

    def _annotations(self, *, predictions: bool) -> list[Annotation]:
        if self._current is None:
            return []
        return self.project.annotations(self._current.id, predictions=predictions)

    # ---------------------------------------------------------------- navigation
    def refresh(self, *, keep_position: bool = True) -> None:
        """Re-read which images match the folder/status filter (e.g. after an import)."""
        self.folders = self.project.folders()
        self._ids = [image.id for image in self.project.images(**self._filter())]
        current = self._current.id if (keep_position and self._current) else None
        if current is not None:
            self.goto(current)
        elif self._ids:
            self.goto(self._ids[0])
        else:
            self._show(None)

    def refresh_categories(self) -> None:
        """Re-read the project's categories.

        Rarely needed by hand: every Annotator follows classes added in any Annotator at
        once, and those added from Python or the CLI within about a second.
        """
        self.categories = [
            {
                "id": c.id,
                "name": c.name,
                "color": category_color(c.id),
                "keypoints": list(c.keypoints),
                "skeleton": [list(pair) for pair in c.skeleton],
            }
            for c in self.project.categories()
        ]

    def add_category(self, name: str) -> int | None:
        """Add a class (what the class bar's "+" does); every open widget shows it.

        Returns its id, or ``None`` when the store refuses the name (the reason is shown
        in the widget's message).

        Example:
            >>> annotator.add_category("raccoon kit")  # doctest: +SKIP
            3
        """
        try:
            category = self.project.add_category(name)
        except (ProjectError, ValueError, TypeError, *_TRANSIENT) as exc:
            self.message = f"class not added: {exc}"
            return None
        self.message = ""
        publish(self.project, "categories")
        return category.id

    def _on_store_change(self, image_id: int | None = None, source: int | None = None) -> None:
        """Another widget saved an edit: show it if it is on this image."""
        current = self._current
        mine = source == id(self)
        # never overwrite edits still waiting to be saved
        if not mine and current is not None and image_id == current.id and not self._unsaved:
            self.reload()

    def reload(self) -> None:
        """Re-read the current image's boxes and status (after a prediction run, say)."""
        if self._current is not None:
            self._current = self.project.image(self._current.id)
        self._publish_boxes()

    def goto(self, image: Image | int) -> None:
        """Show ``image`` (an :class:`Image` or its id), even one outside the filter."""
        image_id = image.id if isinstance(image, Image) else int(image)
        self._show(self.project.image(image_id))

    def next(self) -> None:
        """Show the next image of the filtered list (stays on the last one), or the one
        ``next_order`` picks when set. On a shared project it passes over images another
        annotator holds (their lease), unless every later image is held."""
        if not self._ranked_next():
            self._step(+1)

    def previous(self) -> None:
        """Show the previous image of the filtered list (stays on the first one); after a
        ranked Next, the image it left."""
        if self.next_order is not None and self._came_from:
            self.goto(self._came_from.pop())
            return
        self._step(-1)

    def _ranked_next(self) -> bool:
        if self.next_order is None:
            return False
        target = self.next_order(self._current)
        if target is None:
            return False
        if self._current is not None:
            self._came_from.append(self._current.id)
        self.goto(target)
        return True

    def next_unlabeled(self) -> bool:
        """Show the next image that still needs work (unlabeled or predicted), wrapping.

        Returns False (and stays) when every image of the list is reviewed. On a shared
        project it skips images another annotator is working on (their lease), and leases
        the one it shows, so two people are never handed the same image.
        """
        if self._ranked_next():
            return True
        folder = self._filter()["folder"]
        todo = {i.id for i in self.project.images(folder=folder, status=_TODO, skip_leased=True)}
        start = self._index()
        n = len(self._ids)
        for step in range(1, n + 1):
            candidate = self._ids[(start + step) % n]
            if candidate in todo and self.project.lease(candidate):
                self.goto(candidate)
                return True
        self.message = (
            "every image here is reviewed"
            if not self.project.images(folder=folder, status=_TODO, limit=1)
            else "the images left are being labeled by others"
        )
        return False

    def _filter(self) -> dict[str, str | None]:
        return {"folder": self.folder or None, "status": self.status_filter or None}

    def _index(self) -> int:
        if self._current is None or self._current.id not in self._ids:
            return -1
        return self._ids.index(self._current.id)

    def _step(self, delta: int) -> None:
        if not self._ids:
            return
        index = self._index()
        if index < 0:  # outside the list: go to its neighbour by id
            later = [i for i in self._ids if self._current and i > self._current.id]
            target = later[0] if (delta > 0 and later) else self._ids[0 if delta > 0 else -1]
        else:
            target = self._ids[min(max(index + delta, 0), len(self._ids) - 1)]
            if delta > 0:
                target = self._first_free(self._ids[index + 1 :]) or target
        self.goto(target)

    def _first_free(self, candidates: Sequence[int]) -> int | None:
        """The first of ``candidates`` no other annotator holds a live lease on (one small
        query; nothing to skip on a project with one person)."""
        held = self.project.live_leases()
        return next((i for i in candidates if i not in held), None)

    def _show(self, image: Image | None) -> None:
        previous = self._current
        self._current = image
        self.refresh_categories()  # one small query; unchanged lists are not resent
        scale = self.display_scale
        if image is not None:
            try:
                path = self.project.image_path(image)
                sent = self._feed.ensure(image.id, path, recorded=image)
                scale = sent.scale if sent else 1.0
                self.message = (
                    f"{path}: the file changed since it was added (same size); check its boxes"
                    if sent and sent.changed
                    else ""
                )
            except (ImageError, OSError) as exc:
                self.message = str(exc)
        with self.hold_sync():
            self._image = _image_dict(image, scale)
            self.display_scale = scale
            self._publish_boxes()
        self._prefetch()
        if image is not None and (previous is None or previous.id != image.id):
            # The image is this annotator's while they work on it (shared projects); the
            # one they leave is given back, so a badge means "open now", not "seen lately".
            if previous is not None and not self.project.readonly:
                self.project.release(previous.id)
            if not self.project.readonly and not self.project.lease(image.id):
                holder = self.project.lease_holder(image.id)
                self.message = f"{holder} is labeling this image too; the last save wins"
            # The effort meter counts work on an image from the moment it is shown.
            self.project.log_action("view", image_id=image.id)
            self._image_callbacks(image)

    def _prefetch(self) -> None:
        index = self._index()
        if 0 <= index < len(self._ids) - 1:
            following = self.project.image(self._ids[index + 1])
            try:
                self._feed.ensure(
                    following.id, self.project.image_path(following), recorded=following
                )
            except (ImageError, OSError) as exc:  # shown when the user gets there
                _log.warning("cannot prefetch %s: %s", following.path, exc)

    def _publish_boxes(self) -> None:
        image = self._current
        reverse = {v: k for k, v in self._client_ids.items()}
        boxes = []
        masks: list[dict[str, Any]] = []
        if image is not None:
            for a in self.project.annotations(image.id):
                box = _annotation_dict(a, masks)
                if a.id in reverse:
                    box["client_id"] = reverse[a.id]
                boxes.append(box)
            image = self.project.image(image.id)
            self._current = image
        # the mask bytes go first: the boxes naming them find them there
        self._masks.ensure(masks)
        with self.hold_sync():
            self._boxes = boxes
            self.status = image.status if image else ""
            self.position = [self._index(), len(self._ids)]
            self.can_undo = bool(image and self._history.can_undo(image.id))
            self.can_redo = bool(image and self._history.can_redo(image.id))

    def _send_image(self, message: dict[str, Any], buffers: list[bytes]) -> None:
        self.send(message, buffers)

    # ------------------------------------------------------------------ editing
    def accept_all(self, threshold: float | None = None) -> int:
        """Accept every pending prediction of this image scoring ``>= threshold``.

        Uses the widget's threshold when none is given; returns how many were accepted.
        """
        limit = self.threshold if threshold is None else float(threshold)
        return len(self._edit({"type": "accept_all", "threshold": limit}))

    def undo(self) -> None:
        """Undo the last edit made in this Annotator on the current image."""
        self._edit({"type": "undo"})

    def redo(self) -> None:
        """Redo the last undone edit on the current image."""
        self._edit({"type": "redo"})

    def on_change(
        self, callback: Callable[[dict[str, Any]], None], *, remove: bool = False
    ) -> None:
        """Call ``callback(event)`` after each saved edit.

        ``event`` is ``{"type": "add"|"update"|"delete"|"accept"|"accept_all"|"batch"|
        "undo"|"redo", "image_id": int, "annotation_ids": [int, ...]}`` ("batch": several
        masks changed by one semantic brush stroke).

        Example:
            >>> # annotator.on_change(lambda event: print(event["type"]))
        """
        self._change_callbacks.register_callback(callback, remove=remove)

    def on_image(self, callback: Callable[[Image], None], *, remove: bool = False) -> None:
        """Call ``callback(image)`` whenever another image is shown.

        Example:
            >>> # annotator.on_image(lambda image: print(image.path))
        """
        self._image_callbacks.register_callback(callback, remove=remove)

    @property
    def unsaved(self) -> int:
        """How many edits the store refused for now (shown as pending, being retried)."""
        return len(self._unsaved)

    def retry_unsaved(self) -> bool:
        """Try to save the edits the store refused, in order; True when none is left.

        Runs every ``RETRY_SECONDS`` by itself while any is waiting (and on the front
        end's "retry"); a second caller while one is saving returns False at once.
        """
        if not self._retry_lock.acquire(blocking=False):
            return False
        try:
            seq = None
            while True:
                with self._queue_lock:
                    if not self._unsaved:
                        break
                    command, image, seq_of = self._unsaved[0]
                try:
                    self._edit(command, publish=False, image=image)
                except _TRANSIENT as exc:
                    self._not_saved(exc)
                    return False
                except (ProjectError, ImageError, KeyError, TypeError, ValueError) as exc:
                    self.message = f"not saved: {exc}"  # it will never succeed: drop it
                else:
                    self.message = ""
                with self._queue_lock:
                    self._unsaved.pop(0)
                seq = seq_of if isinstance(seq_of, int) else seq
            if seq is not None:
                with self.hold_sync():
                    self._acknowledge(seq)
            return True
        finally:
            self._retry_lock.release()

    def _not_saved(self, exc: BaseException | None) -> None:
        """Say that edits wait (``exc``: why, ``None`` to keep the reason shown) and make
        sure a retry is scheduled."""
        n = len(self._unsaved)
        edits = f"{n} edits" if n > 1 else "the edit"
        if exc is not None:
            self._unsaved_reason = str(exc)
            _log.warning("Annotator: save failed, will retry: %s", exc)
        self.message = (
            f"not saved: {self._unsaved_reason} · {edits} kept here, "
            f"retrying every {RETRY_SECONDS:g} s"
        )
        timer = self._retry_timer
        if timer is None or not timer.is_alive():
            self._retry_timer = threading.Timer(RETRY_SECONDS, self._retry_in_background)
            self._retry_timer.daemon = True
            self._retry_timer.start()

    def _retry_in_background(self) -> None:
        self._retry_timer = None
        self.retry_unsaved()

    def _edit(
        self, command: dict[str, Any], *, publish: bool = True, image: Image | None = None
    ) -> list[int]:
        """Apply one committed edit to the store, record it for undo; the touched ids."""
        image = image or self._current
        if image is None:
            raise ProjectError("no image is shown: nothing to edit")
        kind = command.get("type")
        if kind in ("undo", "redo"):
            history = self._history.undo if kind == "undo" else self._history.redo
            touched = history(image.id)
        else:
            mark = self._history.mark(image.id)
            status_before = self.project.image(image.id).status
            touched = self._apply(image, command)
            self._history.record(image.id, mark, touched, status_before=status_before)
        self.last_saved = time.time()
        if publish:
            self._publish_boxes()
        event = {"type": kind, "image_id": image.id, "annotation_ids": touched}
        self._change_callbacks(event)
        _publish_edit(self.project, image.id, id(self))
        return touched

    def _apply(self, image: Image, command: dict[str, Any]) -> list[int]:
        """Check the whole command first, then apply it: a batch lands whole or not at all."""
        kind = command.get("type")
        if kind == "batch":
            edits = command.get("edits")
            if not isinstance(edits, list) or not edits:
                raise ProjectError("batch: 'edits' must be a non-empty list")
            if not all(isinstance(e, dict) and e.get("type") in _BATCHABLE for e in edits):
                raise ProjectError(f"batch: every edit must be one of {', '.join(_BATCHABLE)}")
            # the stroke's time is counted once, on its first edit
            steps = [
                self._plan(image, {**edit, "duration": command.get("duration") if i == 0 else None})
                for i, edit in enumerate(edits)
            ]
        else:
            steps = [self._plan(image, command)]
        touched: list[int] = []
        with self.project.write():  # one transaction: a kill mid-batch lands none of it
            for step in steps:
                touched += step()
        return touched

    def _plan(self, image: Image, command: dict[str, Any]) -> Callable[[], list[int]]:
        """The checked edit, ready to run against the store; raises on bad input."""
        project = self.project
        kind = command.get("type")
        duration = _duration(command)
        if kind == "add":
            category = project.category(int(command["category_id"]))
            fields = shape_fields(command, image, category)
            if "bbox" not in fields:
                raise ProjectError("add: bbox is missing")
            bbox = fields.pop("bbox")
            client_id = command.get("client_id")

            def add() -> list[int]:
                added = project.add_annotation(
                    image.id, category.id, bbox, duration=duration, **fields
                )
                if isinstance(client_id, str):
                    self._client_ids[client_id] = added.id
                self._painted(command, added)
                return [added.id]

            return add
        if kind == "update":
            ann = self._own(image, command.get("id"))
            category_id = int(command.get("category_id", ann.category_id))
            category = project.category(category_id)
            fields = shape_fields(command, image, category)
            if "category_id" in command:
                fields["category_id"] = category.id
            if not fields:
                raise ProjectError(
                    "update: nothing to change (expected bbox, category_id, polygon, mask "
                    "or keypoints)"
                )
            reshaped = "segmentation" in fields
            if isinstance(ann.segmentation, dict) and "bbox" in fields and not reshaped:
                if "keypoints" not in fields:
                    raise ProjectError(f"the box of mask annotation {ann.id} follows its mask")
                del fields["bbox"]  # keypoints placed on a masked object: its mask keeps the box

            def update() -> list[int]:
                updated = project.update_annotation(ann.id, duration=duration, **fields)
                self._painted(command, updated)
                return [ann.id]

            return update
        if kind == "delete":
            ann = self._own(image, command.get("id"))

            def delete() -> list[int]:
                project.delete_annotation(ann.id, duration=duration)
                return [ann.id]

            return delete
        if kind == "accept":
            ann = self._own(image, command.get("id"))

            def accept() -> list[int]:
                if not ann.is_prediction:
                    return []
                project.accept_prediction(ann.id, duration=duration)
                return [ann.id]

            return accept
        if kind == "accept_all":
            limit = float(command.get("threshold", self.threshold))

            def accept_all() -> list[int]:
                accepted = []
                for pending in project.annotations(image.id, predictions=True):
                    if (pending.score or 0.0) >= limit:
                        project.accept_prediction(pending.id)
                        accepted.append(pending.id)
                return accepted

            return accept_all
        raise ProjectError(f"unknown edit {kind!r}")

    def _painted(self, command: dict[str, Any], ann: Annotation) -> None:
        """A mask the front end painted is there already: the echo names it, never resends it."""
        if command.get("mask") is not None and isinstance(ann.segmentation, dict):
            self._masks.hold(mask_key(ann.segmentation["size"], ann.segmentation["counts"]))

    def _own(self, image: Image, ref: Any) -> Annotation:
        """The annotation a command names (store id or front-end id), on the current image."""
        if isinstance(ref, str):
            if ref not in self._client_ids:
                raise ProjectError(f"unknown box {ref!r}: its creation was not saved")
            ref = self._client_ids[ref]
        if not isinstance(ref, int):
            raise ProjectError(f"a box id must be an integer, got {ref!r}")
        ann = self.project.annotation(ref)
        if ann.image_id != image.id:
            raise ProjectError(f"annotation {ref} belongs to image {ann.image_id}, not {image.id}")
        return ann

    # --------------------------------------------------------- front-end messages
    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        seq = content.get("seq")
        try:
            if kind == "ready":  # a new view: it holds no image and no mask yet
                self._feed.forget()
                self._masks.forget()
                if self._current is not None:
                    self._show(self._current)
            elif kind == "need_image":
                self._resend(content.get("image_id"))
            elif kind == "need_masks":  # the page dropped some: the republish resends them
                keys = content.get("keys")
                if isinstance(keys, list):
                    self._masks.drop(k for k in keys if isinstance(k, str))
                self._publish_boxes()
            elif kind == "add_category":
                self.add_category(str(content.get("name", "")))
            elif kind == "retry":
                self.retry_unsaved()
            elif kind in _NAVIGATION:
                # outside hold_sync: the new image's traits must reach the browser before
                # the bytes of the image after it (the prefetch)
                self._navigate(kind)
            else:
                self._save(content, seq)
                return
        except (ProjectError, ImageError, KeyError, TypeError, ValueError) as exc:
            # the front end shows it, and the echo below puts back the saved state
            self.message = f"not saved: {exc}"
            _log.warning("Annotator: %s refused: %s", kind, exc)
        with self.hold_sync():
            self._acknowledge(seq)

    def _save(self, content: dict[str, Any], seq: Any) -> None:
        """Save one edit from the front end; one the store refuses for now waits its turn.

        A waiting edit is not acknowledged, so the front end keeps showing it (pending)
        instead of the saved state; later edits queue behind it, in order, and the retry
        timer saves them (the kernel thread never waits on a retry).
        """
        image = self._current
        with self._queue_lock:
            waiting = bool(self._unsaved)
            if waiting and image is not None:
                self._unsaved.append((content, image, seq))
        if waiting and image is not None:
            self._not_saved(None)
            return
        try:
            with self.hold_sync():
                self._edit(content, publish=False)
                self.message = ""
                self._acknowledge(seq)
        except _TRANSIENT as exc:
            if image is None:
                raise
            with self._queue_lock:
                self._unsaved.append((content, image, seq))
            self._not_saved(exc)

    def _acknowledge(self, seq: Any) -> None:
        """Echo the saved state with the number of the last command it includes."""
        if isinstance(seq, int):
            self._publish_boxes()
            self._acked = max(self._acked, seq)

    def _navigate(self, kind: str) -> None:
        if kind == "submit" and self._current is not None:
            if self._current.status != "reviewed":
                self.project.set_status(self._current.id, "reviewed")
                self.last_saved = time.time()
                _publish_edit(self.project, self._current.id, id(self))
            kind = "next"
        if kind == "next":
            self.next()
        elif kind == "previous":
            self.previous()
        else:
            self.next_unlabeled()

    def _resend(self, image_id: Any) -> None:
        if self._current is None or image_id != self._current.id:
            return
        self._feed.forget()
        self._show(self._current)


def _image_dict(image: Image | None, scale: float) -> dict[str, Any]:
    if image is None:
        return {}
    return {
        "id": image.id,
        "path": image.path,
        "width": image.width,
        "height": image.height,
        "folder": image.folder,
        "display_scale": scale,
    }


def _annotation_dict(a: Annotation, masks: list[dict[str, Any]]) -> dict[str, Any]:
    """What the front end gets for one annotation; its RLE mask, if any, joins ``masks``."""
    box: dict[str, Any] = {
        "id": a.id,
        "category_id": a.category_id,
        "bbox": [round(v, 3) for v in a.bbox],
        "score": a.score,
        "is_prediction": a.is_prediction,
    }
    seg = a.segmentation
    if isinstance(seg, list) and seg:
        box["polygon"] = [[round(float(v), 2) for v in ring] for ring in seg]
    elif isinstance(seg, dict) and "counts" in seg:
        rle = compressed_rle(seg)
        masks.append(rle)
        box["mask"] = {"key": mask_key(rle["size"], rle["counts"]), "size": rle["size"]}
    if a.keypoints:
        box["keypoints"] = [round(float(v), 2) for v in a.keypoints]
    return box


def _duration(command: dict[str, Any]) -> float | None:
    value = command.get("duration")
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _publish_edit(project: Project, image_id: int, source: int) -> None:
    publish(project, "annotations", image_id=image_id, source=source)
