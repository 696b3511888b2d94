"""Two processes through torchrun on the CPU (gloo backend), on the bundled raccoon sample
with a random-init SSDlite: DDP trains a loadable model whose loss falls, evaluation gathers
both ranks' predictions, Stop and Ctrl-C stop every rank and keep the last completed epoch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import annowidget
from annowidget.models import ModelCard, ModelRegistry, build_model, load_state_dict
from annowidget.store import Project
from annowidget.train import Hyperparameters
from annowidget.train.events import (
    EpochEvent,
    FailedEvent,
    StepEvent,
    TrainingEvent,
    WarningEvent,
    event_from_dict,
)
from annowidget.train.launch import DistributedTraining, check_layout, torchrun_command
from annowidget.train.scoring import evaluate_model

BASE = "ssdlite320_mobilenet_v3_large"
TIMEOUT = 300  # seconds; two ranks start in a few, an epoch takes a few on a loaded machine


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """24 train and 6 test images of raccoons with their boxes."""
    return annowidget.sample_project(tmp_path / "sample")


def _wait_for(condition, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_two_ranks_train_a_loadable_model_whose_loss_falls_then_stop(project: Project) -> None:
    hp = Hyperparameters(
        epochs=40, batch_size=4, image_size=128, eval_period=1, learning_rate=0.01,
        num_threads=1, device="cpu", workers=0,
    )  # fmt: skip
    run = DistributedTraining(
        project, "ddp", base_model=BASE, pretrained=False, hyperparameters=hp, nproc_per_node=2
    )
    events: list[TrainingEvent] = []
    run.subscribe(events.append)
    run.start()
    try:
        _wait_for(lambda: sum(isinstance(e, EpochEvent) for e in events) >= 2 or not run.running)
        assert run.running, [e for e in events if isinstance(e, FailedEvent)]
        run.stop()
        assert run.join(TIMEOUT)
    finally:
        run.abort()
    assert run.status == "stopped", run.reason
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    kept = run.epoch
    assert 2 <= kept < 40
    assert f"kept epoch {kept} of 40" in run.reason
    assert [e.epoch for e in epochs] == list(range(1, kept + 1))
    assert epochs[-1].loss < epochs[0].loss  # it learns
    steps = [e for e in events if isinstance(e, StepEvent) and e.epoch == 1]
    # each rank trains on half of the 24 images, 4 at a time; rank 0 alone reports
    assert [s.step for s in steps] == [1, 2, 3]
    assert {s.steps_per_epoch for s in steps} == {3}

    card = ModelRegistry(project).card("ddp")
    assert card.status == "stopped"
    assert [c["epoch"] for c in card.checkpoints][-1] == kept
    model = build_model(
        BASE, card.num_classes, pretrained=False, min_size=128, max_size=213,
        frozen_batchnorm=card.model_config["frozen_batchnorm"],
    )  # fmt: skip
    weights = load_state_dict(run.model_dir / "weights.safetensors")
    model.load_state_dict(weights)  # strict: the plain model's keys, no DDP "module." prefix
    checkpoint = load_state_dict(run.model_dir / card.checkpoints[-1]["file"])
    assert all(torch.equal(weights[k], checkpoint[k]) for k in weights)

    # the ranks scored 3 test images each and gathered them: one process scoring all 6
    # with the same weights finds the same AP
    metrics = card.metrics[-1]
    assert (metrics["epoch"], metrics["images"]) == (kept, 6)
    alone = evaluate_model(project, "ddp", "test", device="cpu")
    assert alone["AP"] == pytest.approx(metrics["AP"], abs=0.02)
    assert alone["AR100"] == pytest.approx(metrics["AR100"], abs=0.02)
    assert run.run_dir is not None
    assert not run.run_dir.exists()  # the run's folder is removed once it ended well


def test_ctrl_c_stops_every_rank_and_keeps_the_last_epoch(tmp_path: Path) -> None:
    annowidget.sample_project(tmp_path / "sample").close()
    project_dir = tmp_path / "sample"
    command = [
        sys.executable, "-m", "annowidget.cli", "train", str(project_dir), "--name", "m",
        "--epochs", "200", "--eval-period", "1", "--base", BASE, "--image-size", "128",
        "--batch-size", "8", "--threads", "1", "--device", "cpu", "--scratch",
        "--nproc-per-node", "2", "--workers", "0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = project_dir / "models" / "m" / "checkpoints" / "epoch_0001.safetensors"
    try:
        _wait_for(lambda: first.exists() or process.poll() is not None)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    card = ModelCard.load(project_dir / "models" / "m")
    assert card.status == "stopped"
    kept = card.checkpoints[-1]["epoch"]
    assert 1 <= kept < 200
    assert f"kept epoch {kept} of 200" in out
    assert "stopping after the current step" in err
    assert (project_dir / "models" / "m" / "weights.safetensors").is_file()
    assert card.metrics[-1]["epoch"] == kept


def test_a_run_that_cannot_start_fails_with_the_reason_of_its_ranks(project: Project) -> None:
    # the unlabeled folder has no reviewed image: the ranks find nothing to train on
    hp = Hyperparameters(epochs=1, image_size=128, num_threads=1, device="cpu", workers=0)
    run = DistributedTraining(
        project, "empty", base_model=BASE, pretrained=False, hyperparameters=hp,
        train_folders=["unlabeled"], nproc_per_node=2,
    )  # fmt: skip
    events: list[TrainingEvent] = []
    run.subscribe(events.append)
    try:
        run.start()
        assert run.join(TIMEOUT)
    finally:
        run.abort()
    assert run.status == "failed"
    assert "no reviewed images in folder(s) unlabeled" in run.reason
    assert isinstance(events[-1], FailedEvent)
    assert run.card is None
    assert not ModelRegistry(project).exists("empty")


def test_launch_arguments_are_checked_before_any_process_starts(project: Project) -> None:
    with pytest.raises(ValueError, match="--rdzv-endpoint HOST:PORT is needed with --nnodes 2"):
        check_layout(2, nnodes=2)
    with pytest.raises(ValueError, match="--node-rank must be between 0 and 1, got 2"):
        check_layout(2, nnodes=2, node_rank=2, rdzv_endpoint="10.0.0.1:29400")
    with pytest.raises(ValueError, match="--rdzv-endpoint must be HOST:PORT, got 'node0'"):
        check_layout(1, rdzv_endpoint="node0")
    with pytest.raises(ValueError, match="--nproc-per-node must be a positive whole number"):
        check_layout(0)
    with pytest.raises(ValueError, match="unknown base model 'nope'"):
        DistributedTraining(project, "x", base_model="nope", nproc_per_node=2)
    with pytest.raises(ValueError, match="device mps cannot run several processes"):
        DistributedTraining(project, "x", hyperparameters=Hyperparameters(device="mps"))
    command = torchrun_command(
        "spec.json", nproc_per_node=4, nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29400"
    )
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert "--nnodes=2" in command
    assert "--node-rank=1" in command


def test_events_travel_as_json_and_come_back_equal() -> None:
    sent = [
        StepEvent(1, 2, 3, 0.5, {"loss_classifier": 0.25}, 0.01, 1.5),
        EpochEvent(1, 4, 0.5, {"a": 0.5}, 0.01, 2.0, 12, 3.0),
        WarningEvent("careful"),
        FailedEvent("broken", model_name="m", details={"traceback": "..."}),
    ]
    assert [event_from_dict(json.loads(json.dumps(e.to_dict()))) for e in sent] == sent
    with pytest.raises(ValueError, match="unknown training event kind 'bogus'"):
        event_from_dict({"kind": "bogus"})
