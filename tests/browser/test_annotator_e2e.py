"""The Annotator in a real JupyterLab, driven by a real mouse and keyboard in Chromium.

Draw a box, resize it, relabel it with a digit, accept a prediction, undo once; then read
the project's SQLite file from here (another process than the kernel) and check that
exactly those changes landed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from _lab import (
    ANNOTATOR,
    drag,
    open_and_run,
    to_image,
    to_page,
    view,
    wait_drawn,
    wait_until,
    write_notebook,
)

from annowidget.store import Project

pytestmark = pytest.mark.browser

_wait = functools.partial(wait_until, timeout=20.0)  # the editor answers within seconds

RACCOON = Path(__file__).parents[2].parent / "shared" / "data" / "raccoon" / "images"
IMAGES = ["raccoon-1.jpg", "raccoon-10.jpg", "raccoon-100.jpg"]
PREDICTION = [380.0, 60.0, 200.0, 250.0]  # on raccoon-1.jpg (650x417), score 0.9


def _notebook(lab, project_dir: Path, name: str) -> str:
    write_notebook(
        lab.root / name,
        [
            "from annowidget.store import Project\n"
            "from annowidget.widgets.annotator import Annotator\n"
            f"project = Project.open({str(project_dir)!r})\n"
            "annotator = Annotator(project, height=480)\n"
            "annotator",
        ],
    )
    return name


@pytest.fixture
def labeled(lab, tmp_path) -> tuple[Path, int, int]:
    if not all((RACCOON / name).is_file() for name in IMAGES):
        pytest.skip(f"raccoon images missing under {RACCOON}")
    project_dir = tmp_path / "project"
    with Project.create(project_dir, images_root=RACCOON) as project:
        project.add_category("raccoon")
        project.add_category("dog")
        images = [project.add_image(RACCOON / name) for name in IMAGES]
        [pred] = project.replace_predictions(
            images[0].id,
            [{"category_id": 1, "bbox": PREDICTION, "score": 0.9}],
            source="model:test",
        )
        last_action = project.actions()[-1].id
    return project_dir, pred.id, last_action


def test_draw_resize_relabel_accept_undo_land_in_the_sqlite_file(lab, page, labeled, screenshots):
    project_dir, pred_id, last_action = labeled
    _notebook(lab, project_dir, "annotate.ipynb")
    open_and_run(page, lab, "annotate.ipynb")
    v = view(page)
    assert v["image"]["width"] == 650
    assert v["backingWidth"] == round(v["width"] * 2)  # HiDPI backing store at DPR 2
    assert [b["id"] for b in v["boxes"]] == [pred_id]
    screenshots(page, "0-opened")
    project = Project.open(project_dir)

    # draw: one message on mouse-up, saved at once
    start = to_page(v, 60, 80)
    end = to_page(v, 260, 300)
    drag(page, start, end)
    [added] = _wait(lambda: project.annotations(1, predictions=False), what="the new box")
    x0, y0 = to_image(v, *start)
    x1, y1 = to_image(v, *end)
    assert added.bbox == pytest.approx((x0, y0, x1 - x0, y1 - y0), abs=0.011)
    assert added.category_id == 1
    screenshots(page, "1-drawn")

    # resize by the bottom-right handle (the new box is selected)
    corner = to_page(v, added.bbox[0] + added.bbox[2], added.bbox[1] + added.bbox[3])
    target = (corner[0] + 30, corner[1] + 20)
    drag(page, corner, target)
    tx, ty = to_image(v, *target)
    resized = _wait(
        lambda: (a := project.annotation(added.id)).bbox != added.bbox and a,
        what="the resize",
    )
    assert resized.bbox == pytest.approx((x0, y0, tx - x0, ty - y0), abs=0.011)
    screenshots(page, "2-resized")

    # relabel with a digit: the key must reach the widget, not JupyterLab's shortcuts
    page.keyboard.press("2")
    _wait(lambda: project.annotation(added.id).category_id == 2, what="the relabel")
    assert page.locator(".jp-MarkdownCell").count() == 0  # '2' did not make a heading cell

    # accept the prediction: select it with a click, Enter accepts
    px, py = to_page(v, PREDICTION[0] + 100, PREDICTION[1] + 125)
    page.mouse.click(px, py)
    page.keyboard.press("Enter")
    _wait(lambda: not project.annotation(pred_id).is_prediction, what="the accept")
    screenshots(page, "3-accepted")

    # undo once: the accept is reverted, through the action log
    page.keyboard.press("Control+z")
    _wait(lambda: project.annotation(pred_id).is_prediction, what="the undo")
    screenshots(page, "4-undone")

    # exactly those changes, read from the SQLite file
    anns = {a.id: a for a in project.annotations(1)}
    assert set(anns) == {added.id, pred_id}
    assert anns[added.id].category_id == 2
    assert anns[added.id].bbox == pytest.approx(resized.bbox)
    assert not anns[added.id].is_prediction
    assert anns[pred_id].is_prediction
    assert anns[pred_id].score == 0.9
    assert anns[pred_id].bbox == tuple(PREDICTION)
    assert project.annotations(2) == []
    assert project.annotations(3) == []
    assert project.image(1).status == "predicted"
    # "view" entries mark when an image was shown (the effort meter's clock), not edits
    edits = [a for a in project.actions(since_id=last_action) if a.action != "view"]
    actions = [a.action for a in edits]
    assert actions == [
        "add",
        "update",  # resize
        "update",  # relabel
        "accept",
        "delete",  # undo of the accept: the row is put back whole, score included
        "restore",
        "set_status",
        "undo",
    ]
    durations = [a.duration for a in edits[:2]]
    assert all(d is not None and d > 0 for d in durations)  # drags are timed
    # the widget shows the saved time and the canvas shows it again as a prediction
    assert page.locator(f"{ANNOTATOR} .aw-saved").inner_text().startswith("saved ")
    v = view(page)
    shown = {b["id"]: b for b in v["boxes"]}
    assert shown[pred_id]["is_prediction"] is True
    assert shown[added.id]["category_id"] == 2

    # the keyboard map, as text
    page.keyboard.press("?")
    help_box = page.locator(f"{ANNOTATOR} .aw-help")
    assert help_box.is_visible()
    assert "undo / redo" in help_box.inner_text()
    screenshots(page, "4b-help")
    page.keyboard.press("Escape")
    assert not help_box.is_visible()

    # Space goes to the next image (already prefetched)
    page.keyboard.press("Space")
    wait_drawn(page, image_id=2)
    screenshots(page, "5-next")

    # the saved notebook keeps the widget state small: no image bytes, no labels
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    notebook = lab.root / "annotate.ipynb"
    _wait(lambda: "application/vnd.jupyter.widget-state+json" in notebook.read_text(), what="save")
    saved = json.loads(notebook.read_text())
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    [annotator] = [s["state"] for s in state.values() if s["model_name"] == "AnyModel"]
    assert annotator["_image"]["id"] == 2
    assert annotator["_boxes"] == []  # image 2 has none; image 1's boxes are not in the file
    assert "/9j/" not in notebook.read_text()  # no base64 JPEG anywhere
    # what grows with use stays small; the bundled front end (_esm, _css) is a fixed cost
    fixed = len(json.dumps(annotator.get("_esm", ""))) + len(json.dumps(annotator.get("_css", "")))
    rest = {k: v for k, v in annotator.items() if k not in ("_esm", "_css")}
    assert len(json.dumps(rest)) < 4_000
    assert notebook.stat().st_size - fixed < 40_000

    # reopening the notebook shows the same state, read from the store
    page.reload()
    open_and_run(page, lab, "annotate.ipynb")
    v = view(page)
    assert v["image"]["id"] == 1
    assert {b["id"]: (b["category_id"], b["is_prediction"]) for b in v["boxes"]} == {
        added.id: (2, False),
        pred_id: (1, True),
    }
    screenshots(page, "6-reopened")
    project.close()


def test_notebook_7_draws_and_relabels(lab, page, labeled, screenshots):
    pytest.importorskip("notebook", minversion="7")
    project_dir, pred_id, last_action = labeled
    open_and_run(page, lab, _notebook(lab, project_dir, "nb7.ipynb"), ui="notebook")
    v = view(page)
    drag(page, to_page(v, 40, 250), to_page(v, 200, 400))
    project = Project.open(project_dir)
    [added] = _wait(lambda: project.annotations(1, predictions=False), what="the new box")
    page.keyboard.press("2")
    _wait(lambda: project.annotation(added.id).category_id == 2, what="the relabel")
    page.keyboard.press("Tab")  # the first box (the prediction); focus stays in the widget
    page.keyboard.press("Delete")  # rejects it
    _wait(lambda: len(project.annotations(1)) == 1, what="the reject")
    screenshots(page, "notebook7")
    assert page.locator(".jp-MarkdownCell").count() == 0
    assert [a.id for a in project.annotations(1)] == [added.id]
    edits = [a for a in project.actions(since_id=last_action) if a.action != "view"]
    assert [a.action for a in edits] == ["add", "update", "reject"]
    assert edits[-1].annotation_id == pred_id
    project.close()


def test_class_bar_adds_a_class_help_fits_slider_takes_arrows(lab, page, labeled, screenshots):
    project_dir, _pred_id, _last = labeled
    _notebook(lab, project_dir, "classes.ipynb")
    open_and_run(page, lab, "classes.ipynb")
    project = Project.open(project_dir)

    # "+" in the class bar, a name, Enter: stored, shown, and the class to draw with
    page.locator(".aw-add-class").click()
    page.locator(".aw-new-class").fill("raccoon kit")
    page.locator(".aw-new-class").press("Enter")
    _wait(lambda: "raccoon kit" in [c.name for c in project.categories()], what="the new class")
    kit = project.categories()[-1]
    button = page.locator(f".aw-classes [data-category='{kit.id}']")
    _wait(lambda: button.count() == 1, what="the class button")
    _wait(lambda: "aw-current" in (button.get_attribute("class") or ""), what="its selection")
    assert page.locator(".jp-MarkdownCell").count() == 0  # typing reached no shortcut

    # the keyboard map fits the stage: nothing cut off
    page.locator(ANNOTATOR).focus()
    page.keyboard.press("?")
    sizes = page.evaluate(
        """() => {
            const help = document.querySelector('.aw-help');
            const stage = document.querySelector('.aw-stage');
            return [help.scrollHeight, help.clientHeight, help.getBoundingClientRect().bottom,
                    stage.getBoundingClientRect().bottom];
        }"""
    )
    screenshots(page, "help")
    assert sizes[0] <= sizes[1] + 1, sizes  # no scrolling inside the box
    assert sizes[2] <= sizes[3], sizes
    page.keyboard.press("?")

    # the threshold slider moves with the arrow keys, and the notebook does not
    slider = page.locator(".aw-threshold")
    before = float(slider.input_value())
    cell = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex")
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert float(slider.input_value()) == pytest.approx(before + 0.02)
    page.keyboard.press("ArrowUp")
    assert float(slider.input_value()) == pytest.approx(before + 0.03)
    assert (
        page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex") == cell
    )


def test_a_box_drawn_while_the_database_is_locked_stays_says_so_and_is_saved(
    lab, page, labeled, screenshots
):
    import sqlite3

    project_dir, pred_id, _last = labeled
    _notebook(lab, project_dir, "locked.ipynb")
    open_and_run(page, lab, "locked.ipynb")
    v = view(page)
    project = Project.open(project_dir)
    # another process holds the write lock (a long import): the kernel waits its busy
    # timeout (10 s), then the save fails
    other = sqlite3.connect(project.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        drag(page, to_page(v, 60, 80), to_page(v, 260, 300))
        message = page.locator(".aw-message")
        _wait(
            lambda: "not saved: database is locked" in message.inner_text(),
            timeout=40,
            what="the not-saved message",
        )
        screenshots(page, "not-saved")
        assert len(view(page)["boxes"]) == 2  # the drawn box stays on the canvas
        assert project.annotations(1, predictions=False) == []
    finally:
        other.execute("ROLLBACK")
        other.close()
    [saved] = _wait(
        lambda: project.annotations(1, predictions=False), timeout=30, what="the retried save"
    )
    _wait(lambda: message.is_hidden(), timeout=10, what="the message to clear")
    assert {b["id"] for b in view(page)["boxes"]} == {pred_id, saved.id}
