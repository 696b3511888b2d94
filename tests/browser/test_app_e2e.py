"""The quickstart's LabelingApp in a real JupyterLab, driven by clicks in Debian's Chromium.

Open notebooks/01_quickstart.ipynb, run its cells up to the app, start training from the
Train tab, watch the loss curve gain points, press Stop, pick the new model in the Predict
tab, run it, and see its predictions in the Annotator (and the Review grid). Screenshots
land in test-output/ for a person to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from _lab import button, loss_trace, tab, visible_text, wait_drawn, wait_until

from annowidget.store import Project

pytestmark = pytest.mark.browser

QUICKSTART = Path(__file__).parents[2] / "notebooks" / "01_quickstart.ipynb"
APP_CELL = 3  # the cell that shows the LabelingApp


def _run_cells_through(page: Any, lab: Any, notebook: str, last: int) -> None:
    page.goto(lab.url(notebook))
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=120_000,
    )
    page.evaluate(
        """async (last) => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.context.ready;
            await panel.sessionContext.ready;
            panel.content.activeCellIndex = last + 1;
            await window.jupyterapp.commands.execute("notebook:run-all-above");
        }""",
        last,
    )


def _loss_points(page: Any) -> int:
    return len(loss_trace(page)["x"])


def test_train_stop_predict_from_the_quickstart(lab, page, screenshots):
    shutil.copy(QUICKSTART, lab.root / "01_quickstart.ipynb")
    _run_cells_through(page, lab, "01_quickstart.ipynb", APP_CELL)
    wait_drawn(page, timeout_ms=180_000)
    project_dir = lab.root / "annowidget-sample"  # the quickstart's default location
    screenshots(page, "0-app")

    try:
        # Train: Run, the curve gains points, then Stop after the first epoch is kept
        tab(page, "Train")
        button(page, "Run").click()
        wait_until(lambda: _loss_points(page) >= 1, timeout=180, what="the first loss point")
        first = _loss_points(page)
        wait_until(lambda: _loss_points(page) > first, timeout=120, what="more loss points")
        wait_until(
            lambda: "epoch 2/" in visible_text(page, ".widget-label"),
            timeout=300,
            what="the second epoch",
        )
        screenshots(page, "1-training")
        assert button(page, "Run").is_disabled()
        button(page, "Stop").click()
        wait_until(
            lambda: "stopped: kept epoch" in visible_text(page, ".widget-html"),
            timeout=300,
            what="the stopped message",
        )
        assert _loss_points(page) > first
        assert not button(page, "Run").is_disabled()
        screenshots(page, "2-stopped")

        # Predict: the new model is listed without re-running a cell; pick it, run it
        tab(page, "Predict")
        # the model list (the auto-train bar above the tabs has a dropdown of its own)
        model = (
            page.locator(".widget-dropdown select:visible")
            .filter(has=page.locator("option", has_text="model-1"))
            .first
        )
        # ipywidgets writes the labels with non-breaking spaces
        options = [o.replace("\xa0", " ") for o in model.locator("option").all_inner_texts()]
        trained = next(i for i, o in enumerate(options) if o.startswith("model-1 · trained"))
        model.select_option(index=trained)
        readout = page.locator(".widget-readout:visible").first  # the threshold slider's
        readout.click()
        page.keyboard.press("Control+a")
        page.keyboard.type("0.05")  # one epoch makes a shy model: keep its weak boxes too
        page.keyboard.press("Enter")
        wait_until(lambda: readout.inner_text().strip() == "0.05", timeout=10, what="threshold")
        screenshots(page, "3-predict")
        button(page, "Run").click()

        # Done: the app switches to Label, showing an image with the model's boxes
        project = Project.open(project_dir)
        wait_until(lambda: project.count_images(status="predicted") > 0, what="stored predictions")
        wait_until(
            lambda: page.locator(".aw-annotator:visible").count() == 1,
            timeout=120,
            what="the Label tab",
        )
        predicted = {i.id for i in project.images(status="predicted")}
        wait_drawn(page, timeout_ms=60_000)
        shown = wait_until(
            lambda: page.evaluate(
                """() => {
                    const { editor } = document.querySelector('.aw-annotator').__annotator;
                    return editor.image ? [editor.image.id, editor.boxes.length] : null;
                }"""
            ),
            what="the Annotator's image",
        )
        assert shown[0] in predicted
        assert shown[1] > 0, "the Annotator shows the predicted boxes"
        screenshots(page, "4-predictions")

        # Review: the grid is drawn (thumbnails are not a blank canvas)
        tab(page, "Review")
        spread = wait_until(
            lambda: page.evaluate(
                """() => {
                    const canvas = [...document.querySelectorAll('canvas')]
                        .find((c) => c.offsetParent !== null && c.width > 300);
                    if (!canvas) return 0;
                    const { data } = canvas.getContext('2d')
                        .getImageData(0, 0, canvas.width, canvas.height);
                    const seen = new Set();
                    for (let i = 0; i < data.length; i += 4 * 97) {
                        const [r, g, b] = [data[i] >> 4, data[i + 1] >> 4, data[i + 2] >> 4];
                        seen.add(r * 256 + g * 16 + b);
                    }
                    return seen.size > 50 ? seen.size : 0;
                }"""
            ),
            timeout=30,
            what="thumbnails on the review grid",
        )
        assert spread > 50
        screenshots(page, "5-review")
    finally:
        page.evaluate(
            "async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }"
        )
