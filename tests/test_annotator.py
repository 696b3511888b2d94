"""The Annotator's kernel side without a browser: the messages its front end sends are fed to
the widget's real message handler, and what it sends back is read off its comm."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

import annowidget
from annowidget.store import Project, ProjectError
from annowidget.widgets.annotator import Annotator


@pytest.fixture
def project(tmp_path) -> Project:
    # 40 raccoon images: 1..30 reviewed with boxes (train/test), 31..40 unlabeled
    return annowidget.sample_project(tmp_path / "sample")


class Wire:
    """What the widget puts on its comm: trait updates and custom messages, in order."""

    def __init__(self, widget: Annotator) -> None:
        self.widget = widget
        self.messages: list[tuple[dict, list]] = []
        widget.comm.send = self._record  # the real send path up to the comm

    def _record(self, data=None, metadata=None, buffers=None) -> None:
        self.messages.append((data, list(buffers or [])))

    def images(self) -> list[tuple[dict, bytes]]:
        return [
            (data["content"], bytes(buffers[0]))
            for data, buffers in self.messages
            if data.get("method") == "custom" and data["content"].get("type") == "image"
        ]

    def kinds(self) -> list[str]:
        out = []
        for data, _ in self.messages:
            if data.get("method") == "custom":
                out.append(f"image:{data['content']['image_id']}")
            elif data.get("method") == "update":
                out.append("update:" + ",".join(sorted(data["state"])))
        return out

    def clear(self) -> None:
        self.messages.clear()


class Browser:
    """Sends what the front end sends: one message per committed edit, numbered."""

    def __init__(self, widget: Annotator) -> None:
        self.widget = widget
        self.seq = 0

    def __call__(self, **content) -> None:
        self.seq += 1
        self.widget._handle_custom_msg({**content, "seq": self.seq}, [])

    def ready(self) -> None:
        self.widget._handle_custom_msg({"type": "ready"}, [])


def _predict(project: Project, image_id: int, scores: list[float]) -> list[int]:
    category = project.categories()[0]
    anns = project.replace_predictions(
        image_id,
        [
            {"category_id": category.id, "bbox": [10 + 60 * i, 10, 50, 40], "score": s}
            for i, s in enumerate(scores)
        ],
        source="model:test",
    )
    return [a.id for a in anns]


def _unlabeled(project: Project) -> int:
    return project.images(folder="unlabeled")[0].id


# ---------------------------------------------------------------- state and images


def test_opens_on_the_first_image_with_its_boxes_and_small_state(project):
    widget = Annotator(project)
    first = project.images()[0]
    assert widget.image == first
    assert widget.position == [0, 40]
    assert widget.status == "reviewed"
    assert widget.categories == [
        {"id": 1, "name": "raccoon", "color": "#4e79a7", "keypoints": [], "skeleton": []}
    ]
    stored = project.annotations(first.id)
    assert [b["id"] for b in widget._boxes] == [a.id for a in stored]
    assert widget._boxes[0]["bbox"] == [round(v, 3) for v in stored[0].bbox]
    assert widget._image["width"] == first.width
    assert widget.boxes == stored
    assert widget.predictions == []
    # what a saved notebook would keep: no image bytes, no other image's labels
    state = widget.get_state()
    state.pop("_esm")
    state.pop("_css")
    assert len(json.dumps(state)) < 2000


def test_saved_state_does_not_grow_with_the_project(project):
    widget = Annotator(project)
    before = len(json.dumps(widget.get_state()))
    category = project.categories()[0]
    for image in project.images()[1:]:
        for _ in range(20):
            project.add_annotation(image.id, category.id, [1, 1, 5, 5])
    widget.refresh()
    assert len(json.dumps(widget.get_state())) == before


def test_images_travel_as_the_file_bytes_in_a_binary_buffer_current_then_next(project):
    widget = Annotator(project)
    wire = Wire(widget)
    Browser(widget).ready()
    sent = wire.images()
    ids = [m["image_id"] for m, _ in sent]
    first, second = project.images()[:2]
    assert ids == [first.id, second.id]
    for (meta, data), image in zip(sent, (first, second), strict=True):
        assert data == project.image_path(image).read_bytes()  # untouched, not base64
        assert meta["mime"] == "image/jpeg"
        assert meta["scale"] == 1.0
    assert widget.bytes_sent == sum(len(d) for _, d in sent)


def test_next_shows_the_prefetched_image_without_resending_it(project):
    widget = Annotator(project)
    browser = Browser(widget)
    browser.ready()
    wire = Wire(widget)
    browser(type="next")
    images = project.images()
    assert widget.image == images[1]
    # the image already in the browser is not sent again; the one after it is, AFTER the
    # trait update that switches the view (so the switch never waits for the prefetch)
    kinds = wire.kinds()
    switch = next(i for i, k in enumerate(kinds) if k.startswith("update:") and "_image" in k)
    assert kinds.index(f"image:{images[2].id}") > switch
    assert [m["image_id"] for m, _ in wire.images()] == [images[2].id]
    file_bytes = project.image_path(images[2]).stat().st_size
    assert sum(len(d) for _, d in wire.images()) / file_bytes == 1.0


def test_huge_images_are_downscaled_once_and_coordinates_stay_original(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    PILImage.new("RGB", (4000, 3000), (90, 120, 30)).save(images / "big.png")
    project = Project.create(tmp_path / "proj", images_root=images)
    project.add_category("thing")
    image = project.add_image(images / "big.png")
    widget = Annotator(project, max_side=1000)
    wire = Wire(widget)
    browser = Browser(widget)
    browser.ready()
    [(meta, data)] = wire.images()
    assert meta["width"] == 1000
    assert meta["height"] == 750
    assert widget.display_scale == 0.25
    assert widget._image["width"] == 4000  # the front end maps onto the original extent
    assert len(data) < image.width * image.height  # encoded, not raw pixels
    browser(type="add", client_id="c-1", category_id=1, bbox=[3000.5, 2000.25, 999.5, 999.75])
    [ann] = project.annotations(image.id)
    assert ann.bbox == (3000.5, 2000.25, 999.5, 999.75)


def test_a_new_view_gets_the_current_image_again(project):
    widget = Annotator(project)
    browser = Browser(widget)
    browser.ready()
    wire = Wire(widget)
    browser.ready()  # e.g. the notebook was reloaded, or the widget displayed twice
    assert [m["image_id"] for m, _ in wire.images()] == [1, 2]
    wire.clear()
    widget._handle_custom_msg({"type": "need_image", "image_id": 1}, [])
    assert [m["image_id"] for m, _ in wire.images()][:1] == [1]


# ------------------------------------------------------------------------- edits


def test_add_is_saved_at_once_logged_with_its_duration_and_acknowledged(project):
    image_id = _unlabeled(project)
    widget = Annotator(project)
    widget.goto(image_id)
    browser = Browser(widget)
    browser(type="add", client_id="cx-1", category_id=1, bbox=[10, 20, 30, 40], duration=1.25)
    [ann] = project.annotations(image_id)
    assert ann.bbox == (10.0, 20.0, 30.0, 40.0)
    assert not ann.is_prediction
    assert widget._acked == 1
    assert widget._boxes == [
        {
            "id": ann.id,
            "category_id": 1,
            "bbox": [10.0, 20.0, 30.0, 40.0],
            "score": None,
            "is_prediction": False,
            "client_id": "cx-1",
        }
    ]
    assert widget.last_saved > 0
    assert widget.status == "reviewed"
    log = [a for a in project.actions(image_id=image_id) if a.action == "add"]
    assert log[-1].duration == 1.25
    # the front end may edit the new box before it learns its id: the client id still works
    browser(type="update", id="cx-1", bbox=[12, 20, 30, 40])
    browser(type="update", id=ann.id, category_id=1, bbox=[12, 22, 30, 40])
    assert project.annotation(ann.id).bbox == (12.0, 22.0, 30.0, 40.0)
    assert widget._acked == 3


def test_relabel_delete_and_edits_of_predictions(project):
    image_id = _unlabeled(project)
    project.add_category("dog")
    keep, reject, edit = _predict(project, image_id, [0.9, 0.8, 0.7])
    widget = Annotator(project)
    widget.refresh_categories()
    widget.goto(image_id)
    assert widget.status == "predicted"
    assert [a.id for a in widget.predictions] == [keep, reject, edit]
    browser = Browser(widget)
    browser(type="accept", id=keep)
    browser(type="delete", id=reject)
    browser(type="update", id=edit, category_id=2)
    by_id = {a.id: a for a in project.annotations(image_id)}
    assert set(by_id) == {keep, edit}
    assert by_id[keep].score == 0.9
    assert not by_id[keep].is_prediction
    assert by_id[edit].category_id == 2
    assert by_id[edit].score is None
    assert [a.action for a in project.actions(image_id=image_id)][-3:] == [
        "accept",
        "reject",
        "update",
    ]
    assert widget.status == "reviewed"
    assert widget.predictions == []


def test_accept_all_takes_only_scores_at_or_above_the_threshold(project):
    image_id = _unlabeled(project)
    high, mid, low = _predict(project, image_id, [0.9, 0.5, 0.2])
    widget = Annotator(project, threshold=0.5)
    widget.goto(image_id)
    Browser(widget)(type="accept_all", threshold=0.5)
    assert {a.id for a in widget.boxes} == {high, mid}
    assert [a.id for a in widget.predictions] == [low]
    assert widget.accept_all(threshold=0.1) == 1
    assert widget.predictions == []


def test_refused_edits_change_nothing_say_why_and_still_echo(project):
    image_id = _unlabeled(project)
    widget = Annotator(project)
    widget.goto(image_id)
    other = project.annotations(1)[0]
    browser = Browser(widget)
    before = len(project.actions())
    browser(type="add", client_id="c-1", category_id=1, bbox=[10, 10, 99999, 5])
    assert "outside image" in widget.message
    assert "not saved" in widget.message
    browser(type="add", client_id="c-2", category_id=77, bbox=[1, 1, 5, 5])
    assert "category 77" in widget.message
    browser(type="delete", id=other.id)
    assert f"belongs to image {other.image_id}" in widget.message
    browser(type="update", id="c-404", bbox=[1, 1, 2, 2])
    assert "unknown box" in widget.message
    browser(type="frobnicate")
    assert "unknown edit" in widget.message
    assert len(project.actions()) == before
    assert project.annotations(image_id) == []
    assert widget._acked == 5  # every command is answered, so the view adopts the truth
    assert widget._boxes == []
    browser(type="add", client_id="c-3", category_id=1, bbox=[1, 1, 5, 5])
    assert widget.message == ""


# -------------------------------------------------------------------- undo / redo


def test_undo_redo_through_the_action_log_keep_ids_scores_and_status(project):
    image_id = _unlabeled(project)
    [pred] = _predict(project, image_id, [0.75])
    widget = Annotator(project)
    widget.goto(image_id)
    browser = Browser(widget)
    browser(type="add", client_id="c-1", category_id=1, bbox=[100, 100, 50, 50])
    added = widget._boxes[-1]["id"]
    browser(type="update", id=added, bbox=[110, 100, 60, 50])
    browser(type="accept", id=pred)
    assert widget.can_undo
    assert not widget.can_redo

    browser(type="undo")  # the accept: a prediction again, with its score
    restored = project.annotation(pred)
    assert restored.is_prediction
    assert restored.score == 0.75
    assert widget.status == "predicted"
    browser(type="undo")  # the resize
    assert project.annotation(added).bbox == (100.0, 100.0, 50.0, 50.0)
    browser(type="undo")  # the add
    assert [a.id for a in project.annotations(image_id)] == [pred]
    browser(type="undo")  # nothing left: no error, nothing changes
    assert widget.message == ""
    assert widget.can_redo
    assert not widget.can_undo

    browser(type="redo")
    browser(type="redo")
    assert project.annotation(added).bbox == (110.0, 100.0, 60.0, 50.0)  # same id back
    browser(type="redo")
    assert not project.annotation(pred).is_prediction
    assert widget.status == "reviewed"
    logged = [a.action for a in project.actions(image_id=image_id)]
    assert logged.count("undo") == 3
    assert logged.count("redo") == 3


def test_undo_of_accept_all_is_one_step_and_a_new_edit_drops_redo(project):
    image_id = _unlabeled(project)
    ids = _predict(project, image_id, [0.9, 0.8])
    widget = Annotator(project)
    widget.goto(image_id)
    browser = Browser(widget)
    browser(type="accept_all", threshold=0.5)
    browser(type="undo")
    assert {a.id for a in widget.predictions} == set(ids)
    browser(type="delete", id=ids[0])
    assert not widget.can_redo
    widget.undo()
    assert {a.id for a in widget.predictions} == set(ids)


def test_undo_of_a_delete_restores_the_box_under_its_id(project):
    widget = Annotator(project)
    [ann] = project.annotations(widget.image.id)[:1]
    browser = Browser(widget)
    browser(type="delete", id=ann.id)
    assert project.annotations(widget.image.id) == []
    browser(type="undo")
    again = project.annotation(ann.id)
    assert again.bbox == ann.bbox
    assert again.category_id == ann.category_id


def test_history_is_per_image(project):
    first, second = project.images(folder="unlabeled")[:2]
    widget = Annotator(project, folder="unlabeled")
    browser = Browser(widget)
    browser(type="add", client_id="c-1", category_id=1, bbox=[1, 1, 5, 5])
    browser(type="next")
    assert widget.image.id == second.id
    browser(type="undo")  # nothing was done here
    assert len(project.annotations(first.id)) == 1
    browser(type="previous")
    browser(type="undo")
    assert project.annotations(first.id) == []


# --------------------------------------------------------------------- navigation


def test_navigation_stops_at_the_ends_and_skips_to_work_left(project):
    widget = Annotator(project)
    browser = Browser(widget)
    browser(type="previous")
    assert widget.position == [0, 40]
    widget.goto(project.images()[-1])
    browser(type="next")
    assert widget.position == [39, 40]
    widget.goto(1)
    browser(type="next_unlabeled")
    assert widget.image.id == _unlabeled(project)
    assert widget.image.status == "unlabeled"


def test_submit_marks_the_image_reviewed_and_moves_on(project):
    image_id = _unlabeled(project)
    seen = []
    widget = Annotator(project, folder="unlabeled")
    widget.on_image(seen.append)
    Browser(widget)(type="submit")
    assert project.image(image_id).status == "reviewed"
    assert widget.image.id == image_id + 1
    assert [i.id for i in seen] == [image_id + 1]


def test_filters_by_folder_and_status(project):
    widget = Annotator(project, folder="unlabeled")
    assert widget.position == [0, 10]
    assert widget.folders == ["test", "train", "unlabeled"]
    widget.folder = "test"
    assert widget.image.folder == "test"
    widget.folder = ""
    widget.status_filter = "unlabeled"
    assert widget.position[1] == 10
    assert all(project.image(i).status == "unlabeled" for i in widget.image_ids)
    with pytest.raises(ProjectError, match="status must be one of"):
        Annotator(project, status="done")


def test_goto_outside_the_filter_and_an_empty_filter(project, tmp_path):
    widget = Annotator(project, folder="unlabeled")
    widget.goto(1)
    assert widget.image.id == 1
    assert widget.position == [-1, 10]
    widget.next()
    assert widget.image.folder == "unlabeled"
    empty_images = tmp_path / "empty"
    empty_images.mkdir()
    empty = Annotator(Project.create(tmp_path / "p2", images_root=empty_images))
    assert empty.image is None
    assert empty.boxes == []
    assert empty.position == [-1, 0]
    with pytest.raises(ProjectError, match="no image"):
        empty.accept_all()


def test_on_change_reports_each_saved_edit(project):
    events = []
    widget = Annotator(project, folder="unlabeled")
    widget.on_change(events.append)
    browser = Browser(widget)
    browser(type="add", client_id="c-1", category_id=1, bbox=[1, 1, 5, 5])
    browser(type="undo")
    widget.on_change(events.append, remove=True)
    browser(type="redo")
    assert [e["type"] for e in events] == ["add", "undo"]
    assert events[0]["image_id"] == widget.image.id
    assert events[0]["annotation_ids"] == events[1]["annotation_ids"]


def test_a_broken_image_file_is_reported_not_raised(project):
    image = project.images(folder="unlabeled")[0]
    Path(project.image_path(image)).write_bytes(b"not a jpeg")
    widget = Annotator(project, folder="unlabeled")
    Browser(widget).ready()
    assert image.path in widget.message
    widget.next()
    assert widget.message == ""


def test_undo_ignores_what_other_writers_logged_meanwhile(project):
    image_id = _unlabeled(project)
    widget = Annotator(project)
    widget.goto(image_id)
    browser = Browser(widget)
    browser(type="add", client_id="c-1", category_id=1, bbox=[1, 1, 5, 5])
    [pred] = _predict(project, image_id, [0.6])  # a prediction run, from another thread
    browser(type="undo")
    assert [a.id for a in project.annotations(image_id)] == [pred]
    assert widget.status == "predicted"  # not "unlabeled", as before the add


def test_categories_added_later_show_up_on_the_next_image(project):
    widget = Annotator(project)
    project.add_category("dog")
    widget.next()
    assert [c["name"] for c in widget.categories] == ["raccoon", "dog"]


def test_showing_an_image_logs_a_view_for_the_effort_meter(tmp_path) -> None:
    import annowidget
    from annowidget.widgets.annotator import Annotator

    project = annowidget.sample_project(tmp_path / "s")
    annotator = Annotator(project)
    first = annotator.image
    annotator.next()
    views = [a.image_id for a in project.actions() if a.action == "view"]
    assert views == [first.id, annotator.image.id]


# ---------------------------------------------------------------- saves that fail


def _hold_write_lock(project: Project):
    """Another connection holding the write lock, as a long import does."""
    import sqlite3

    other = sqlite3.connect(project.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_refused_save_stays_pending_says_why_and_is_retried(project):
    widget = Annotator(project)
    widget.goto(_unlabeled(project))
    image_id = widget.image.id
    browser = Browser(widget)
    category = project.categories()[0].id
    # this thread's connection waits 0.1 s for a lock, not the store's 10 s
    project._db.execute("PRAGMA busy_timeout=100")
    lock = _hold_write_lock(project)
    try:
        browser(type="add", category_id=category, bbox=[10, 10, 40, 30], client_id="c1")
        assert widget.message.startswith("not saved: database is locked")
        assert "kept here, retrying" in widget.message
        assert widget.unsaved == 1
        assert widget._acked == 0  # not acknowledged: the front end keeps showing it
        # a later edit (on the unsaved box) waits behind it, in order
        browser(type="update", id="c1", bbox=[12, 12, 40, 30])
        assert widget.unsaved == 2
        assert widget._acked == 0
        assert project.annotations(image_id) == []
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # the retry timer saves both, in order, by itself, and acknowledges the last
    deadline = time.monotonic() + 10
    while widget.unsaved and time.monotonic() < deadline:
        time.sleep(0.1)
    assert widget.unsaved == 0
    stored = project.annotations(image_id)
    assert [a.bbox for a in stored] == [(12.0, 12.0, 40.0, 30.0)]
    assert widget._acked == 2
    assert widget.message == ""
    assert [b["id"] for b in widget._boxes] == [stored[0].id]


def test_a_read_only_database_is_reported_not_lost(project, tmp_path):
    """A store that fails every write (read-only file system, like a full disk) still
    loses nothing silently: the edit is kept and the reason is on the canvas."""
    widget = Annotator(project)
    widget.goto(_unlabeled(project))
    project._db.execute("PRAGMA query_only=ON")  # SQLite's own "attempt to write" refusal
    try:
        Browser(widget)(type="add", category_id=project.categories()[0].id, bbox=[5, 5, 20, 20])
        assert widget.message.startswith("not saved: attempt to write a readonly database")
        assert widget.unsaved == 1
        assert widget.retry_unsaved() is False  # still refused: still kept
        assert widget.unsaved == 1
    finally:
        project._db.execute("PRAGMA query_only=OFF")
    assert widget.retry_unsaved() is True
    assert len(project.annotations(widget.image.id)) == 1


# ---------------------------------------------------------------- classes


def test_a_class_added_in_one_annotator_reaches_every_open_one(project):
    first, second = Annotator(project), Annotator(Project.open(project.root))
    first._handle_custom_msg({"type": "add_category", "name": "raccoon kit"}, [])
    assert [c["name"] for c in first.categories] == ["raccoon", "raccoon kit"]
    assert [c["name"] for c in second.categories] == ["raccoon", "raccoon kit"]
    assert first.message == ""


def test_a_refused_class_name_is_shown(project):
    widget = Annotator(project)
    widget._handle_custom_msg({"type": "add_category", "name": "   "}, [])
    assert widget.message == "class not added: category name must not be empty"
    assert [c["name"] for c in widget.categories] == ["raccoon"]


def test_a_class_added_from_python_appears_without_refresh(project):
    widget = Annotator(project)
    project.add_category("dog")
    deadline = time.monotonic() + 5
    while len(widget.categories) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c["name"] for c in widget.categories] == ["raccoon", "dog"]


def test_the_category_watcher_forgets_a_project_once_its_widgets_are_closed(project):
    from annowidget.widgets import _project_events

    widget = Annotator(project)
    root = project.root.resolve()
    assert root in _project_events._projects, "an open Annotator is watched"
    assert any(t.name == "annowidget-categories" for t in threading.enumerate())
    widget.close()
    deadline = time.monotonic() + 5
    while root in _project_events._projects and time.monotonic() < deadline:
        time.sleep(0.1)
    assert root not in _project_events._projects
