"""``annowidget train / evaluate / predict / models`` on the bundled sample project, in
process, plus one real subprocess stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import annowidget
from annowidget.cli import main
from annowidget.models import ModelCard

TINY = [
    "--base", "ssdlite320_mobilenet_v3_large",
    "--image-size", "128",
    "--batch-size", "8",
    "--threads", "1",
    "--device", "cpu",
    "--scratch",
]  # fmt: skip


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    annowidget.sample_project(tmp_path / "sample").close()
    return tmp_path / "sample"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_evaluate_predict_and_list(
    project_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = str(project_dir)
    code, out, _ = _run(
        capsys, "train", project, "--name", "m1", "--epochs", "1", "--lr", "0.01",
        "--gamma", "0.1", "--gamma-epochs", "3", "--eval-period", "1", *TINY, "--json",
    )  # fmt: skip
    assert code == 0
    card = json.loads(out)
    assert (card["status"], card["name"], card["task"]) == ("finished", "m1", "detection")
    assert card["hyperparameters"]["learning_rate"] == 0.01
    assert card["hyperparameters"]["gamma"] == 0.1
    assert card["hyperparameters"]["gamma_epochs"] == 3
    assert card["model_config"]["pretrained"] is False
    assert card["test_folders"] == ["test"]
    trained_ap = card["metrics"][-1]["AP"]

    code, out, _ = _run(capsys, "evaluate", project, "--model", "m1", "--folder", "test", "--json")
    assert code == 0
    metrics = json.loads(out)
    assert metrics["images"] == 6
    assert metrics["AP"] == pytest.approx(trained_ap)  # same weights, same images, same AP
    assert set(metrics) >= {"AP", "AP50", "AP75", "per_class"}
    assert set(metrics["per_class"]) == {"raccoon"}

    code, out, _ = _run(capsys, "evaluate", project, "--model", "m1", "--folder", "test")
    assert code == 0
    assert out.startswith("m1 on test: AP ")
    assert "raccoon: AP " in out

    code, out, _ = _run(
        capsys, "predict", project, "--model", "m1", "--folder", "unlabeled",
        "--threshold", "0.01", "--device", "cpu", "--json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["images"] == 10
    with annowidget.Project.open(project_dir) as opened:
        pending = opened.annotations(predictions=True)
        assert len(pending) == report["predictions"] > 0
        assert {a.source for a in pending} == {"model:m1"}
        assert min(a.score for a in pending) >= 0.01

    code, out, _ = _run(capsys, "models", project, "--json")
    assert code == 0
    rows = json.loads(out)
    assert rows[0]["name"] == "m1"
    assert (rows[0]["kind"], rows[0]["ready"]) == ("trained", True)
    assert rows[0]["card"]["metrics"][-1]["AP"] == trained_ap
    assert any(r["kind"] == "base" for r in rows)

    code, out, _ = _run(capsys, "models", project)
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["trained", "m1"]

    # --delete removes a trained model and frees its name; base models and typos are refused
    code, out, err = _run(capsys, "models", project, "--delete", "ssdlite320_mobilenet_v3_large")
    assert (code, out) == (1, "")
    assert err == (
        "annowidget models: error: 'ssdlite320_mobilenet_v3_large' is a base model and cannot "
        "be deleted\n"
    )
    code, out, err = _run(capsys, "models", project, "--delete", "m2")
    assert code == 1
    assert err.startswith("annowidget models: error: no trained model 'm2' in ")
    code, out, _ = _run(capsys, "models", project, "--delete", "m1")
    assert (code, out) == (0, "deleted model m1\n")
    assert not (project_dir / "models" / "m1").exists()
    code, out, _ = _run(capsys, "models", project, "--json")
    assert "m1" not in {row["name"] for row in json.loads(out)}


def test_invalid_input_is_one_clear_line(
    project_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = str(project_dir)
    code, _, err = _run(capsys, "train", project, "--name", "m", *TINY, "--batch-size", "0")
    assert code == 1
    assert err.strip() == ("annowidget train: error: batch_size must be a positive integer, got 0")
    code, _, err = _run(
        capsys, "train", project, "--name", "m", "--split-ratio", "0.5", "--test-folder", "t"
    )
    assert code == 1
    assert "either --test-folder or --split-ratio" in err
    code, _, err = _run(capsys, "evaluate", project, "--model", "nope", "--folder", "test")
    assert code == 1
    assert "nope" in err
    assert not (project_dir / "models" / "m").exists()


def test_a_failed_run_exits_1_with_its_reason(
    project_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = sorted((project_dir / "images").iterdir())[0]
    broken.write_bytes(b"not a jpeg at all")
    code, out, err = _run(capsys, "train", str(project_dir), "--name", "m", "--epochs", "1", *TINY)
    assert code == 1
    assert "model m: failed" in out
    assert broken.name in err
    assert ModelCard.load(project_dir / "models" / "m").status == "failed"


def _train_until_first_checkpoint(project_dir: Path, **popen: Any) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "annowidget.cli", "train", str(project_dir), "--name", "m",
        "--epochs", "200", "--eval-period", "1", *TINY,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )
    first = project_dir / "models" / "m" / "checkpoints" / "epoch_0001.safetensors"
    deadline = time.monotonic() + 120
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    return process


def _assert_stopped_keeping_the_last_epoch(project_dir: Path, out: str, err: str) -> None:
    card = ModelCard.load(project_dir / "models" / "m")
    assert card.status == "stopped"
    kept = card.checkpoints[-1]["epoch"]
    assert 1 <= kept < 200
    assert f"kept epoch {kept} of 200" in out
    assert "stopping after the current step" in err
    assert (project_dir / "models" / "m" / "weights.safetensors").is_file()
    assert card.metrics[-1]["epoch"] == kept


def _ignore_sigint() -> None:
    # What a non-interactive shell does to a job started with `cmd &`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_stops_training_and_keeps_the_last_epoch(project_dir: Path) -> None:
    # Started with SIGINT ignored, as a background job is: the CLI must still honour Ctrl-C.
    process = _train_until_first_checkpoint(project_dir, preexec_fn=_ignore_sigint)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    _assert_stopped_keeping_the_last_epoch(project_dir, out, err)


def test_sigterm_stops_training_like_ctrl_c(project_dir: Path) -> None:
    process = _train_until_first_checkpoint(project_dir)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM: annowidget train: stopping after the current step" in err
    _assert_stopped_keeping_the_last_epoch(project_dir, out, err)
    # stderr is a pipe here, not a terminal: the run still reports each epoch and evaluation
    epoch_lines = [line for line in err.splitlines() if re.match(r"epoch \d+/200: ", line)]
    assert epoch_lines, err
    assert re.fullmatch(
        r"epoch 1/200: loss \d+\.\d{4}, lr [0-9.e-]+, \d+\.\d s, ETA \d+ (s|min \d\d s|h \d\d min)",
        epoch_lines[0],
    ), epoch_lines[0]
    assert re.search(r"^epoch 1: AP \d\.\d{3}, AP50 ", err, re.MULTILINE), err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threshold", "nan"], "threshold must be between 0 and 1, got nan"),
        (["--threshold", "2"], "threshold must be between 0 and 1, got 2.0"),
        (["--threshold", "-1"], "threshold must be between 0 and 1, got -1.0"),
        (["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
        (["--batch-size", "-3"], "batch_size must be a positive integer, got -3"),
        (["--device", "tpu"], "device must be one of auto, cpu, cuda, mps (or cuda:N), got 'tpu'"),
        (["--folder", "unlabelled"], "--folder unlabelled: no such folder"),
    ],
)
def test_predict_refuses_bad_arguments_before_deleting_anything(
    project_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with annowidget.Project.open(project_dir) as project:
        image = project.images(folder="unlabeled")[0]
        category = project.categories()[0].id
        project.replace_predictions(
            image.id, [{"category_id": category, "bbox": [1, 2, 3, 4], "score": 0.9}], source="x"
        )
    code, out, err = _run(
        capsys, "predict", str(project_dir), "--model", "ssdlite320_mobilenet_v3_large", *argv
    )
    assert code == 1
    assert out == ""
    assert err.startswith(f"annowidget predict: error: {message}")
    assert err.count("\n") == 1
    with annowidget.Project.open(project_dir) as project:
        assert len(project.annotations(predictions=True)) == 1  # still there


def test_progress_off_a_terminal_is_one_line_per_epoch_and_evaluation() -> None:
    import io

    from annowidget.cli.models import _Progress
    from annowidget.train.events import EpochEvent, EvalEvent, StepEvent

    stream = io.StringIO()  # not a TTY, like a log file, CI or nohup
    progress = _Progress(12, stream=stream)
    progress(StepEvent(1, 1, 10, 0.9, {}, 0.005, 1.0))  # steps draw no bar off a terminal
    progress(EpochEvent(1, 12, 0.71234, {}, 0.005, 25.04, 40, 30.0))
    progress(EvalEvent(1, {"AP": 0.25, "AP50": 0.5, "AP75": 0.125, "images": 6}))
    progress(EpochEvent(11, 12, 0.3, {}, 0.00125, 20.0, 40, 3630.0))
    assert stream.getvalue().splitlines() == [
        "epoch 1/12: loss 0.7123, lr 0.005, 25.0 s, ETA 5 min 30 s",
        "epoch 1: AP 0.250, AP50 0.500, AP75 0.125 on 6 images",
        "epoch 11/12: loss 0.3000, lr 0.00125, 20.0 s, ETA 5 min 30 s",
    ]
