"""What the README tells a newcomer, in a real JupyterLab: the defaults train.

The notebook's only cell is the README's ``LabelingApp`` snippet, read from README.md (so
this test breaks when the README changes). In the Train tab, Run is pressed with every field
at its default: 12 epochs, batch 4, the scaled learning rate (0.005), the base model's own
image size (512 px), on the CPU. The loss curve drawn in the page must hold two whole epochs
of finite losses, the second epoch's mean below the first's, and the panel must never show a
warning (a non-finite loss and its halved-rate retry) or a failure; Stop then keeps epoch 2.

An epoch of the 24 training images (6 steps) takes about 45 s on the one thread the defaults
use on a 2-core machine, 80 s when other work shares it; the whole test takes 3-4 minutes.
Waiting for two whole epochs is what makes "falling" mean something: the first epoch is the
warm-up.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from _lab import button, loss_trace, open_and_run, tab, visible_text, wait_until, write_notebook

from annowidget.models.registry import ModelRegistry
from annowidget.store import Project
from annowidget.train.hyperparameters import Hyperparameters

pytestmark = pytest.mark.browser

README = Path(__file__).parents[2] / "README.md"
# what the panel says when a run goes wrong: a warning (a non-finite loss, the retry with a
# halved learning rate) or a failed run
TROUBLE = ("⚠", "failed:", "the loss became", "halved the learning rate")


def readme_app_snippet() -> str:
    """The README's python block that shows the ``LabelingApp``, verbatim."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    snippets = [b for b in blocks if "LabelingApp(" in b]
    assert len(snippets) == 1, f"README.md: expected one python block with LabelingApp, {blocks}"
    return snippets[0]


def _steps_per_epoch(page: Any) -> int:
    """``S`` of the progress text's ``step s/S`` (0 before the first step)."""
    found = re.search(r"step \d+/(\d+)", visible_text(page, ".widget-label"))
    return int(found.group(1)) if found else 0


def _panel_message(page: Any) -> str:
    return visible_text(page, ".widget-html")


def _no_trouble(page: Any) -> str:
    """The panel's text, after checking it shows no warning or failure."""
    message = _panel_message(page)
    shown = [words for words in TROUBLE if words in message]
    assert not shown, f"the Train tab shows {shown}: {message}"
    return message


def test_the_readme_snippet_trains_with_every_default(lab, page, screenshots):
    snippet = readme_app_snippet()
    assert "hyperparameters" not in snippet  # the point: nothing but the defaults
    write_notebook(lab.root / "readme_app.ipynb", [snippet])
    open_and_run(page, lab, "readme_app.ipynb", timeout_ms=180_000)
    project_dir = lab.root / "sample"  # the README's sample_project("sample"), in the kernel's cwd
    assert project_dir.is_dir(), "the README's snippet did not create its sample project"

    try:
        tab(page, "Train")
        button(page, "Run").click()  # no field touched
        steps = wait_until(lambda: _steps_per_epoch(page), timeout=180, what="the first step")

        def two_epochs() -> bool:
            _no_trouble(page)  # checked at every poll, not only at the end
            return len(loss_trace(page)["x"]) >= 2 * steps

        wait_until(two_epochs, timeout=360, what="two epochs of loss points")
        page.locator(".js-plotly-plot:visible").first.scroll_into_view_if_needed()
        screenshots(page, "1-two-epochs")
        button(page, "Stop").click()
        kept = wait_until(
            lambda: re.search(r"stopped: kept epoch (\d+)", _no_trouble(page)),
            timeout=120,
            what="the stopped message",
        )
        screenshots(page, "2-stopped")
        assert int(kept.group(1)) >= 2, _panel_message(page)

        trace = loss_trace(page)
        assert trace["x"][: 2 * steps] == list(range(1, 2 * steps + 1))  # no step missing
        losses = trace["y"]
        assert all(v is not None and math.isfinite(v) for v in losses), losses
        first, second = losses[:steps], losses[steps : 2 * steps]
        assert sum(second) / steps < sum(first) / steps, f"the loss did not fall: {losses}"

        # the run really used every default (and the zoo's default base model), and its card
        # records no halved learning rate
        card = ModelRegistry(Project.open(project_dir)).card("model-1")
        assert card.hyperparameters == Hyperparameters().to_dict()
        assert card.hyperparameters["learning_rate"] == pytest.approx(0.005)
        assert card.base_model == "fasterrcnn_mobilenet_v2_fpn"
        assert card.parent is None
        assert card.notes == []
    finally:
        page.evaluate(
            "async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }"
        )
