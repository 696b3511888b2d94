"""Mixed precision: which precision ``auto`` picks where, the refusals that name the device,
and the proof that fp32 on the CPU is the plain float32 step (same weights, bit for bit).
Nothing here needs a GPU: the CUDA choices are made from the compute capability."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

import annowidget
from annowidget.models import build_model
from annowidget.store import Project
from annowidget.train import Hyperparameters, Trainer, engine
from annowidget.train.dataset import SnapshotDataset, collate
from annowidget.train.precision import (
    MixedPrecision,
    autocast_for,
    choose_precision,
    resolve_precision,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The bundled raccoon sample: 24 train and 6 test images with real boxes."""
    return annowidget.sample_project(tmp_path_factory.mktemp("precision") / "sample")


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


def _batches(project: Project) -> DataLoader:
    """Two batches of 4 real training images, no augmentation (the same batches every pass)."""
    dataset = SnapshotDataset.from_snapshot(
        project, project.snapshot("train"), image_size=64, train=True, augment=False
    )
    return DataLoader(Subset(dataset, range(8)), batch_size=4, shuffle=False, collate_fn=collate)


@pytest.mark.parametrize(
    ("setting", "device", "capability", "expected"),
    [
        ("auto", "cuda", (9, 0), "bf16"),  # H100 / H200
        ("auto", "cuda", (8, 0), "bf16"),  # A100
        ("auto", "cuda", (7, 5), "fp32"),  # T4: no native bfloat16
        ("auto", "cpu", None, "fp32"),
        ("auto", "mps", None, "fp32"),
        ("fp32", "cuda", (9, 0), "fp32"),
        ("fp16", "cuda", (7, 0), "fp16"),
        ("bf16", "cuda", (8, 6), "bf16"),
        ("bf16", "cpu", None, "bf16"),
    ],
)
def test_the_precision_a_run_uses(
    setting: str, device: str, capability: tuple[int, int] | None, expected: str
) -> None:
    assert choose_precision(setting, device, capability) == expected


def test_what_a_device_cannot_do_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU: use fp32 or bf16 on cpu"):
        choose_precision("fp16", "cpu")
    with pytest.raises(ValueError, match=r"compute capability 8.0 .*this one is 7.5"):
        choose_precision("bf16", "cuda", (7, 5))
    with pytest.raises(ValueError, match="bf16 is not supported on mps"):
        choose_precision("bf16", "mps")
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        choose_precision("fp64", "cuda", (9, 0))


def test_the_hyperparameter_is_checked_and_kept_in_the_card() -> None:
    hp = Hyperparameters(precision="bf16")
    assert Hyperparameters.from_dict(hp.to_dict()).precision == "bf16"
    assert Hyperparameters().precision == "auto"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        Hyperparameters(precision="half")


def test_a_run_asking_fp16_on_the_cpu_fails_before_it_starts(sample: Project) -> None:
    hp = Hyperparameters(epochs=1, image_size=64, device="cpu", precision="fp16")
    trainer = Trainer(
        sample, "fp16-on-cpu", base_model="ssdlite320_mobilenet_v3_large", hyperparameters=hp
    )
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        trainer.start()
    assert not trainer.registry.exists("fp16-on-cpu")  # nothing registered


def test_fp32_on_the_cpu_is_the_plain_float32_step(sample: Project) -> None:
    """``auto`` on the CPU trains exactly as a bare loop of forward, backward and step."""
    torch.set_num_threads(1)
    amp = resolve_precision("auto", CPU)
    assert (amp.name, amp.dtype, amp.scaler) == ("fp32", None, None)
    ours = _tiny_model()
    bare = copy.deepcopy(ours)
    hp = Hyperparameters(learning_rate=0.01)
    ours_opt, bare_opt = engine.make_optimizer(ours, hp), engine.make_optimizer(bare, hp)
    loader = _batches(sample)
    torch.manual_seed(1)  # the R-CNN heads sample proposals at random: the same draws
    result = engine.train_one_epoch(ours, ours_opt, loader, CPU, 2, precision=amp)
    torch.manual_seed(1)
    bare.train()
    for images, targets in loader:
        loss = sum(bare(images, targets).values())
        bare_opt.zero_grad(set_to_none=True)
        loss.backward()
        bare_opt.step()
    assert result.completed
    for (name, a), b in zip(ours.state_dict().items(), bare.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_bf16_autocast_trains_on_the_cpu_and_keeps_float32_weights(sample: Project) -> None:
    torch.set_num_threads(1)
    model = _tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = engine.make_optimizer(model, Hyperparameters(learning_rate=0.01))
    amp = MixedPrecision("bf16", CPU)
    result = engine.train_one_epoch(model, optimizer, _batches(sample), CPU, 2, precision=amp)
    assert result.completed
    assert math.isfinite(result.loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("roi_heads" in k for k in changed)
    with autocast_for("bf16", CPU)():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_for("auto", CPU)():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_prediction_takes_a_precision(sample: Project, tmp_path: Path) -> None:
    from annowidget.models import ModelCard, predict_images

    torch.set_num_threads(1)
    model = _tiny_model().eval()
    card = ModelCard(
        "tiny", "detection", "fasterrcnn_mobilenet_v3_large_320_fpn", ["raccoon"],
        status="finished", model_config={"num_classes": 2},
    )  # fmt: skip
    ids = [image.id for image in sample.images(folder="unlabeled")][:2]
    fp32 = predict_images(sample, (model, card), image_ids=ids, threshold=0.0)
    bf16 = predict_images(sample, (model, card), image_ids=ids, threshold=0.0, precision="bf16")
    assert fp32.images == bf16.images == 2
    assert fp32.predictions > 0
    assert bf16.predictions > 0
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        predict_images(sample, (model, card), image_ids=ids, precision="fp16")
