"""The Gallery: a review grid of thumbnails with their boxes, drawn by Python on ipycanvas.

Python composes each page (thumbnails, reviewed boxes solid, predicted boxes dashed and
lighter, colored by class) and sends it as ONE ``hold_canvas`` batch, so paging costs one
message however many boxes there are. The only pointer event used is a click (mouse-down):
it opens the image in the Annotator through :meth:`Gallery.on_open`, or, in select mode,
toggles the image in :attr:`Gallery.selected` (the "selected images" scope of smart
prediction). Per-pointer-move interaction stays in the Annotator's front end.

On a shared project the grid follows other annotators' edits within about two seconds (the
change counter of :mod:`~annowidget.widgets._project_events` that also feeds the Annotator)
and dims each image another annotator holds a live lease on, with a "being edited by NAME"
badge, so a person picking from the grid sees who is on it (opening it anyway is allowed:
the Annotator says who else is there). A refresh that follows edits keeps the tiles where
they are (new images join at the end) so nothing moves under the pointer and a selection in
progress is never disturbed; changing the sort or folder, or :meth:`Gallery.refresh`,
sorts afresh. When a badge's lease runs out the grid redraws without it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ipywidgets as widgets
from ipycanvas import Canvas, hold_canvas
from ipycanvas import canvas as _ipycanvas

from annowidget.store import Annotation, Image, Project
from annowidget.store import annotations as store_annotations
from annowidget.store.images import ImageError, thumbnail
from annowidget.store.leases import Lease
from annowidget.widgets._gallery_sort import (
    SORTS,
    lowest_score,
    prediction_count,
    sort_images,
    sort_name,
)
from annowidget.widgets._palette import STATUS_COLORS, category_color
from annowidget.widgets._project_events import subscribe

__all__ = ["SORTS", "Gallery", "GridGeometry"]

ALL_FOLDERS = "(all folders)"
_MAX_CACHED_THUMBS = 256
#: Edits are gathered this long before the grid is redrawn (one batch, not one per edit).
FOLLOW_SECONDS = 1.0
#: The dimming over a tile another annotator holds, and its badge's colours.
LEASED_VEIL = "rgba(255, 255, 255, 0.55)"
LEASED_BADGE = "#ef6c00"
# ipycanvas' hold_canvas switches a process-wide cache on and off: two threads drawing at
# once (the kernel's thread and a panel's worker) would interleave their batches.
_DRAW_LOCK = threading.RLock()


@dataclass(frozen=True)
class GridGeometry:
    """Where the tiles of a page sit on the canvas (pixels).

    Example:
        >>> g = GridGeometry(columns=2, rows=1, tile=100)
        >>> g.tile_at(g.gap + 5, g.gap + 5), g.tile_at(0, 0)
        (0, None)
    """

    columns: int = 4
    rows: int = 3
    tile: int = 160
    gap: int = 8
    caption: int = 18

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    @property
    def width(self) -> int:
        return self.columns * (self.tile + self.gap) + self.gap

    @property
    def height(self) -> int:
        return self.rows * (self.tile + self.caption + self.gap) + self.gap

    def origin(self, slot: int) -> tuple[int, int]:
        """Top-left corner of tile ``slot`` (0-based, row-major)."""
        row, col = divmod(slot, self.columns)
        return (
            self.gap + col * (self.tile + self.gap),
            self.gap + row * (self.tile + self.caption + self.gap),
        )

    def tile_at(self, x: float, y: float) -> int | None:
        """The slot under canvas point ``(x, y)``, ``None`` in the gaps or outside."""
        col, dx = divmod(x - self.gap, self.tile + self.gap)
        row, dy = divmod(y - self.gap, self.tile + self.caption + self.gap)
        if not (0 <= col < self.columns and 0 <= row < self.rows):
            return None
        if dx > self.tile or dy > self.tile + self.caption:
            return None
        return int(row) * self.columns + int(col)


class Gallery(widgets.VBox):
    """A paged grid of thumbnails with their boxes; a click opens the image.

    Example:
        >>> gallery = Gallery(project, sort="weakest prediction")  # doctest: +SKIP
        >>> gallery.on_open(lambda image: annotator.goto(image))  # doctest: +SKIP
        >>> gallery  # doctest: +SKIP
    """

    def __init__(
        self,
        project: Project,
        *,
        folder: str | None = None,
        sort: str = "status",
        columns: int = 4,
        rows: int = 3,
        tile_size: int = 160,
        threshold: float = 0.0,
    ) -> None:
        sort = sort_name(sort)
        if sort not in SORTS:
            raise ValueError(f"Gallery sort must be one of {', '.join(SORTS)}; got {sort!r}")
        if columns < 1 or rows < 1:
            raise ValueError(f"Gallery columns and rows must be >= 1; got {columns}x{rows}")
        if tile_size < 32:
            raise ValueError(f"Gallery tile_size must be >= 32 pixels; got {tile_size}")
        folders = [ALL_FOLDERS, *project.folders()]
        if folder is not None and folder not in folders:
            raise ValueError(f"Gallery folder {folder!r} does not exist; folders: {folders[1:]}")
        self.project = project
        self.geometry = GridGeometry(columns=columns, rows=rows, tile=tile_size)
        self.threshold = float(threshold)
        self.selected: list[int] = []
        #: images other annotators hold a live lease on (read with every refresh)
        self.leased: dict[int, Lease] = {}
        self._images: list[Image] = []
        self._annotations: dict[int, list[Annotation]] = {}
        self._page = 0
        self._open_callbacks = widgets.CallbackDispatcher()
        self._thumbs: OrderedDict[int, widgets.Image] = OrderedDict()
        self._colors: dict[int, str] = {}
        self.batches_sent = 0  # pages drawn; each is one hold_canvas batch

        g = self.geometry
        self.canvas = Canvas(width=g.width, height=g.height, layout=widgets.Layout(width="auto"))
        self.canvas.on_mouse_down(self._on_mouse_down)
        # A reloaded page (or a second view) starts blank: redraw for it.
        self.canvas.on_client_ready(self.redraw)

        self.folder_filter = widgets.Dropdown(
            options=folders,
            value=folder or ALL_FOLDERS,
            description="Folder",
            layout=widgets.Layout(width="220px"),
        )
        self.sort_by = widgets.Dropdown(
            options=list(SORTS),
            value=sort,
            description="Sort",
            layout=widgets.Layout(width="240px"),
        )
        self.select_mode = widgets.ToggleButton(
            value=False,
            description="Select",
            tooltip="When on, a click adds/removes the image to the selection "
            "(for smart prediction) instead of opening it",
            icon="check-square",
            layout=widgets.Layout(width="90px"),
        )
        self.previous_button = widgets.Button(icon="chevron-left", tooltip="Previous page")
        self.next_button = widgets.Button(icon="chevron-right", tooltip="Next page")
        for button in (self.previous_button, self.next_button):
            button.layout = widgets.Layout(width="40px")
        self.page_label = widgets.Label()
        self.status = widgets.HTML()

        self.folder_filter.observe(lambda _: self.refresh(), names="value")
        self.sort_by.observe(lambda _: self.refresh(), names="value")
        self.previous_button.on_click(lambda _: self.previous_page())
        self.next_button.on_click(lambda _: self.next_page())

        toolbar = widgets.HBox(
            [
                self.folder_filter,
                self.sort_by,
                self.select_mode,
                self.previous_button,
                self.page_label,
                self.next_button,
            ],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
        )
        super().__init__([toolbar, self.canvas, self.status])
        self._stale = False
        self._follow_timer: threading.Timer | None = None
        self._expiry_timer: threading.Timer | None = None
        self.refresh()
        subscribe(project, "annotations", self._on_store_change)
        subscribe(project, "categories", self._on_categories)

    def _on_categories(self) -> None:
        """A class was added: know its colour (it has no boxes yet: nothing to redraw)."""
        self._colors = {c.id: category_color(c.id) for c in self.project.categories()}

    def _on_store_change(self, **_info: object) -> None:
        """Some widget saved an edit: redraw once the edits pause (about a second)."""
        self._stale = True
        if self.comm is None:  # closed: the expiry timer or a late event finds no view
            return
        timer = self._follow_timer
        if timer is None or not timer.is_alive():
            self._follow_timer = threading.Timer(FOLLOW_SECONDS, self._follow)
            self._follow_timer.daemon = True
            self._follow_timer.start()

    def _follow(self) -> None:
        self._follow_timer = None
        if self.comm is None:  # closed while the timer ran out: nothing to draw on
            return
        if self._stale:  # a refresh since (a tab switch, a page) already showed the edits
            self.refresh(keep_order=True)

    # ------------------------------------------------------------------ reading the store
    @property
    def folder(self) -> str | None:
        """The folder shown, ``None`` for all folders."""
        value = self.folder_filter.value
        return None if value == ALL_FOLDERS else value

    @property
    def image_ids(self) -> list[int]:
        """Ids of every image in the current filter, in display order."""
        return [image.id for image in self._images]

    @property
    def page(self) -> int:
        """The page shown (0-based)."""
        return self._page

    @property
    def page_count(self) -> int:
        return max(1, -(-len(self._images) // self.geometry.per_page))

    @property
    def page_images(self) -> list[Image]:
        """The images on the page shown, in slot order."""
        start = self._page * self.geometry.per_page
        return self._images[start : start + self.geometry.per_page]

    def refresh(self, *, keep_order: bool = False) -> None:
        """Re-read images, annotations and leases from the store, redraw.

        Keeps the page number when it still exists. ``keep_order=True`` (following edits)
        keeps every tile where it is and puts new images at the end, instead of sorting
        afresh, so nothing moves under the pointer.
        """
        folders = [ALL_FOLDERS, *self.project.folders()]
        if list(self.folder_filter.options) != folders:
            current = self.folder_filter.value
            self.folder_filter.options = folders
            self.folder_filter.value = current if current in folders else ALL_FOLDERS
        images = self.project.images(folder=self.folder)
        annotations = self.project.annotations_for([image.id for image in images])
        self._colors = {c.id: category_color(c.id) for c in self.project.categories()}
        ordered = sort_images(images, self.sort_by.value, annotations)
        self._images = _in_previous_order(self._images, ordered) if keep_order else ordered
        self.leased = self._read_leases()  # before the annotations: a reader seeing the
        self._annotations = annotations  # new boxes sees the leases of the same moment
        self._page = min(self._page, self.page_count - 1)
        self._stale = False
        self.redraw()

    def _read_leases(self) -> dict[int, Lease]:
        """Other annotators' live leases on the images shown; a timer redraws when the
        first of them runs out (running out writes nothing the change counter would see)."""
        try:
            leases = self.project.live_leases()
        except Exception:  # a read-only copy of an old project has no lease table
            return {}
        shown = {image.id for image in self._images}
        leases = {i: lease for i, lease in leases.items() if i in shown}
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if leases:
            # the store's clock, the one that stamped the leases and judges them live
            wait = min(lease.expires for lease in leases.values()) - store_annotations.now()
            self._expiry_timer = threading.Timer(max(wait, 0.0) + 0.5, self._on_store_change)
            self._expiry_timer.daemon = True
            self._expiry_timer.start()
        return leases

    # ------------------------------------------------------------------ paging
    def show_page(self, page: int) -> None:
        """Show page ``page`` (0-based); out-of-range pages raise ``ValueError``."""
        if not 0 <= page < self.page_count:
            raise ValueError(f"page must be between 0 and {self.page_count - 1}; got {page}")
        self._page = int(page)
        self.redraw()

    def next_page(self) -> None:
        if self._page + 1 < self.page_count:
            self.show_page(self._page + 1)

    def previous_page(self) -> None:
        if self._page > 0:
            self.show_page(self._page - 1)

    # ------------------------------------------------------------------ clicks
    def on_open(self, callback: Callable[[Image], None], *, remove: bool = False) -> None:
        """Call ``callback(image)`` when an image is clicked (outside select mode).

        Example:
            >>> gallery.on_open(annotator.goto)  # doctest: +SKIP
        """
        self._open_callbacks.register_callback(callback, remove=remove)

    def image_at(self, x: float, y: float) -> Image | None:
        """The image under canvas point ``(x, y)`` on the current page."""
        slot = self.geometry.tile_at(x, y)
        page = self.page_images
        return page[slot] if slot is not None and slot < len(page) else None

    def _on_mouse_down(self, x: float, y: float) -> None:
        image = self.image_at(x, y)
        if image is None:
            return
        if self.select_mode.value:
            if image.id in self.selected:
                self.selected.remove(image.id)
            else:
                self.selected.append(image.id)
            self.redraw()
            return
        self.open_image(image)

    def open_image(self, image: Image | int) -> None:
        """Tell every ``on_open`` callback to show ``image``."""
        if isinstance(image, int):
            image = self.project.image(image)
        self._open_callbacks(image)

    # ------------------------------------------------------------------ drawing
    def _thumb(self, image: Image) -> widgets.Image | None:
        cached = self._thumbs.get(image.id)
        if cached is not None:
            self._thumbs.move_to_end(image.id)
            return cached
        try:
            jpeg = thumbnail(
                self.project.image_path(image),
                size=self.geometry.tile,
                cache_dir=self.project.cache_dir,
            )
        except (ImageError, OSError):
            return None  # drawn as an "unreadable" tile; the Annotator reports the reason
        widget = widgets.Image(value=jpeg, format="jpeg")
        self._thumbs[image.id] = widget
        while len(self._thumbs) > _MAX_CACHED_THUMBS:
            _, old = self._thumbs.popitem(last=False)
            old.close()
        return widget

    def redraw(self) -> None:
        """Draw the current page in one ``hold_canvas`` batch."""
        g = self.geometry
        page = self.page_images
        thumbs = [self._thumb(image) for image in page]  # decode before holding the canvas
        with _DRAW_LOCK, hold_canvas():
            _address_canvas_explicitly()
            canvas = self.canvas
            canvas.clear()
            canvas.font = "12px sans-serif"
            canvas.text_baseline = "top"
            for slot, (image, thumb) in enumerate(zip(page, thumbs, strict=True)):
                self._draw_tile(canvas, g.origin(slot), image, thumb)
            if not page:
                canvas.fill_style = "#757575"
                canvas.fill_text("no images in this folder", g.gap, g.gap)
        self.batches_sent += 1
        self.page_label.value = f"page {self._page + 1} / {self.page_count}"
        self.previous_button.disabled = self._page == 0
        self.next_button.disabled = self._page + 1 >= self.page_count
        self.status.value = self._summary()

    def _draw_tile(
        self,
        canvas: Canvas,
        origin: tuple[int, int],
        image: Image,
        thumb: widgets.Image | None,
    ) -> None:
        g = self.geometry
        x0, y0 = origin
        canvas.set_line_dash([])
        canvas.global_alpha = 1.0
        canvas.fill_style = "#f0f0f0"
        canvas.fill_rect(x0, y0, g.tile, g.tile)
        scale = g.tile / max(image.width, image.height, 1)
        w, h = image.width * scale, image.height * scale
        ox, oy = x0 + (g.tile - w) / 2, y0 + (g.tile - h) / 2
        if thumb is None:
            canvas.fill_style = "#c62828"
            canvas.fill_text("unreadable", x0 + 4, y0 + 4)
        else:
            canvas.draw_image(thumb, ox, oy, w, h)
        anns = self._annotations.get(image.id, [])
        for ann in anns:
            predicted = ann.is_prediction
            if predicted and (ann.score or 0.0) < self.threshold:
                continue
            bx, by, bw, bh = ann.bbox
            canvas.stroke_style = self._colors.get(ann.category_id, "#4e79a7")
            canvas.line_width = 2
            # the surer the model, the more opaque (0.25 at score 0, 0.75 at 1)
            canvas.global_alpha = round(0.25 + 0.5 * (ann.score or 0.0), 2) if predicted else 1.0
            canvas.set_line_dash([4, 3] if predicted else [])
            canvas.stroke_rect(ox + bx * scale, oy + by * scale, bw * scale, bh * scale)
        canvas.set_line_dash([])
        canvas.global_alpha = 1.0
        lease = self.leased.get(image.id)
        if lease is not None:  # someone else is on it: dimmed, with a badge naming them
            canvas.fill_style = LEASED_VEIL
            canvas.fill_rect(x0, y0, g.tile, g.tile)
            canvas.fill_style = LEASED_BADGE
            canvas.fill_rect(x0, y0, g.tile, 18)
            canvas.fill_style = "#ffffff"
            text = f"being edited by {lease.author}"
            canvas.fill_text(text, x0 + 4, y0 + 3, max_width=g.tile - 8)
        # status stripe + caption under the tile
        canvas.fill_style = STATUS_COLORS.get(image.status, "#9e9e9e")
        canvas.fill_rect(x0, y0 + g.tile, g.tile, 3)
        canvas.fill_style = "#424242"
        canvas.fill_text(self._caption(image, anns), x0 + 2, y0 + g.tile + 4, max_width=g.tile - 4)
        if image.id in self.selected:
            canvas.stroke_style = "#1565c0"
            canvas.line_width = 4
            canvas.stroke_rect(x0 - 2, y0 - 2, g.tile + 4, g.tile + g.caption + 2)

    @staticmethod
    def _caption(image: Image, anns: Sequence[Annotation]) -> str:
        name = image.path.rsplit("/", 1)[-1]
        score = lowest_score(anns)
        if score is not None:
            return f"{name} · {prediction_count(anns)} pred, min {score:.2f}"
        return f"{name} · {image.status}"

    def _summary(self) -> str:
        counts: dict[str, int] = {}
        for image in self._images:
            counts[image.status] = counts.get(image.status, 0) + 1
        parts = [f"{n} {status}" for status, n in sorted(counts.items())]
        if self.leased:
            parts.append(f"{len(self.leased)} being edited by others")
        if self.selected:
            parts.append(f"<b>{len(self.selected)} selected</b>")
        return f"<small>{len(self._images)} images: {', '.join(parts) or 'none'}</small>"

    def close(self) -> None:
        for name in ("_follow_timer", "_expiry_timer"):
            timer = getattr(self, name, None)  # __del__ may run on a half-built widget
            if timer is not None:
                timer.cancel()
        thumbs = getattr(self, "_thumbs", {})  # __del__ may run on a half-built widget
        for thumb in thumbs.values():
            thumb.close()
        thumbs.clear()
        super().close()


def _in_previous_order(previous: Sequence[Image], fresh: Sequence[Image]) -> list[Image]:
    """``fresh`` (re-read images, sorted) with the images of ``previous`` where they were and
    the new ones after them, in ``fresh``'s order.

    Example:
        >>> from annowidget.store import Image
        >>> a, b, c = (Image(i, f"{i}.jpg", 1, 1, "", "train", "unlabeled") for i in (1, 2, 3))
        >>> [i.id for i in _in_previous_order([b, a], [a, c, b])]
        [2, 1, 3]
    """
    where = {image.id: slot for slot, image in enumerate(previous)}
    kept = sorted((image for image in fresh if image.id in where), key=lambda i: where[i.id])
    return kept + [image for image in fresh if image.id not in where]


def _address_canvas_explicitly() -> None:
    """Make the next batch start with ipycanvas' "switch to this canvas" command.

    ipycanvas sends every draw command through one shared manager widget and names the
    target canvas only when it differs from the last one the *kernel* drew on. A view
    that attaches later (browser reload, a second window, Notebook 7 next to JupyterLab)
    has a fresh manager that knows no current canvas, so a batch without the switch fails
    there ("Cannot read properties of undefined (reading 'clearCanvas')") and every later
    batch too. Forgetting the kernel's notion costs one tiny command per page.
    """
    _ipycanvas._CANVAS_MANAGER._current_canvas = None
