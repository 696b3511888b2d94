"""The three notebooks, executed top to bottom in a real kernel (nbclient) with small settings
(``ANNOWIDGET_NOTEBOOK_SMOKE=1``: tiny images, one epoch). After the last cell, a check cell
added here asserts that no training or prediction thread outlived the notebook."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"

THREADS_JOINED = """
import threading, time
import ipywidgets
# Training threads must be joined by now; the category watcher lives while widgets are
# open, so close them and give it one watch period to notice.
ipywidgets.Widget.close_all()
time.sleep(2.5)
alive = [t.name for t in threading.enumerate() if t.name.startswith("annowidget-")]
assert not alive, f"threads still running after the notebook: {alive}"
print("no annowidget thread left")
"""


def _execute(name: str, tmp_path: Path, monkeypatch, **env: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(THREADS_JOINED))
    monkeypatch.setenv("ANNOWIDGET_NOTEBOOK_SMOKE", "1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # the kernel inherits this process's environment: one thread each for torch's pools
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return notebook


def _text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output["text"])
            elif "data" in output:
                parts.append(str(output["data"].get("text/plain", "")))
    return "\n".join(parts)


def _stderr(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        output["text"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stderr"
    )


def test_quickstart_runs_the_whole_loop(tmp_path, monkeypatch):
    sample = tmp_path / "sample"
    notebook = _execute("01_quickstart.ipynb", tmp_path, monkeypatch, ANNOWIDGET_SAMPLE=str(sample))
    text = _text(notebook)
    assert "finished - trained 1 epoch" in text
    assert "boxes on 10 images" in text
    assert "'reviewed': 40" in text  # every unlabeled image corrected
    assert "model-1: trained on ['train'], test AP50" in text
    assert "model-2: trained on ['train'], test AP50" in text
    assert "on 6 test images" in text  # AP and AP50 come with the test-set size
    assert "model-1 -> model-2 on folder 'test' (6 images" in text
    assert "95% interval" in text  # and say whether the difference is within noise
    assert "<span" not in text  # text, not the panel's HTML
    assert "Labeling cost per round (reviewed images; browsing is not labeling):" in text
    assert "model-1: 10 image(s)" in text  # the corrected images, nothing browsed
    assert "no annowidget thread left" in text
    assert "Traceback" not in _stderr(notebook)
    assert (sample / "models" / "model-2" / "weights.safetensors").is_file()


def test_quickstart_works_without_the_make_variable(tmp_path, monkeypatch):
    # Only the setup cell: the default project location is used and created.
    monkeypatch.delenv("ANNOWIDGET_SAMPLE", raising=False)
    monkeypatch.delenv("ANNOWIDGET_NOTEBOOK_SMOKE", raising=False)
    notebook = nbformat.read(NOTEBOOKS / "01_quickstart.ipynb", as_version=4)
    notebook.cells = notebook.cells[:4]
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    assert (tmp_path / "annowidget-sample" / "project.sqlite").is_file()
    assert "LabelingApp" in _text(notebook)


def test_transfer_learning_workshop_compares_three_variants(tmp_path, monkeypatch):
    notebook = _execute("02_transfer_learning_workshop.ipynb", tmp_path, monkeypatch)
    text = _text(notebook)
    for variant in ("fine-tuned", "frozen", "from scratch"):
        assert f"{variant}: AP50" in text
    figures = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "application/vnd.plotly.v1+json" in output.get("data", {})
    ]
    assert len(figures) == 3
    assert "no annowidget thread left" in text


def test_bootstrap_notebook_exports_a_coco_dataset(tmp_path, monkeypatch):
    work = tmp_path / "bootstrap"
    notebook = _execute(
        "03_bootstrap_dataset.ipynb", tmp_path, monkeypatch, ANNOWIDGET_BOOTSTRAP_DIR=str(work)
    )
    text = _text(notebook)
    assert "40 images added" in text
    assert "bootstrap-1: pre-labeled" in text
    assert "bootstrap-2: pre-labeled" in text
    assert "no annowidget thread left" in text
    coco = json.loads((work / "raccoons.coco.json").read_text())
    # round 0 (8) + test (6) + two corrected rounds of 4
    assert len(coco["images"]) == 22
    assert {c["name"] for c in coco["categories"]} == {"raccoon"}
    assert all("score" not in a for a in coco["annotations"])


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebooks_are_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    assert os.path.getsize(NOTEBOOKS / name) < 60_000
