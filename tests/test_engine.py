"""The training engine on a real torchvision model and real images; COCO evaluation checked
against predictors whose answers are known (ground truth, shifted, nothing)."""

from __future__ import annotations

import itertools
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from torch import nn
from torch.utils.data import DataLoader

import annowidget
from annowidget.models import build_model
from annowidget.store import Project
from annowidget.train import coco_eval, engine
from annowidget.train.dataset import SnapshotDataset, collate
from annowidget.train.events import StepEvent
from annowidget.train.hyperparameters import Hyperparameters

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The bundled raccoon sample: 24 train and 6 test images with real boxes."""
    return annowidget.sample_project(tmp_path_factory.mktemp("engine") / "sample")


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        2,
        pretrained=False,
        min_size=64,
        max_size=107,
        rois_per_image=32,
    )


def _loader(project: Project, folder: str, *, train: bool, batch_size: int = 4) -> DataLoader:
    ds = SnapshotDataset.from_snapshot(
        project, project.snapshot(folder), image_size=64, train=train
    )
    return DataLoader(ds, batch_size=batch_size, shuffle=train, collate_fn=collate)


class Oracle(nn.Module):
    """Answers with the dataset's own targets (optionally shifted): a model of known quality."""

    def __init__(self, dataset: SnapshotDataset, shift: float = 0.0, empty: bool = False) -> None:
        super().__init__()
        self.targets = [dataset[i][1] for i in range(len(dataset))]
        self.shift = shift
        self.empty = empty
        self.calls = 0

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        outputs = []
        for _ in images:
            target = self.targets[self.calls]
            self.calls += 1
            keep = slice(0, 0) if self.empty else slice(None)
            n = len(target["boxes"][keep])
            out = {
                "boxes": target["boxes"][keep] + self.shift,
                "labels": target["labels"][keep],
                "scores": torch.linspace(1.0, 0.5, n),
            }
            if "masks" in target:
                out["masks"] = target["masks"][keep, None].float()
            if "keypoints" in target:
                out["keypoints"] = target["keypoints"][keep]
            outputs.append(out)
        return outputs


# ------------------------------------------------------------------------------ schedule
def test_optimizer_and_step_schedule_follow_the_hyperparameters() -> None:
    hp = Hyperparameters(learning_rate=0.1, gamma=0.5, gamma_epochs=2, momentum=0.8)
    model = nn.Linear(3, 1)
    model.bias.requires_grad_(False)
    optimizer = engine.make_optimizer(model, hp)
    assert len(optimizer.param_groups[0]["params"]) == 1  # frozen parameters are left out
    assert optimizer.defaults["momentum"] == 0.8
    assert optimizer.defaults["weight_decay"] == 1e-4
    scheduler = engine.make_scheduler(optimizer, hp)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_resolve_device() -> None:
    assert engine.resolve_device("cpu") == CPU
    assert engine.resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available"):
            engine.resolve_device("cuda")


# ------------------------------------------------------------------------------ training
def test_train_one_epoch_warms_up_and_reports_every_step(sample: Project) -> None:
    torch.set_num_threads(1)
    model = _tiny_model()
    optimizer = engine.make_optimizer(model, Hyperparameters(learning_rate=0.01))
    loader = _loader(sample, "train", train=True)
    steps: list[StepEvent] = []
    result = engine.train_one_epoch(model, optimizer, loader, CPU, 1, on_step=steps.append)
    assert result.completed
    assert (result.steps, result.steps_per_epoch, result.images) == (6, 6, 24)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6]
    assert {s.steps_per_epoch for s in steps} == {6}
    assert math.isfinite(result.loss)
    assert result.loss == pytest.approx(sum(s.loss for s in steps) / 6)
    assert set(result.loss_parts) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    lrs = [s.lr for s in steps]
    assert lrs[0] == pytest.approx(0.01 / 1000)
    assert lrs == sorted(lrs)
    assert result.lr == pytest.approx(0.01)  # warm-up over at the end of epoch 1
    assert all(b.elapsed >= a.elapsed for a, b in itertools.pairwise(steps))

    steps.clear()
    engine.train_one_epoch(model, optimizer, loader, CPU, 2, on_step=steps.append)
    assert [s.lr for s in steps] == pytest.approx([0.01] * 6)  # no warm-up after epoch 1


