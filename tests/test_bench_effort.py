"""The simulated-annotator benchmark still runs, in each mode, and its rounds compound.

A tiny campaign per mode (a few raccoon images, 128 px, a dozen image-steps): not figures
worth quoting, but the script's own check that the effort meter reads back the modelled
seconds runs on real photos through the store, and a warm round starts from the round
before it with a shorter fine-tune.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DATA = ROOT.parent / "shared" / "data"
TINY = ["--per-round", "5", "--image-size", "128", "--threads", "1"]


def _campaign(tmp_path: Path, *arguments: str) -> dict:
    out = tmp_path / "figures.json"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch_home"), "ANNOWIDGET_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_effort.py"),
            *TINY,
            *arguments,
            "--data",
            str(DATA),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "meter check: the action log's seconds equal the modelled ones" in done.stdout
    return json.loads(out.read_text())


@pytest.mark.skipif(not (DATA / "raccoon").is_dir(), reason=f"no real data in {DATA}")
def test_warm_rounds_start_from_the_last_model_with_a_shorter_fine_tune(tmp_path: Path) -> None:
    figures = _campaign(
        tmp_path, "--mode", "warm", "--steps-per-round", "24", "--warm-steps", "12",
        "--max-epochs", "4", "--rounds", "3",
    )  # fmt: skip
    first, second, third = figures["rounds"]
    assert first["model"] is None  # round 1 is drawn by hand
    assert first["ratio"] == pytest.approx(1.0)
    assert third["base"] == second["model"]  # round 3's model grew from round 2's
    assert third["fine_tune_image_steps"] < second["fine_tune_image_steps"]
    assert all(r["images"] == 5 for r in figures["rounds"])


@pytest.mark.skipif(not (DATA / "raccoon").is_dir(), reason=f"no real data in {DATA}")
def test_continuous_mode_runs_a_round_every_k_reviews(tmp_path: Path) -> None:
    figures = _campaign(
        tmp_path, "--mode", "continuous", "--every", "5", "--budget", "10", "--rounds", "2"
    )
    assert [r["model"] is not None for r in figures["rounds"]] == [False, True]
    assert figures["rounds"][1]["images"] == 5
