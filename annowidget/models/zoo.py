"""The base-model zoo: torchvision's detection/segmentation models, heads sized per project.

Architectures come from torchvision's model registry (``torchvision.models.get_model``, by
the catalog's names). ``build_model`` loads pretrained weights through torchvision's own path
(its hub cache) and replaces the class-specific output layers; ``pretrained=False`` gives the
same architecture with random weights (unit tests, the from-scratch baseline, and rebuilding
saved models).
"""

from __future__ import annotations

import urllib.error
from typing import Any

from torch import nn
from torchvision.models import get_model

from annowidget.models import weights as _weights
from annowidget.models._heads import replace_heads
from annowidget.models._norm import freeze_batchnorm, unfreeze_batchnorm
from annowidget.models._offline import build_offline
from annowidget.models.catalog import (
    BASE_MODELS,
    BaseModel,
    base_model,
    list_base_models,
    max_size_for,
    model_task,
    torchvision_weights,
)
from annowidget.models.tasks import TASKS
from annowidget.models.weights import MissingWeightsError, default_base_model

__all__ = [
    "BASE_MODELS",
    "TASKS",
    "BaseModel",
    "build_model",
    "build_pretrained",
    "default_base_model",
    "list_base_models",
    "model_task",
]
# list_base_models, model_task (catalog) and default_base_model (weights) are torch-free:
# re-exported here, the builders' module, where callers have always found them.

# torchvision swaps in FrozenBatchNorm2d for these when (and only when) weights are loaded
_FROZEN_BN_WHEN_PRETRAINED = frozenset(
    {
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        "fasterrcnn_mobilenet_v3_large_fpn",
        "fcos_resnet50_fpn",
        "keypointrcnn_resnet50_fpn",
    }
)
_RCNN = frozenset(
    {
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        "fasterrcnn_mobilenet_v3_large_fpn",
        "fasterrcnn_resnet50_fpn_v2",
        "maskrcnn_resnet50_fpn_v2",
        "keypointrcnn_resnet50_fpn",
        "fasterrcnn_mobilenet_v2_fpn",
        "maskrcnn_mobilenet_v2_fpn",
        "keypointrcnn_mobilenet_v2_fpn",
    }
)
_DOWNLOAD_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)


def _load_torchvision(name: str, **kwargs: Any) -> nn.Module:
    """Call torchvision's builder with its COCO weights, turning download failures into
    :class:`MissingWeightsError`."""
    _weights.require_weights(name)
    try:
        return get_model(name, weights=torchvision_weights(name), progress=False, **kwargs)
    except MissingWeightsError:
        raise
    except _DOWNLOAD_ERRORS as exc:
        raise _weights.missing_weights_error(name, exc) from exc
    except RuntimeError as exc:
        if "hash" not in str(exc).lower():
            raise
        # torch.hub refuses a file whose sha256 does not match its name: a corrupt download
        raise _weights.missing_weights_error(name, exc) from exc


def _set_min_size(model: nn.Module, min_size: int | None, max_size: int | None) -> None:
    transform = getattr(model, "transform", None)
    if transform is None:
        return
    if min_size is not None:
        transform.min_size = (int(min_size),)
    if max_size is not None:
        transform.max_size = int(max_size)
    if getattr(transform, "fixed_size", None) is not None and min_size is not None:
        # SSD resizes every image to a fixed square
        side = int(min_size)
        transform.fixed_size = (side, side)
        transform.max_size = side


def _norm_layers(model: nn.Module, frozen: bool | None) -> None:
    if frozen is None:
        return
    backbone = getattr(model, "backbone", model)
    target = getattr(backbone, "body", backbone)
    if frozen:
        freeze_batchnorm(target)
    else:
        unfreeze_batchnorm(target)


