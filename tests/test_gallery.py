"""The Gallery's widget state, without a browser: what it draws per page, paging, sorting,
clicks (sent through ipycanvas' real front-end message handler) and selection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from ipycanvas.canvas import _CANVAS_MANAGER, COMMANDS

import annowidget
from annowidget.store import Project
from annowidget.widgets._gallery_sort import sort_images
from annowidget.widgets.gallery import Gallery, GridGeometry

NAMES = {index: name for name, index in COMMANDS.items()}


@pytest.fixture
def project(tmp_path) -> Project:
    return annowidget.sample_project(tmp_path / "sample")


@pytest.fixture
def sent(monkeypatch) -> list[list]:
    """Every message the canvas manager sends to the front end, decoded to command lists."""
    messages: list[list] = []
    original = _CANVAS_MANAGER._send_custom

    def record(command, buffers=()):
        messages.append(command)
        return original(command, list(buffers))

    monkeypatch.setattr(_CANVAS_MANAGER, "_send_custom", record)
    return messages


def _commands(message: list) -> list[tuple[str, list]]:
    """A held batch is a list of [index, args, nbuffers]; a single command is one of them."""
    batch = message if message and isinstance(message[0], list) else [message]
    return [(NAMES[c[0]], c[1] if len(c) > 1 else []) for c in batch]


def _click(gallery: Gallery, slot: int) -> None:
    x, y = gallery.geometry.origin(slot)
    gallery.canvas._handle_frontend_event(None, {"event": "mouse_down", "x": x + 5, "y": y + 5}, [])


def _predict(project: Project, image_id: int, scores: list[float]) -> None:
    category = project.categories()[0]
    project.replace_predictions(
        image_id,
        [{"category_id": category.id, "bbox": [10, 10, 50, 40], "score": s} for s in scores],
        source="model:test",
    )


def test_a_page_is_one_batch_with_one_image_per_tile_and_a_box_per_annotation(project, sent):
    gallery = Gallery(project, sort="file name", columns=3, rows=2)
    sent.clear()
    gallery.next_page()
    assert len(sent) == 1, "a page must be one hold_canvas message"
    commands = _commands(sent[0])
    names = [name for name, _ in commands]
    page = gallery.page_images
    assert len(page) == 6
    assert names.count("drawImage") == 6
    boxes = sum(len(project.annotations(image.id)) for image in page)
    # reviewed boxes plus one status stripe per tile (fillRect), boxes are strokeRect
    assert names.count("strokeRect") == boxes
    assert gallery.page_label.value == "page 2 / 7"


def test_predictions_are_dashed_and_lighter_reviewed_boxes_solid(project, sent):
    unlabeled = project.images(folder="unlabeled")[0]
    _predict(project, unlabeled.id, [0.9])
    gallery = Gallery(project, sort="status", columns=1, rows=1)
    assert gallery.page_images[0].id == unlabeled.id  # predicted images come first
    commands = _commands(sent[-1])
    stroke = [i for i, (name, _) in enumerate(commands) if name == "strokeRect"]
    dash_before = [a for name, a in commands[: stroke[0]] if name == "setLineDash"][-1]
    assert dash_before == [[4, 3]]
    assert ("global_alpha", 0.7) in _attrs(commands[: stroke[0]])

    reviewed = project.images(status="reviewed")[0]
    gallery.open_image(reviewed)  # no callback: nothing happens, no error
    gallery.sort_by.value = "file name"
    target = gallery.image_ids.index(reviewed.id)
    gallery.show_page(target)
    commands = _commands(sent[-1])
    stroke = [i for i, (name, _) in enumerate(commands) if name == "strokeRect"]
    dash_before = [a for name, a in commands[: stroke[0]] if name == "setLineDash"][-1]
    assert dash_before == [[]]


def _attrs(commands: list[tuple[str, list]]) -> list[tuple[str, object]]:
    """Attribute sets (set / globalAlpha ...) as (name, value) pairs, whatever their encoding."""
    found = []
    for name, args in commands:
        if name == "set" and len(args) == 2:
            key = {0: "fill_style", 1: "stroke_style", 2: "global_alpha", 8: "line_width"}.get(
                args[0]
            )
            found.append((key, args[1]))
    return found


def test_sorts_by_lowest_confidence_and_most_predictions(project):
    a, b, c = (image.id for image in project.images(folder="unlabeled")[:3])
    _predict(project, a, [0.9, 0.8])
    _predict(project, b, [0.3])
    _predict(project, c, [0.95, 0.7, 0.6])
    gallery = Gallery(project, sort="lowest confidence")
    assert gallery.image_ids[:3] == [b, c, a]
    gallery.sort_by.value = "most predictions"
    assert gallery.image_ids[:3] == [c, a, b]
    gallery.sort_by.value = "status"
    statuses = [project.image(i).status for i in gallery.image_ids]
    assert statuses == sorted(statuses, key=["predicted", "unlabeled", "reviewed"].index)


def test_images_without_predictions_sort_last_by_confidence(project):
    images = project.images()
    assert sort_images(images, "lowest confidence", {}) == sorted(images, key=lambda i: i.id)
    with pytest.raises(ValueError, match="sort"):
        sort_images(images, "random")


def test_paging_bounds_and_buttons(project):
    gallery = Gallery(project, columns=4, rows=3)  # 40 images -> 4 pages
    assert gallery.page_count == 4
    assert gallery.previous_button.disabled
    assert not gallery.next_button.disabled
    gallery.next_button.click()
    assert gallery.page == 1
    gallery.show_page(3)
    assert gallery.next_button.disabled
    assert len(gallery.page_images) == 4
    gallery.next_page()  # stays on the last page
    assert gallery.page == 3
    with pytest.raises(ValueError, match="page must be between 0 and 3"):
        gallery.show_page(4)


def test_a_click_opens_the_image_under_the_pointer(project):
    gallery = Gallery(project, sort="file name", columns=4, rows=3)
    opened = []
    gallery.on_open(opened.append)
    _click(gallery, 5)
    assert [image.id for image in opened] == [gallery.page_images[5].id]
    # the gaps between tiles open nothing
    gallery.canvas._handle_frontend_event(None, {"event": "mouse_down", "x": 2, "y": 2}, [])
    assert len(opened) == 1
    gallery.on_open(opened.append, remove=True)
    _click(gallery, 0)
    assert len(opened) == 1


def test_select_mode_toggles_the_selection_instead_of_opening(project):
    gallery = Gallery(project)
    opened = []
    gallery.on_open(opened.append)
    gallery.select_mode.value = True
    _click(gallery, 1)
    _click(gallery, 2)
    _click(gallery, 1)
    assert gallery.selected == [gallery.page_images[2].id]
    assert "1 selected" in gallery.status.value
    assert opened == []


def test_folder_filter_and_refresh_after_new_folders(project):
    gallery = Gallery(project, folder="test")
    assert len(gallery.image_ids) == 6
    assert {project.image(i).folder for i in gallery.image_ids} == {"test"}
    project.move_images(gallery.image_ids[:2], "holdout")
    gallery.refresh()
    assert "holdout" in gallery.folder_filter.options
    assert len(gallery.image_ids) == 4
    gallery.folder_filter.value = "(all folders)"
    assert len(gallery.image_ids) == 40


def test_thumbnails_are_cached_on_disk_and_bad_files_draw_a_placeholder(project, sent):
    # a file that was fine at import and broke later (a half-synced disk, say)
    image = project.images(folder="unlabeled")[0]
    project.move_images([image.id], "broken")
    project.image_path(image).write_bytes(b"\xff\xd8 not really a jpeg")
    gallery = Gallery(project, folder="broken")
    commands = _commands(sent[-1])
    assert ("fillText", ["unreadable"]) in [(n, a[:1]) for n, a in commands]
    assert "drawImage" not in [n for n, _ in commands]
    assert gallery.image_ids == [image.id]
    Gallery(project, folder="train")
    assert list((project.cache_dir / "thumbs").glob("*.jpg"))


def test_bad_arguments_name_the_field(project):
    with pytest.raises(ValueError, match="sort"):
        Gallery(project, sort="random")
    with pytest.raises(ValueError, match="folder 'nope'"):
        Gallery(project, folder="nope")
    with pytest.raises(ValueError, match="columns"):
        Gallery(project, columns=0)


def test_grid_geometry_hit_test_round_trips():
    g = GridGeometry(columns=3, rows=2, tile=50)
    for slot in range(g.per_page):
        x, y = g.origin(slot)
        assert g.tile_at(x + 1, y + 1) == slot
        assert g.tile_at(x + g.tile - 1, y + g.tile + g.caption - 1) == slot
    assert g.tile_at(g.width + 10, 0) is None
    assert json.dumps(g.per_page) == "6"


def test_every_page_names_its_canvas_so_a_new_view_can_draw_it(project, sent):
    """A reloaded page (or a second view) has a fresh canvas manager that knows no current
    canvas: a batch that does not start by naming the canvas cannot be drawn there."""
    gallery = Gallery(project, columns=2, rows=1)
    sent.clear()
    gallery.canvas._handle_frontend_event(None, {"event": "client_ready"}, [])  # a new view
    gallery.next_page()
    assert len(sent) == 2
    for message in sent:
        name, args = _commands(message)[0]
        assert name == "switchCanvas"
        assert args == [f"IPY_MODEL_{gallery.canvas.model_id}"]


def test_the_grid_follows_edits_from_any_widget(project):
    from annowidget.widgets.annotator import Annotator

    gallery = Gallery(project, sort="file name")
    annotator = Annotator(Project.open(project.root))  # another cell, another Project
    image = project.images(folder="unlabeled")[0]
    annotator.goto(image)
    drawn = gallery.batches_sent
    assert "10 unlabeled" in gallery.status.value
    for x in (5, 50, 100):  # three quick edits: gathered into one redraw
        annotator._handle_custom_msg(
            {"type": "add", "category_id": 1, "bbox": [x, 5, 30, 30], "seq": x}, []
        )
    assert gallery.batches_sent == drawn  # not one batch per edit
    deadline = time.monotonic() + 5
    while "9 unlabeled" not in gallery.status.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "9 unlabeled" in gallery.status.value
    time.sleep(0.3)
    assert gallery.batches_sent == drawn + 1


# ----------------------------------------------------------------- several annotators
@pytest.fixture
def shared(tmp_path, backend_db) -> Iterator[tuple[Project, Project]]:
    """Two handles on one project (SQLite file or PostgreSQL database): ana's and ben's."""
    root = tmp_path / "shared"
    annowidget.sample_project(root, db=backend_db).close()
    with Project.open(root) as ana, Project.open(root) as ben:
        ana.user, ben.user = "ana", "ben"
        yield ana, ben


def _wait(condition, seconds: float = 10.0) -> float:
    """Seconds until ``condition()`` held (fails after ``seconds``)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, "the grid did not follow in time"
        time.sleep(0.05)
    return time.monotonic() - start


