"""How a run ends when nobody pressed Stop (issue 15 items 9 and 15): SIGTERM keeps the last
completed epoch although no checkpoint was due; a killed process leaves a model that is shown
as failed (its weights kept) or, when it kept nothing, no model at all, and no temp files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import torch

import annowidget
from annowidget.models import ModelCard, ModelRegistry, load_state_dict
from annowidget.models.runs import run_marker

BASE = "ssdlite320_mobilenet_v3_large"


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _card(name: str, run: dict) -> ModelCard:
    return ModelCard(name, "detection", BASE, ["raccoon"], run=run)


def test_a_dead_run_is_failed_or_gone_and_a_live_one_is_left_alone(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    here = socket.gethostname()
    dead = {"pid": _dead_pid(), "host": here, "heartbeat": datetime.now(UTC).isoformat()}

    # killed before its first epoch: nothing kept -> no model, the name is free, no temp file
    folder = registry.reserve("ghost", _card("ghost", dead))
    (folder / ".weights.safetensors.x1y2.tmp").write_bytes(b"half a file")
    assert not registry.exists("ghost")
    assert not folder.exists()
    registry.reserve("ghost", _card("ghost", run_marker()))  # the name can be taken again

    # killed after an epoch: shown as failed, its weights kept, its temp files removed
    folder = registry.reserve("half", _card("half", dead))
    registry.save_weights("half", {"w": torch.ones(2)})
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / ".epoch_0002.safetensors.ab.tmp").write_bytes(b"x" * 1000)
    entry = next(e for e in registry.list() if e.name == "half")
    assert entry.ready
    assert entry.card is not None
    assert entry.card.status == "failed"
    assert "ended without finishing (killed?)" in entry.card.status_reason
    assert ModelCard.load(folder).status == "failed"
    assert list(folder.rglob("*.tmp")) == []

    # alive: this very process; another host's fresh heartbeat; an old card with no marker
    registry.reserve("live", _card("live", run_marker()))
    fresh = {"pid": 1, "host": "elsewhere", "heartbeat": datetime.now(UTC).isoformat()}
    registry.reserve("remote", _card("remote", fresh))
    registry.reserve("old", _card("old", {}))
    stale = dict(fresh, heartbeat=(datetime.now(UTC) - timedelta(hours=2)).isoformat())
    registry.reserve("remote-dead", _card("remote-dead", stale))
    status = {e.name: e.card.status for e in registry.list() if e.card is not None}
    assert status["live"] == status["remote"] == status["old"] == "training"
    assert "remote-dead" not in status  # it kept nothing


def _train(project: Path, name: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "annowidget.cli", "train", str(project), "--name", name,
        "--base", BASE, "--scratch", "--epochs", "50", "--eval-period", "100",
        "--image-size", "64", "--batch-size", "8", "--threads", "1", "--device", "cpu",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(Path(annowidget.__file__).parents[1]))
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.is_file():
        if process.poll() is not None:
            pytest.fail(f"train exited early: {process.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_sigterm_keeps_the_last_epoch_and_kill_9_leaves_a_failed_model(tmp_path: Path) -> None:
    annowidget.sample_project(tmp_path / "sample").close()
    project = tmp_path / "sample"
    models = project / "models"

    process = _train(project, "term")
    _wait_for(models / "term" / "weights.safetensors", process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=240)
    assert "stopping after the current step" in err
    card = ModelCard.load(models / "term")
    assert card.status == "stopped", (out, err)
    kept = card.checkpoints[-1]["epoch"]
    assert f"kept epoch {kept} of 50" in card.status_reason
    assert card.run == {}
    assert [m["epoch"] for m in card.metrics] == [kept]  # the kept epoch is evaluated

    process = _train(project, "killed")
    _wait_for(models / "killed" / "weights.safetensors", process)
    process.kill()
    process.communicate(timeout=60)
    registry = ModelRegistry(models)
    entry = next(e for e in registry.list() if e.name == "killed")
    assert entry.card is not None
    assert entry.card.status == "failed"
    assert "killed?" in entry.card.status_reason
    model, _ = registry.load("killed")  # the last completed epoch's weights, whole
    weights = load_state_dict(models / "killed" / "weights.safetensors")
    assert model.state_dict().keys() == weights.keys()
    assert list((models / "killed").rglob("*.tmp")) == []
