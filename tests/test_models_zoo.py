"""The base-model zoo: every model builds, predicts and trains on tiny inputs (random init),
and the pretrained path loads through torchvision's hub cache then replaces only the heads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from annowidget.models import catalog
from annowidget.models.zoo import (
    BASE_MODELS,
    TASKS,
    build_model,
    build_pretrained,
    default_base_model,
    list_base_models,
    model_task,
)

SIZE = 64


# an empty hub cache, offline, one thread, a fixed seed (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("isolated_hub")


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _image() -> torch.Tensor:
    return torch.rand(3, SIZE, SIZE)


def _target(task: str, num_keypoints: int) -> dict[str, torch.Tensor]:
    target = {"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([2])}
    if task == "instance_segmentation":
        masks = torch.zeros(1, SIZE, SIZE, dtype=torch.uint8)
        masks[0, 6:50, 5:40] = 1
        target["masks"] = masks
    if task == "keypoints":
        points = torch.linspace(8, 38, num_keypoints)
        target["keypoints"] = torch.stack(
            [points, points + 4, torch.ones(num_keypoints)], dim=1
        ).unsqueeze(0)
    return target


def _train_step(model: nn.Module, task: str, num_keypoints: int) -> dict[str, torch.Tensor]:
    model.train()
    # two images: SSDlite's extra blocks and DeepLab's ASPP pooling run BatchNorm on 1x1 maps
    images = [_image(), _image()]
    if task == "semantic_segmentation":
        logits = model(torch.stack(images))["out"]
        labels = torch.randint(0, 3, (2, SIZE, SIZE))
        losses = {"loss_ce": nn.functional.cross_entropy(logits, labels)}
    else:
        target = _target(task, num_keypoints)
        losses = model(images, [target, target])
    total = sum(losses.values())
    total.backward()
    return losses


def test_catalog_covers_every_task_with_a_torchvision_and_an_offline_model() -> None:
    assert TASKS == ("detection", "instance_segmentation", "keypoints", "semantic_segmentation")
    for task in TASKS:
        models = list_base_models(task)
        assert {m.task for m in models} == {task}
        assert any(m.offline for m in models), task
        assert any(not m.offline for m in models), task
    assert len(list_base_models()) == len(BASE_MODELS) == 14


def test_base_model_fields_come_from_torchvision_weights_enums() -> None:
    frcnn = BASE_MODELS["fasterrcnn_resnet50_fpn_v2"]
    assert frcnn.weights_file == "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"
    assert frcnn.weights_url.endswith("/" + frcnn.weights_file)
    assert frcnn.coco_categories[:2] == ("__background__", "person")
    assert len(frcnn.coco_categories) == 91
    assert BASE_MODELS["keypointrcnn_resnet50_fpn"].coco_categories == ("no person", "person")
    offline = BASE_MODELS["fasterrcnn_mobilenet_v2_fpn"]
    assert offline.offline
    assert offline.weights_file == "mobilenet_v2-b0353104.pth"
    assert offline.coco_categories == ()
    assert model_task("maskrcnn_mobilenet_v2_fpn") == "instance_segmentation"
    with pytest.raises(KeyError, match="unknown base model 'yolo'"):
        model_task("yolo")
    with pytest.raises(ValueError, match="unknown task"):
        list_base_models("panoptic")


@pytest.mark.parametrize("name", list(BASE_MODELS))
def test_every_base_model_builds_and_predicts_on_a_tiny_image(name: str) -> None:
    task = BASE_MODELS[name].task
    model = build_model(
        name, 3, pretrained=False, num_keypoints=4, min_size=SIZE, max_size=SIZE
    ).eval()
    if task == "semantic_segmentation":
        with torch.inference_mode():
            out = model(_image()[None])["out"]
        assert out.shape == (1, 3, SIZE, SIZE)
        return
    if hasattr(model, "roi_heads"):
        model.roi_heads.detections_per_img = 10  # random heads: keep mask/keypoint work small
    assert model.transform.min_size == (SIZE,)
    with torch.inference_mode():
        (out,) = model([_image()])
    assert out["boxes"].shape[1] == 4
    assert len(out["boxes"]) == len(out["scores"]) == len(out["labels"])
    assert bool((out["labels"] >= 1).all() and (out["labels"] < 3).all())
    if task == "instance_segmentation":
        assert out["masks"].shape[1:] == (1, SIZE, SIZE)
    if task == "keypoints":
        assert out["keypoints"].shape[1:] == (4, 3)


# The heavy ResNet-50 models are covered by the eval test above; a train step on each would
# cost several seconds on 2 cores. The mobile ones and the offline family are trained here.
TRAINED_IN_TESTS = [
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "ssdlite320_mobilenet_v3_large",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
    "fasterrcnn_mobilenet_v2_fpn",
    "maskrcnn_mobilenet_v2_fpn",
    "keypointrcnn_mobilenet_v2_fpn",
    "lraspp_mobilenet_v2",
]


@pytest.mark.parametrize("name", TRAINED_IN_TESTS)
def test_base_models_train_one_step_with_finite_losses(name: str) -> None:
    task = BASE_MODELS[name].task
    model = build_model(name, 3, pretrained=False, num_keypoints=3, min_size=SIZE, max_size=SIZE)
    losses = _train_step(model, task, 3)
    assert losses
    assert all(torch.isfinite(v).item() for v in losses.values()), losses
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads, "no parameter received a gradient"


def test_rois_per_image_and_trainable_layers_reach_the_model() -> None:
    model = build_model("fasterrcnn_mobilenet_v2_fpn", 2, pretrained=False, rois_per_image=64)
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 64
    keypoints = build_model("keypointrcnn_mobilenet_v2_fpn", 2, pretrained=False, num_keypoints=5)
    assert keypoints.roi_heads.keypoint_predictor.kps_score_lowres.out_channels == 5
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        build_model("fasterrcnn_mobilenet_v2_fpn", 1, pretrained=False)


def test_frozen_batchnorm_follows_torchvision_and_can_be_switched() -> None:
    def norms(model: nn.Module) -> set[type]:
        kinds = (nn.BatchNorm2d, FrozenBatchNorm2d)
        return {type(m) for m in model.backbone.body.modules() if isinstance(m, kinds)}

    # torchvision freezes the backbone's norms of these when pretrained: keep that at random init
    assert norms(build_model("fcos_resnet50_fpn", 2, pretrained=False)) == {FrozenBatchNorm2d}
    assert norms(build_model("fasterrcnn_resnet50_fpn_v2", 2, pretrained=False)) == {nn.BatchNorm2d}
    scratch = build_model(
        "fasterrcnn_mobilenet_v2_fpn", 2, pretrained=False, frozen_batchnorm=False
    )
    assert norms(scratch) == {nn.BatchNorm2d}


def test_ssdlite_min_size_sets_its_fixed_square() -> None:
    model = build_model("ssdlite320_mobilenet_v3_large", 2, pretrained=False, min_size=96)
    assert model.transform.fixed_size == (96, 96)
    assert model.transform.min_size == (96,)


# -- the pretrained path, through torchvision's real hub-cache loading ----------------------
# The COCO files cannot be downloaded here, so a cache file with the exact name torchvision
# expects is written from a random model with the COCO head sizes. torchvision loads cached
# files as-is (the hash is only checked on download), strictly, into its own architecture.

SMALL_TORCHVISION = [
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "ssdlite320_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
    "deeplabv3_mobilenet_v3_large",
]


def _fake_coco_cache(name: str) -> dict[str, torch.Tensor]:
    base = BASE_MODELS[name]
    twin = build_model(name, len(base.coco_categories), pretrained=False)
    state = {k: v.clone() for k, v in twin.state_dict().items()}
    _hub_dir().mkdir(parents=True, exist_ok=True)
    torch.save(state, _hub_dir() / base.weights_file)
    return state


@pytest.mark.parametrize("name", SMALL_TORCHVISION)
def test_pretrained_build_keeps_cached_weights_and_replaces_only_the_heads(name: str) -> None:
    coco = _fake_coco_cache(name)
    model = build_model(name, 3, min_size=SIZE)
    state = model.state_dict()
    kept = [k for k in coco if k in state and state[k].shape == coco[k].shape]
    changed = [k for k in coco if k not in state or state[k].shape != coco[k].shape]
    assert changed, "no head was replaced"
    assert all(torch.equal(state[k], coco[k]) for k in kept if "backbone" in k)
    assert sum("backbone" in k for k in kept) > 10
    # heads: the class dimension is now 3 (background + 2)
    if name.startswith("fasterrcnn"):
        assert model.roi_heads.box_predictor.cls_score.out_features == 3
    elif name.startswith("ssdlite"):
        assert model.head.classification_head.num_columns == 3
    else:
        assert model.eval()(torch.rand(1, 3, SIZE, SIZE))["out"].shape[1] == 3
    # a random-init rebuild has exactly the same architecture: saved weights load strictly
    rebuilt = build_model(name, 3, pretrained=False, min_size=SIZE)
    rebuilt.load_state_dict(state)


@pytest.mark.parametrize(
    "name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "lraspp_mobilenet_v3_large"]
)
def test_build_pretrained_returns_the_coco_model_unchanged(name: str) -> None:
    coco = _fake_coco_cache(name)
    model, categories = build_pretrained(name)
    assert categories == list(BASE_MODELS[name].coco_categories)
    assert not model.training
    state = model.state_dict()
    assert state.keys() == coco.keys()
    assert all(torch.equal(state[k], coco[k]) for k in coco)


def test_default_base_model_prefers_cached_coco_weights_else_offline() -> None:
    assert default_base_model("detection") == "fasterrcnn_mobilenet_v2_fpn"
    assert default_base_model("semantic_segmentation") == "lraspp_mobilenet_v2"
    _hub_dir().mkdir(parents=True)
    (_hub_dir() / BASE_MODELS["fasterrcnn_mobilenet_v3_large_fpn"].weights_file).write_bytes(b"x")
    assert default_base_model("detection") == "fasterrcnn_mobilenet_v3_large_fpn"
    assert default_base_model("keypoints") == "keypointrcnn_mobilenet_v2_fpn"
    assert catalog.OFFLINE_FOR_TASK["keypoints"] == "keypointrcnn_mobilenet_v2_fpn"


def test_zero_trainable_layers_freezes_the_offline_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from annowidget.models.weights import seed_offline_weights

    seed_offline_weights()
    frozen = build_model(
        "fasterrcnn_mobilenet_v2_fpn", 2, pretrained=True, trainable_backbone_layers=0
    )
    body = frozen.backbone.body
    assert not any(p.requires_grad for p in body.parameters())
    assert all(p.requires_grad for p in frozen.roi_heads.parameters())


def test_every_torchvision_base_model_is_in_torchvisions_registry() -> None:
    """The zoo builds by name through torchvision.models.get_model: no table of its own."""
    from torchvision.models import list_models

    registered = set(list_models())
    online = [m.name for m in list_base_models() if not m.offline]
    assert len(online) == 10
    assert set(online) <= registered