def _badges(message: list) -> list[str]:
    return [a[0] for n, a in _commands(message) if n == "fillText" and "edited by" in str(a)]


def test_the_grid_follows_another_annotator_and_badges_their_image(shared, sent):
    from annowidget.widgets.annotator import Annotator

    ana, ben = shared
    gallery = Gallery(ana, sort="status", columns=5, rows=2)
    gallery.select_mode.value = True
    _click(gallery, 4)  # ana is picking images for smart prediction
    picked, order = list(gallery.selected), gallery.image_ids
    target = next(i for i in gallery.page_images if i.status == "unlabeled" and i.id not in picked)
    assert not gallery.leased
    assert _badges(sent[-1]) == []

    editor = Annotator(ben, folder="unlabeled")  # ben, in his own notebook
    try:
        editor.goto(target)  # leases it to ben
        editor._handle_custom_msg(
            {"type": "add", "category_id": 1, "bbox": [3, 4, 50, 60], "seq": 1}, []
        )
        box = ben.annotations(target.id)[0]
        waited = _wait(lambda: any(a.id == box.id for a in gallery._annotations[target.id]))
        assert waited < 6  # the change counter is read every second, edits gathered for one
        assert gallery.leased[target.id].author == "ben"
        assert "being edited by ben" in _badges(sent[-1])
        assert "1 being edited by others" in gallery.status.value
        # the selection in progress and the tiles under the pointer stay as they were,
        # though the edit made the image reviewed (a fresh sort by status would move it)
        assert gallery.selected == picked
        assert gallery.image_ids == order
        assert ana.image(target.id).status == "reviewed"
        gallery.refresh()  # sorting afresh is asked for, not imposed
        assert gallery.image_ids != order
        ana_own = ana.images(folder="unlabeled")[-1]
        assert ana.lease(ana_own.id)
        gallery.refresh()
        assert ana_own.id not in gallery.leased  # one's own images carry no badge
    finally:
        editor.close()
        gallery.close()


def test_a_badge_goes_when_its_lease_runs_out(shared, sent):
    ana, ben = shared
    image = ana.images(folder="unlabeled")[0]
    assert ben.lease(image.id, seconds=1.5)  # ben opens it, then goes quiet
    gallery = Gallery(ana, sort="file name", columns=10, rows=4)
    try:
        assert gallery.leased[image.id].author == "ben"
        assert "being edited by ben" in _badges(sent[-1])
        # no edit to follow: the expiry itself redraws (the badge goes with the redraw)
        _wait(lambda: not gallery.leased and _badges(sent[-1]) == [])
    finally:
        gallery.close()
