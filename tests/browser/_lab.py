"""A real JupyterLab server and Debian's Chromium, for end-to-end tests and benchmarks.

The server runs from this virtual environment with its own config, data and runtime
directories (so nothing of the user's Jupyter setup leaks in), while the venv's lab
extensions (jupyterlab_widgets, anywidget) are still found through ``sys.prefix``.
Chromium is ``/usr/bin/chromium`` driven by Playwright; no browser is ever downloaded.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ANNOTATOR = ".aw-annotator"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterLab:
    """``jupyter lab`` on a free port with a token, serving ``root``; a context manager.

    Example:
        >>> # with JupyterLab(tmp_path) as lab: page.goto(lab.url("a.ipynb"))
    """

    def __init__(self, root: Path, *, python: str = sys.executable) -> None:
        self.root = Path(root)
        self.python = python
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.root.parent / f"jupyter-{self.port}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str, ui: str = "lab") -> str:
        """The notebook's page in JupyterLab (``ui="lab"``) or Notebook 7 (``"notebook"``)."""
        prefix = "lab/tree" if ui == "lab" else "notebooks"
        return f"{self.base}/{prefix}/{notebook}?token={self.token}"

    def _env(self) -> dict[str, str]:
        home = self.root.parent / "jupyter-home"
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_DATA_DIR=str(home / "data"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            IPYTHONDIR=str(home / "ipython"),
            JUPYTER_PLATFORM_DIRS="1",
            PATH=f"{Path(self.python).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        labconfig = home / "config" / "labconfig"
        labconfig.mkdir(parents=True, exist_ok=True)
        # no "get Jupyter news?" toast over the screenshots
        news = "@jupyterlab/apputils-extension:announcements"
        (labconfig / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {news: True}})
        )
        # save widget state into the notebook, as a user who turned it on would: the
        # tests check that it stays small
        settings = home / "config" / "lab" / "user-settings" / "@jupyter-widgets"
        settings = settings / "jupyterlab-manager"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
        return env

    def start(self, timeout: float = 90.0) -> JupyterLab:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            self.python,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.workspaces_dir={self.root.parent / 'workspaces'}",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",  # Notebook 7, same server
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            command.append("--allow-root")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=self._env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(
                    f"{self.base}/api/status?token={self.token}", timeout=2
                ) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells on the venv's python3 kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    nbformat.write(nb, path)
    return path


def launch_chromium(playwright: Any, **kwargs: Any) -> Any:
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, **kwargs
    )


def open_and_run(
    page: Any, lab: JupyterLab, notebook: str, *, ui: str = "lab", timeout_ms: int = 120_000
) -> Any:
    """Open ``notebook`` (JupyterLab or Notebook 7), run all cells, wait for the drawn image."""
    page.goto(lab.url(notebook, ui))
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=timeout_ms,
    )
    page.evaluate(
        """async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.context.ready;
            await panel.sessionContext.ready;
            await window.jupyterapp.commands.execute("notebook:run-all-cells");
        }"""
    )
    wait_drawn(page, timeout_ms=timeout_ms)
    return page.locator(ANNOTATOR).first


def wait_drawn(page: Any, *, image_id: int | None = None, timeout_ms: int = 60_000) -> None:
    """Wait until the Annotator shows an image (``image_id`` if given) drawn on its canvas."""
    page.wait_for_function(
        """(id) => {
            const root = document.querySelector('.aw-annotator');
            if (!root || !root.__annotator) return false;
            const { editor, renderer } = root.__annotator;
            if (!editor.image || (id !== null && editor.image.id !== id)) return false;
            return renderer._drawnImage === editor.image.id;
        }""",
        arg=image_id,
        timeout=timeout_ms,
    )


def view(page: Any) -> dict[str, Any]:
    """The Annotator's view (scale, offsets), canvas rect and state, read from the page."""
    return page.evaluate(
        """() => {
            const root = document.querySelector('.aw-annotator');
            const { editor, renderer } = root.__annotator;
            const rect = root.querySelector('canvas').getBoundingClientRect();
            return {
                scale: editor.view.scale, ox: editor.view.ox, oy: editor.view.oy,
                left: rect.left, top: rect.top, width: rect.width, height: rect.height,
                backingWidth: renderer.canvas.width, dpr: renderer.dpr,
                image: editor.image, selected: editor.selectedId,
                boxes: editor.boxes,
            };
        }"""
    )


def to_page(v: dict[str, Any], x: float, y: float) -> tuple[float, float]:
    """Image pixel -> page coordinates for the mouse."""
    return (v["left"] + v["ox"] + x * v["scale"], v["top"] + v["oy"] + y * v["scale"])


def to_image(v: dict[str, Any], px: float, py: float) -> tuple[float, float]:
    """Page coordinates -> image pixel, the front end's own mapping."""
    return ((px - v["left"] - v["ox"]) / v["scale"], (py - v["top"] - v["oy"]) / v["scale"])


def drag(page: Any, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def wait_until(condition: Any, *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``condition()`` every 0.25 s until it is truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def tab(page: Any, title: str) -> None:
    """Click the visible tab titled ``title`` (the LabelingApp's Label/Review/Train/...)."""
    page.locator(".lm-TabBar-tab:visible", has_text=title).first.click()


def button(page: Any, text: str) -> Any:
    """The first visible ipywidgets button whose whole text is ``text``."""
    # exact text: the auto-train bar's "Stop rounds" must not be taken for the Train tab's Stop
    exact = re.compile(rf"^\s*{re.escape(text)}\s*$")
    return page.locator("button.widget-button:visible", has_text=exact).first


def visible_text(page: Any, selector: str) -> str:
    """The inner text of every visible element matching ``selector``, joined by spaces."""
    return " ".join(page.locator(f"{selector}:visible").all_inner_texts())


def loss_trace(page: Any) -> dict[str, list[Any]]:
    """The Train tab's "loss" trace as drawn in the page: ``{"x": steps, "y": losses}``.

    Read from the visible plotly figure's own data; a NaN or infinite loss comes back as
    ``None``. Empty lists while there is no figure or no point yet.
    """
    return page.evaluate(
        """() => {
            const plot = [...document.querySelectorAll('.js-plotly-plot')]
                .find((p) => p.offsetParent !== null);
            const loss = plot && plot.data ? plot.data.find((t) => t.name === 'loss') : null;
            if (!loss || !loss.x) return { x: [], y: [] };
            const finite = (v) => (Number.isFinite(v) ? v : null);
            return { x: Array.from(loss.x, finite), y: Array.from(loss.y || [], finite) };
        }"""
    )