def test_stop_event_ends_the_epoch_early(sample: Project) -> None:
    torch.set_num_threads(1)
    model = _tiny_model()
    optimizer = engine.make_optimizer(model, Hyperparameters(learning_rate=0.01))
    loader = _loader(sample, "train", train=True)
    stop = threading.Event()

    def stop_after_two(event: StepEvent) -> None:
        if event.step == 2:
            stop.set()

    result = engine.train_one_epoch(
        model, optimizer, loader, CPU, 1, on_step=stop_after_two, stop_event=stop
    )
    assert (result.completed, result.steps, result.images) == (False, 2, 8)
    result = engine.train_one_epoch(model, optimizer, loader, CPU, 2, stop_event=stop)
    assert (result.completed, result.steps) == (False, 0)
    assert math.isnan(result.loss)


def test_a_diverging_loss_raises_before_the_update(sample: Project) -> None:
    torch.set_num_threads(1)
    model = _tiny_model()
    hp = Hyperparameters(learning_rate=1e9, warmup_iters=0)
    optimizer = engine.make_optimizer(model, hp)
    loader = _loader(sample, "train", train=True)
    with pytest.raises(engine.NonFiniteLossError, match=r"loss became (nan|inf) at epoch 1"):
        engine.train_one_epoch(model, optimizer, loader, CPU, 1, warmup_iters=0)


# ---------------------------------------------------------------------------- evaluation
def test_perfect_predictions_score_one_and_shifted_ones_less(
    sample: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    test_set = SnapshotDataset.from_snapshot(sample, sample.snapshot("test"), image_size=64)
    metrics = engine.evaluate(Oracle(test_set), test_set, CPU)
    assert metrics["images"] == 6
    assert metrics["iou_type"] == "bbox"
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == metrics["AP75"] == pytest.approx(1.0)
    assert metrics["per_class"] == {"raccoon": pytest.approx(1.0)}
    shifted = engine.evaluate(Oracle(test_set, shift=6.0), test_set, CPU)
    assert 0.0 <= shifted["AP"] < 0.9
    nothing = engine.evaluate(Oracle(test_set, empty=True), test_set, CPU)
    assert nothing["AP"] == nothing["AP50"] == 0.0
    assert nothing["per_class"] == {"raccoon": 0.0}
    assert capsys.readouterr().out == ""  # pycocotools' prints are silenced


def _shapes_project(tmp_path: Path) -> Project:
    images = tmp_path / "images"
    images.mkdir()
    project = Project.create(tmp_path / "project", images_root=images)
    cat = project.add_category("cat")
    dog = project.add_category("dog", keypoints=["nose", "left_eye", "right_eye"])
    for i in range(3):
        array = np.full((90, 120, 3), 40 * i, dtype=np.uint8)
        PILImage.fromarray(array).save(images / f"{i}.png")
        image = project.add_image(images / f"{i}.png", folder="test")
        x = 10 + 10 * i
        polygon = [[x, 10, x + 60, 10, x + 60, 50, x, 50]]
        project.add_annotation(image.id, cat.id, [x, 10, 60, 40], segmentation=polygon)
        keypoints = [x + 5, 60, 2, x + 10, 62, 2, x + 20, 64, 1]
        project.add_annotation(image.id, dog.id, [x, 55, 40, 30], keypoints=keypoints)
    return project


def test_masks_and_keypoints_are_evaluated_in_original_pixels(tmp_path: Path) -> None:
    project = _shapes_project(tmp_path)
    snapshot = project.snapshot("test")
    segm = SnapshotDataset.from_snapshot(
        project, snapshot, image_size=60, task="instance_segmentation"
    )
    metrics = engine.evaluate(Oracle(segm), segm, CPU)
    assert metrics["iou_type"] == "segm"
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP"] > 0.7  # masks upsampled from half size lose a little at high IoU
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)
    assert set(metrics["per_class"]) == {"cat", "dog"}

    points = SnapshotDataset.from_snapshot(project, snapshot, image_size=60, task="keypoints")
    metrics = engine.evaluate(Oracle(points), points, CPU)
    assert metrics["iou_type"] == "keypoints"
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["per_class"]["dog"] == pytest.approx(1.0)
    assert metrics["per_class"]["cat"] is None  # no keypoints on cats: nothing to measure


