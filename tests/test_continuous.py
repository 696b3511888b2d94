"""Continuous mode on the bundled raccoon sample with a real (tiny) torchvision model:
reviewing K images starts a round that makes a new model and re-predicts the untouched
images; the image being edited and images people touched keep what they have."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import annowidget
from annowidget.models import ModelRegistry
from annowidget.sample import sample_annotations
from annowidget.store import Annotation, Project
from annowidget.train import Hyperparameters, Trainer
from annowidget.train.continuous import ContinuousTrainer, LoopState

BASE = "ssdlite320_mobilenet_v3_large"  # 2M parameters: a round takes seconds
EVERY = 3
SOURCE = "model:{}"


def _hp() -> Hyperparameters:
    return Hyperparameters(
        epochs=1,
        batch_size=8,
        image_size=128,
        rois_per_image=32,
        learning_rate=0.01,
        num_threads=1,
        device="cpu",
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """24 train and 6 test images of raccoons with their boxes, 10 unlabeled."""
    return annowidget.sample_project(tmp_path / "sample")


def _loop(project: Project, **kwargs: object) -> ContinuousTrainer:
    values: dict[str, object] = {
        "every": EVERY,
        "budget": 24,  # one epoch of the 24 train images
        "base_model": BASE,
        "pretrained": False,
        "hyperparameters": _hp(),
        "threshold": 0.05,
    }
    values.update(kwargs)
    return ContinuousTrainer(project, **values)  # type: ignore[arg-type]


def _review(project: Project, image_id: int) -> None:
    """What a person does in the Annotator: reject the pre-labels, draw the true boxes."""
    truth = sample_annotations()
    image = project.image(image_id)
    coco_id = next(e["id"] for e in truth["images"] if e["file_name"] == image.path)
    raccoon = project.category("raccoon").id
    for prediction in project.annotations(image_id, predictions=True):
        project.delete_annotation(prediction.id)
    for box in (a for a in truth["annotations"] if a["image_id"] == coco_id):
        project.add_annotation(image_id, raccoon, box["bbox"], duration=2.0)
    project.set_status(image_id, "reviewed")


def _predicted_by(project: Project, image_id: int) -> list[str]:
    """The sources of the prediction runs written to an image, in order."""
    return [
        a.payload["source"] for a in project.actions(image_id=image_id) if a.action == "predict"
    ]


def _rows(project: Project, image_id: int) -> list[Annotation]:
    return project.annotations(image_id)


def test_reviewing_k_images_starts_a_round_that_repredicts_only_untouched_images(
    project: Project,
) -> None:
    unlabeled = [i.id for i in project.images(folder="unlabeled")]
    editing: list[int | None] = [None]
    loop = _loop(project, editing=lambda: editing[0])

    # No model yet: the 24 reviewed train images are all new to it (test images never count).
    assert loop.state.reviews == 24
    first = loop.step()
    assert first is not None
    assert first.model == "auto-1"
    assert first.status == "finished"
    assert first.images == 24
    assert first.epochs == 1
    assert first.ap50 is not None
    assert first.predicted == len(unlabeled)
    assert first.base == BASE  # no trained model yet: the given base
    assert ModelRegistry(project).card("auto-1").parent is None
    assert all(_predicted_by(project, i) == [SOURCE.format("auto-1")] for i in unlabeled)
    assert loop.state == LoopState(
        phase="idle",
        round=1,
        ap50=first.ap50,
        reviews=0,
        every=EVERY,
        model="auto-1",
        message="round 1: finished",
    )

    reviewed, half_done, open_one, untouched = (
        unlabeled[:EVERY],
        unlabeled[EVERY],
        unlabeled[EVERY + 1],
        unlabeled[EVERY + 2 :],
    )
    for count, image_id in enumerate(reviewed[:-1], start=1):
        _review(project, image_id)
        assert loop.state.until_next == EVERY - count
        assert loop.step() is None  # not due yet
    # Someone started on this one (one box drawn, pre-labels still pending) and moved on ...
    raccoon = project.category("raccoon").id
    project.add_annotation(half_done, raccoon, [5.0, 5.0, 40.0, 40.0])
    # ... and this one is open in the Annotator, not edited yet.
    editing[0] = open_one
    kept = {i: _rows(project, i) for i in (half_done, open_one, *reviewed[:-1])}
    _review(project, reviewed[-1])
    kept[reviewed[-1]] = _rows(project, reviewed[-1])
    assert loop.state.reviews == EVERY
    assert project.image(half_done).status == "predicted"  # not reviewed: not counted

    second = loop.step()
    assert second is not None
    assert second.model == "auto-2"
    assert second.status == "finished"
    assert second.images == 24 + EVERY  # the reviewed unlabeled images trained too
    assert second.predicted == len(untouched)
    assert second.kept == [open_one]
    card = ModelRegistry(project).card("auto-2")
    assert card.train_folders == ["train", "unlabeled"]
    # a warm start: round 2 began from round 1's weights, and its card says so
    assert second.base == "auto-1"
    assert card.parent == "auto-1"
    assert card.base_model == BASE
    assert any(note.startswith("started from model auto-1") for note in card.notes)
    for image_id in untouched:
        assert _predicted_by(project, image_id) == [SOURCE.format(m) for m in ("auto-1", "auto-2")]
        assert all(a.source == SOURCE.format("auto-2") for a in _rows(project, image_id))
    for image_id, rows in kept.items():  # not a row changed, not a prediction swapped
        assert _rows(project, image_id) == rows
        assert SOURCE.format("auto-2") not in _predicted_by(project, image_id)
    assert loop.state.round == 2
    assert loop.state.reviews == 0
    assert [r.model for r in loop.reports] == ["auto-1", "auto-2"]


def test_a_model_trained_before_the_loop_is_where_it_starts_from(project: Project) -> None:
    Trainer(project, "m1", base_model=BASE, pretrained=False, hyperparameters=_hp()).run()
    loop = _loop(project)
    # the reviewed images predate m1: none counts, and m1 is the current model
    assert loop.state.model == "m1"
    assert loop.state.round == 0
    assert loop.state.reviews == 0
    for image in project.images(folder="unlabeled")[:EVERY]:
        _review(project, image.id)
    report = loop.step()
    assert report is not None
    assert (report.model, report.base, report.status) == ("auto-1", "m1", "finished")
    assert ModelRegistry(project).card("auto-1").parent == "m1"


def test_an_image_opened_while_the_round_predicts_is_left_alone(project: Project) -> None:
    unlabeled = [i.id for i in project.images(folder="unlabeled")]
    opened_later = unlabeled[4]
    asked: list[int] = []

    def editing() -> int | None:
        # Nothing open when the round picks its images; then the user opens one.
        asked.append(1)
        return None if len(asked) == 1 else opened_later

    report = _loop(project, editing=editing).run_round()
    assert report.status == "finished"
    assert report.kept == [opened_later]
    assert report.predicted == len(unlabeled) - 1
    assert _predicted_by(project, opened_later) == []
    assert project.image(opened_later).status == "unlabeled"


def test_pause_holds_rounds_and_stop_ends_the_thread(project: Project) -> None:
    loop = _loop(project, poll_seconds=0.05)
    states: list[str] = []
    loop.on_state(lambda state: states.append(state.phase))
    loop.pause()
    loop.start()
    time.sleep(0.5)
    assert loop.due
    assert loop.reports == []
    assert loop.state.phase == "paused"
    loop.resume()
    deadline = time.monotonic() + 120
    while not loop.reports and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [r.status for r in loop.reports] == ["finished"]
    loop.stop()
    assert loop.join(30)
    assert loop.state.phase == "stopped"
    assert states[:3] == ["paused", "watching", "training"]
    assert "predicting" in states


def test_no_round_starts_while_busy(project: Project) -> None:
    busy = [True]  # the Train tab's own run, say
    loop = _loop(project, budget=8, busy=lambda: busy[0])
    assert loop.due
    assert loop.step() is None
    assert ModelRegistry(project).names("detection")[0] != "auto-1"
    busy[0] = False
    report = loop.step()
    assert report is not None
    assert report.model == "auto-1"


def test_bad_settings_are_refused_by_name(project: Project) -> None:
    with pytest.raises(ValueError, match="every must be a positive integer"):
        ContinuousTrainer(project, every=0)
    with pytest.raises(ValueError, match="budget must be a positive integer"):
        ContinuousTrainer(project, budget=-5)
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        ContinuousTrainer(project, threshold=2.0)


def test_cli_loop_runs_one_round_and_exits(project: Project) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    command = [
        sys.executable,
        "-m",
        "annowidget.cli",
        "loop",
        str(project.root),
        "--every",
        str(EVERY),
        "--budget",
        "24",
        "--rounds",
        "1",
        "--base",
        BASE,
        "--scratch",
        "--no-augment",
        "--image-size",
        "128",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--threshold",
        "0.05",
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    rounds = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(r["round"], r["model"], r["status"]) for r in rounds] == [(1, "auto-1", "finished")]
    assert rounds[0]["predicted"] == 10
    assert ModelRegistry(project).card("auto-1").status == "finished"
