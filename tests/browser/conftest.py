"""Fixtures for the end-to-end tests: a real JupyterLab server and Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lab import CHROMIUM, JupyterLab, launch_chromium

OUTPUT = Path(__file__).parents[2] / "test-output"


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[JupyterLab]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium")
    root = tmp_path_factory.mktemp("lab") / "root"
    with JupyterLab(root) as server:
        yield server


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium")
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, lab) -> Iterator[Any]:
    # JupyterLab would reopen the last test's notebooks from its saved workspace (their
    # widgets rendered from saved state, first in the page): each test starts with none
    for saved in (lab.root.parent / "workspaces").glob("*.jupyterlab-workspace"):
        saved.unlink()
    # devicePixelRatio 2: the canvas must stay crisp (backing store sized by DPR)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=2)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshots(request) -> Any:
    """``shot(name)`` saves a screenshot under test-output/ for a person to look at."""
    OUTPUT.mkdir(exist_ok=True)

    def shot(page: Any, name: str) -> Path:
        path = OUTPUT / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path))
        return path

    return shot
