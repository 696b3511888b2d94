"""Every widget of the app renders fully from its kernel state when a new view attaches.

Three ways a view attaches to widgets that already exist in the kernel: a browser reload
(F5), the same notebook opened in Notebook 7 while JupyterLab has it, and re-running the
cell that shows the app. In each, the Review grid (ipycanvas) must be drawn and the Train
tab's plotly figure must hold its curve and axes, with no page error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _lab import wait_drawn, wait_until, write_notebook

pytestmark = pytest.mark.browser

APP_CELL = 1  # the cell that shows the app


def _notebook(lab: Any, tmp_path: Path, name: str) -> str:
    # a tiny run in the kernel before the app is shown: the Train figure has a curve
    write_notebook(
        lab.root / name,
        [
            "import annowidget\n"
            "from annowidget.widgets import LabelingApp\n"
            f"project = annowidget.sample_project({str(tmp_path / 'sample')!r})\n"
            "spare = [i.id for i in project.images(folder='train')[4:]]\n"
            "spare += [i.id for i in project.images(folder='test')[2:]]\n"
            "project.move_images(spare, 'spare')\n"
            "tiny = {'image_size': 64, 'batch_size': 2, 'num_threads': 1, 'epochs': 1}\n"
            "app = LabelingApp(project, hyperparameters=tiny, annotator_height=360)\n"
            "app.training.run()\n"
            "app.training.wait(timeout=300)\n"
            "app.training.state",
            "app",
        ],
    )
    return name


def _open(page: Any, lab: Any, notebook: str, ui: str = "lab") -> None:
    page.goto(lab.url(notebook, ui))
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
        }"""
    )


def _run_all(page: Any) -> None:
    page.evaluate(
        """async () => {
            await window.jupyterapp.commands.execute("notebook:run-all-cells");
        }"""
    )


def _tab(page: Any, title: str) -> None:
    page.locator(".lm-TabBar-tab:visible", has_text=title).last.click()


def _grid_drawn(page: Any) -> int:
    """How many distinct colours the visible Review canvas shows (a blank one: 1 or 2)."""
    return page.evaluate(
        """() => {
            const canvas = [...document.querySelectorAll('canvas')]
                .find((c) => c.offsetParent !== null && c.width > 300
                             && !c.closest('.aw-annotator'));
            if (!canvas) return 0;
            const { data } = canvas.getContext('2d')
                .getImageData(0, 0, canvas.width, canvas.height);
            const seen = new Set();
            for (let i = 0; i < data.length; i += 4 * 97) {
                seen.add(((data[i] >> 4) << 8) | ((data[i + 1] >> 4) << 4) | (data[i + 2] >> 4));
            }
            return seen.size;
        }"""
    )


def _figure(page: Any) -> dict[str, Any] | None:
    """The visible plotly figure's loss points and first x-axis title."""
    return page.evaluate(
        """() => {
            const plot = [...document.querySelectorAll('.js-plotly-plot')]
                .find((p) => p.offsetParent !== null);
            if (!plot || !plot.data) return null;
            const loss = plot.data.find((t) => t.name === 'loss');
            const title = plot.layout && plot.layout.xaxis && plot.layout.xaxis.title;
            return {
                points: loss && loss.x ? loss.x.length : 0,
                xtitle: title ? (title.text || '') : '',
            };
        }"""
    )


def _check_views(page: Any, errors: list[str], when: str) -> None:
    wait_until(
        lambda: page.locator(".lm-TabBar-tab:visible", has_text="Review").count(), what="app"
    )
    _tab(page, "Review")
    wait_until(lambda: _grid_drawn(page) > 50, timeout=60, what=f"the Review grid drawn ({when})")
    _tab(page, "Train")
    figure = wait_until(
        lambda: (f := _figure(page)) and f["points"] >= 1 and f,
        timeout=60,
        what=f"the Train figure's curve ({when})",
    )
    assert figure["xtitle"] == "step", when
    _tab(page, "Label")
    wait_drawn(page, timeout_ms=60_000)  # the Annotator draws its image too
    assert not [e for e in errors if "clearCanvas" in e], errors


def _page_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def _save(page: Any) -> None:
    page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")


def _shutdown(page: Any) -> None:
    page.evaluate(
        "async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }"
    )


def test_a_reload_shows_the_grid_and_the_figure(lab, page, tmp_path, screenshots):
    errors = _page_errors(page)
    notebook = _notebook(lab, tmp_path, "reload.ipynb")
    _open(page, lab, notebook)
    _run_all(page)
    try:
        _check_views(page, errors, "first view")
        _save(page)  # what autosave does; the reloaded page shows the saved outputs
        page.reload()  # F5: the kernel keeps the widgets, the page has none
        _open(page, lab, notebook)
        _check_views(page, errors, "after a reload")
        screenshots(page, "reloaded")
    finally:
        _shutdown(page)


def test_a_second_view_in_notebook_7_shows_the_grid_and_the_figure(
    lab, page, chromium, tmp_path, screenshots
):
    errors = _page_errors(page)
    notebook = _notebook(lab, tmp_path, "second.ipynb")
    _open(page, lab, notebook)
    _run_all(page)
    try:
        _check_views(page, errors, "JupyterLab")
        _save(page)  # Notebook 7 reads the file: the outputs (views) must be in it
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        try:
            second = context.new_page()
            second_errors = _page_errors(second)
            _open(second, lab, notebook, ui="notebook")
            _check_views(second, second_errors, "Notebook 7 next to JupyterLab")
            screenshots(second, "notebook7")
        finally:
            context.close()
    finally:
        _shutdown(page)


def test_re_running_the_app_cell_shows_the_grid_and_the_figure(lab, page, tmp_path, screenshots):
    errors = _page_errors(page)
    notebook = _notebook(lab, tmp_path, "rerun.ipynb")
    _open(page, lab, notebook)
    _run_all(page)
    try:
        _check_views(page, errors, "first run")
        page.evaluate(
            """async (cell) => {
                const panel = window.jupyterapp.shell.currentWidget;
                panel.content.activeCellIndex = cell;
                await window.jupyterapp.commands.execute("notebook:run-cell");
            }""",
            APP_CELL,
        )
        time.sleep(2)  # the old output is replaced by a new view of the same widgets
        _check_views(page, errors, "re-run")
        screenshots(page, "rerun")
    finally:
        _shutdown(page)
