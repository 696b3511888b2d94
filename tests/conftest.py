"""Fixtures shared by the test modules (``tests/browser/conftest.py`` adds the browser ones).

Both conftest files would also be collected for doctests (``--doctest-modules``) under the
one module name ``conftest`` and clash; they hold no doctests, so collection skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# The throwaway PostgreSQL cluster and the two-backend ``backend_db``, from a uniquely named
# module (tests/ is on sys.path: a plain name could clash with another package's module).
from annowidget_postgres_cluster import backend_db, postgres_cluster, postgres_db, postgres_dsn  # noqa: F401

from annowidget.models.weights import OFFLINE_ENV

# paths relative to this folder; pytest still loads both files as conftests
collect_ignore = ["conftest.py", "browser/conftest.py"]


def pytest_configure(config: pytest.Config) -> None:
    """No test may depend on a download (CI has no internet): with ``ANNOWIDGET_OFFLINE=1``
    for the whole run, every build that would fetch torchvision weights raises
    ``MissingWeightsError`` at once, naming the file. Subprocesses, executed notebooks and
    the browser tests' JupyterLab inherit it; the offline base models seed their ImageNet
    backbone from the installed package and never need the network."""
    os.environ[OFFLINE_ENV] = "1"


@pytest.fixture
def isolated_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty torch hub cache, offline mode, one thread and a fixed seed for one test.

    Weights are then only what the test itself puts in the cache, and a missing file fails
    at once instead of trying a download.
    """
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("ANNOWIDGET_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