def build_model(
    name: str,
    num_classes: int,
    *,
    pretrained: bool = True,
    num_keypoints: int | None = None,
    rois_per_image: int = 512,
    min_size: int | None = None,
    max_size: int | None = None,
    trainable_backbone_layers: int | None = None,
    frozen_batchnorm: bool | None = None,
) -> nn.Module:
    """Build base model ``name`` with output layers for ``num_classes`` (background included).

    With ``pretrained=True`` torchvision's weights are loaded from its hub cache (downloaded
    if missing and possible, else :class:`MissingWeightsError`), then the class-specific
    layers are replaced. ``pretrained=False`` gives the same architecture, randomly
    initialised. ``frozen_batchnorm=None`` keeps torchvision's choice for the pretrained
    model (so saved weights load into a ``pretrained=False`` rebuild); ``False`` makes the
    backbone's norms trainable (the from-scratch baseline), ``True`` freezes them.

    Example:
        >>> m = build_model("fasterrcnn_mobilenet_v2_fpn", 3, pretrained=False, min_size=64)
        >>> m.roi_heads.box_predictor.cls_score.out_features
        3
    """
    base = base_model(name)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (background + 1), got {num_classes}")
    if base.task == "keypoints" and num_keypoints is None:
        num_keypoints = 17
    if base.offline and min_size is None:
        min_size = base.input_size  # torchvision's detection default (800) is slow on a CPU
    if base.offline and max_size is None:
        max_size = max_size_for(min_size)
    rcnn_kwargs: dict[str, Any] = {}
    if name in _RCNN:
        rcnn_kwargs["box_batch_size_per_image"] = int(rois_per_image)
    if base.task != "semantic_segmentation" and name != "ssdlite320_mobilenet_v3_large":
        # GeneralizedRCNNTransform arguments; SSD's transform is fixed-size and set below
        if min_size is not None:
            rcnn_kwargs["min_size"] = int(min_size)
        if max_size is not None:
            rcnn_kwargs["max_size"] = int(max_size)

    if base.offline:
        if pretrained:
            _weights.require_weights(name)
        model = build_offline(
            name,
            num_classes,
            pretrained=pretrained,
            num_keypoints=num_keypoints,
            trainable_layers=trainable_backbone_layers,
            frozen_batchnorm=frozen_batchnorm is not False,
            rcnn_kwargs=rcnn_kwargs,
        )
    elif pretrained:
        kwargs = dict(rcnn_kwargs)
        if trainable_backbone_layers is not None and base.task != "semantic_segmentation":
            kwargs["trainable_backbone_layers"] = trainable_backbone_layers
        if name == "deeplabv3_mobilenet_v3_large":
            kwargs["aux_loss"] = True
        model = _load_torchvision(name, **kwargs)
        replace_heads(model, num_classes, num_keypoints)
        _norm_layers(model, frozen_batchnorm)
    else:
        kwargs = dict(rcnn_kwargs, weights=None, weights_backbone=None, num_classes=num_classes)
        if base.task == "keypoints":
            kwargs["num_keypoints"] = num_keypoints
        if name == "deeplabv3_mobilenet_v3_large":
            kwargs["aux_loss"] = True  # the COCO weights have the auxiliary head
        model = get_model(name, **kwargs)
        if frozen_batchnorm is None:
            frozen_batchnorm = True if name in _FROZEN_BN_WHEN_PRETRAINED else None
        _norm_layers(model, frozen_batchnorm)
    _set_min_size(model, min_size, max_size)
    return model


def build_pretrained(name: str) -> tuple[nn.Module, list[str]]:
    """torchvision's COCO-pretrained model, unchanged, in eval mode, with its label names.

    ``categories[label]`` names the model's output ``label`` (COCO's ``"__background__"``
    and ``"N/A"`` gaps included). Offline models have no such head: ``ValueError``.

    Example:
        >>> build_pretrained("fasterrcnn_mobilenet_v2_fpn")
        Traceback (most recent call last):
        ...
        ValueError: 'fasterrcnn_mobilenet_v2_fpn' has no pretrained classes (ImageNet backbone only): fine-tune it first
    """  # noqa: E501
    base = base_model(name)
    if base.offline:
        raise ValueError(
            f"{name!r} has no pretrained classes (ImageNet backbone only): fine-tune it first"
        )
    kwargs: dict[str, Any] = {}
    if name == "deeplabv3_mobilenet_v3_large":
        kwargs["aux_loss"] = True
    model = _load_torchvision(name, **kwargs)
    return model.eval(), list(base.coco_categories)