def test_semantic_segmentation_trains_and_reports_mean_iou(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    project = _shapes_project(tmp_path)
    dataset = SnapshotDataset.from_snapshot(
        project, project.snapshot("test"), image_size=48, task="semantic_segmentation", train=True
    )
    torch.manual_seed(0)
    model = build_model("lraspp_mobilenet_v2", 3, pretrained=False)
    optimizer = engine.make_optimizer(model, Hyperparameters(learning_rate=0.01))
    loader = DataLoader(dataset, batch_size=3, collate_fn=collate)
    result = engine.train_one_epoch(model, optimizer, loader, CPU, 1)
    assert result.completed
    assert set(result.loss_parts) == {"loss_out"}
    test_set = SnapshotDataset.from_snapshot(
        project, project.snapshot("test"), image_size=48, task="semantic_segmentation"
    )
    metrics = engine.evaluate(model, test_set, CPU)
    assert set(metrics) == {"images", "mIoU", "pixel_accuracy", "per_class"}
    assert set(metrics["per_class"]) == {"background", "cat", "dog"}
    assert 0.0 <= metrics["mIoU"] <= 1.0


def test_confusion_matrix_ignores_the_ignore_label() -> None:
    matrix = coco_eval.ConfusionMatrix(3)
    truth = torch.tensor([[0, 1, 1, 2, 255]])
    predicted = torch.tensor([[0, 1, 2, 2, 0]])
    matrix.update(truth, predicted)
    result: dict[str, Any] = matrix.metrics(["bg", "a", "b"])
    assert result["per_class"] == {"bg": 1.0, "a": 0.5, "b": 0.5}
    assert result["mIoU"] == pytest.approx(2 / 3, abs=1e-6)
    assert result["pixel_accuracy"] == 0.75


def test_model_returns_to_training_mode_after_evaluation(sample: Project) -> None:
    test_set = SnapshotDataset.from_snapshot(sample, sample.snapshot("test"), image_size=64)
    model = _tiny_model()
    model.train()
    metrics = engine.evaluate(model, test_set, CPU)
    assert model.training
    assert metrics["AP"] is not None
    assert 0.0 <= metrics["AP"] <= 1.0


def test_a_batch_without_boxes_and_without_proposals_is_no_nan(sample: Project) -> None:
    """Issue 15 item 14: reviewed images without boxes, an RPN that keeps no proposal (here
    forced by its score threshold) and the box head samples nothing: its losses are 0/0.
    That is not a diverging run: those parts are left out, the step goes on."""
    torch.set_num_threads(1)
    model = _tiny_model()
    model.rpn.score_thresh = 1.01  # no proposal survives, as with an untrained RPN
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)}
    images = [torch.rand(3, 64, 80), torch.rand(3, 64, 80)]
    model.train()
    _, parts = engine.compute_loss(model, images, [dict(empty), dict(empty)], "detection")
    assert not all(math.isfinite(float(v.detach())) for v in parts.values())  # the bug, reproduced
    optimizer = engine.make_optimizer(model, Hyperparameters(learning_rate=0.01))
    batches = [(images, [dict(empty), dict(empty)])] * 2
    result = engine.train_one_epoch(model, optimizer, batches, CPU, 1, task="detection")
    assert result.completed
    assert math.isfinite(result.loss)
    assert set(result.loss_parts) <= {"loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_gradient_clipping_caps_the_step(sample: Project) -> None:
    torch.set_num_threads(1)
    loader = _loader(sample, "train", train=False)
    batch = [next(iter(loader))]
    moved = {}
    for clip in (0.0, 1e-6):
        model = _tiny_model()
        before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        hp = Hyperparameters(learning_rate=0.5, momentum=0.0, weight_decay=0.0)
        optimizer = engine.make_optimizer(model, hp)
        engine.train_one_epoch(
            model, optimizer, batch, CPU, 2, task="detection", grad_clip_norm=clip
        )
        after = [p.detach() for p in model.parameters() if p.requires_grad]
        moved[clip] = float(
            torch.cat([(a - b).flatten() for a, b in zip(after, before, strict=True)]).norm()
        )
    assert moved[1e-6] <= 0.5 * 1e-6 * 1.01  # lr * the clipping norm
    assert moved[0.0] > 1e-3
