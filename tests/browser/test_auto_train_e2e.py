"""Continuous mode in a real JupyterLab: switch auto-train on in the LabelingApp, review K
images with the keyboard in Chromium, and see the next round's predictions arrive on the
untouched images, while the image open in the editor keeps what it had."""

from __future__ import annotations

from typing import Any

import pytest
from _lab import ANNOTATOR, wait_drawn, wait_until, write_notebook

from annowidget.store import Project

pytestmark = pytest.mark.browser

EVERY = 3
NOTEBOOK = """\
import annowidget
from annowidget.widgets.app import LabelingApp

project = annowidget.sample_project({path!r})
tiny = {{"image_size": 128, "batch_size": 8, "learning_rate": 0.01, "rois_per_image": 32,
        "num_threads": 1, "device": "cpu"}}
app = LabelingApp(project, hyperparameters=tiny, interval=0.2)
app.training.base_model.value = "ssdlite320_mobilenet_v3_large"  # seconds per round
app.training.pretrained.value = False
app.auto_train.every.value = {every}
app.auto_train.budget.value = 24
app.auto_train.threshold = 0.05  # keep a barely trained model's boxes
app.annotator.goto(project.images(folder="unlabeled")[0])
app
"""


def _figures(page: Any) -> str:
    return " ".join(page.locator(".annowidget-auto-train:visible").all_inner_texts())


def _shown(page: Any) -> tuple[int, list[int]] | None:
    return page.evaluate(
        """() => {
            const { editor } = document.querySelector('.aw-annotator').__annotator;
            return editor.image ? [editor.image.id, editor.boxes.map((b) => b.id)] : null;
        }"""
    )


def _sources(project: Project, image_id: int) -> list[str]:
    return [
        a.payload["source"] for a in project.actions(image_id=image_id) if a.action == "predict"
    ]


def test_reviewing_k_images_brings_the_next_rounds_predictions(lab, page, screenshots):
    project_dir = lab.root / "loop-sample"
    write_notebook(lab.root / "loop.ipynb", [NOTEBOOK.format(path=str(project_dir), every=EVERY)])
    page.goto(lab.url("loop.ipynb"))
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=120_000,
    )
    page.evaluate(
        """async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.context.ready;
            await panel.sessionContext.ready;
            await window.jupyterapp.commands.execute("notebook:run-all-cells");
        }"""
    )
    wait_drawn(page, timeout_ms=180_000)
    project = Project.open(project_dir)
    try:
        assert "auto-train is off" in _figures(page)
        page.locator("button.widget-toggle-button:visible", has_text="auto-train").click()
        # 24 reviewed images and no model: round 1 starts at once
        wait_until(lambda: "round 1 (auto-1)" in _figures(page), timeout=300, what="round 1")
        wait_until(lambda: "watching" in _figures(page), timeout=60, what="round 1's predictions")
        assert f"{EVERY} reviews until the next round" in _figures(page)
        screenshots(page, "0-round-1")

        # Review K images: Enter marks the open image reviewed and opens the next one
        canvas = page.locator(f"{ANNOTATOR} canvas").first
        for count in range(1, EVERY + 1):
            image_id, _ = _shown(page)
            canvas.click(position={"x": 5, "y": 5})  # keyboard focus on the editor
            page.keyboard.press("Enter")
            wait_until(lambda i=image_id: project.image(i).status == "reviewed", what="the review")
            wait_until(lambda i=image_id: _shown(page)[0] != i, what="the next image")
            if count < EVERY:
                left = EVERY - count
                wait_until(lambda n=left: f"{n} reviews until" in _figures(page), what="the count")

        open_id = _shown(page)[0]
        wait_until(lambda: "round 2 (auto-2)" in _figures(page), timeout=300, what="round 2")
        wait_until(lambda: "watching" in _figures(page), timeout=60, what="round 2's predictions")
        screenshots(page, "1-round-2")
        # the image open in the editor kept round 1's pre-labels
        assert "model:auto-2" not in _sources(project, open_id)
        assert _shown(page)[0] == open_id

        # Next opens an untouched image: the browser shows round 2's predictions
        page.keyboard.press("PageDown")
        shown_id, _ = wait_until(
            lambda: (s := _shown(page)) and s[0] != open_id and s, what="the next image"
        )
        wait_drawn(page, image_id=shown_id)
        assert _sources(project, shown_id)[-1] == "model:auto-2"
        stored = [a.id for a in project.annotations(shown_id, predictions=True)]
        assert stored, "round 2 stored predictions on the untouched image"
        assert all(a.source == "model:auto-2" for a in project.annotations(shown_id))
        wait_until(lambda: sorted(_shown(page)[1]) == sorted(stored), what="round 2's boxes")
        screenshots(page, "2-next-image")

        page.locator("button.widget-toggle-button:visible", has_text="auto-train").click()
        wait_until(
            lambda: "auto-train is off" in _figures(page), timeout=120, what="the switch off"
        )
    finally:
        page.evaluate(
            "async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }"
        )
