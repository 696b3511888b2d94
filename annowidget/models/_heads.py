"""Replace a pretrained model's class-specific output layers for a project's categories.

Only the last layers that depend on the number of classes (or keypoints) are new; every
other pretrained part (backbone, FPN, RPN, conv towers, box regression) is kept.
"""

from __future__ import annotations

import math

from torch import nn
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.models.detection.ssd import SSD
from torchvision.models.segmentation.deeplabv3 import DeepLabV3
from torchvision.models.segmentation.lraspp import LRASPP


def _new_conv(old: nn.Conv2d, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        old.in_channels,
        out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
    )


def _prior_init(conv: nn.Conv2d, std: float, prior: float | None) -> nn.Conv2d:
    # RetinaNet/FCOS start every anchor at ~1% foreground, else focal loss explodes at step 0
    nn.init.normal_(conv.weight, std=std)
    if prior is None:
        nn.init.zeros_(conv.bias)
    else:
        nn.init.constant_(conv.bias, -math.log((1 - prior) / prior))
    return conv


def _replace_rcnn(model: GeneralizedRCNN, num_classes: int, num_keypoints: int | None) -> None:
    heads = model.roi_heads
    heads.box_predictor = FastRCNNPredictor(heads.box_predictor.cls_score.in_features, num_classes)
    mask_predictor = getattr(heads, "mask_predictor", None)
    if mask_predictor is not None:
        conv = mask_predictor.conv5_mask
        heads.mask_predictor = MaskRCNNPredictor(conv.in_channels, conv.out_channels, num_classes)
    keypoint_predictor = getattr(heads, "keypoint_predictor", None)
    if keypoint_predictor is not None:
        if num_keypoints is None:
            raise ValueError("num_keypoints is required for a keypoint model")
        in_channels = keypoint_predictor.kps_score_lowres.in_channels
        heads.keypoint_predictor = KeypointRCNNPredictor(in_channels, num_keypoints)


def _replace_dense(head: nn.Module, num_classes: int) -> None:
    # RetinaNet and FCOS classification heads: conv tower + cls_logits (num_anchors * classes)
    old = head.cls_logits
    head.cls_logits = _prior_init(_new_conv(old, head.num_anchors * num_classes), 0.01, 0.01)
    head.num_classes = num_classes


def _replace_ssd(model: SSD, num_classes: int) -> None:
    scoring = model.head.classification_head
    for block in scoring.module_list:
        old = block[-1]
        anchors = old.out_channels // scoring.num_columns
        block[-1] = _prior_init(_new_conv(old, anchors * num_classes), 0.03, None)
    scoring.num_columns = num_classes


def replace_heads(
    model: nn.Module, num_classes: int, num_keypoints: int | None = None
) -> nn.Module:
    """Give ``model`` fresh output layers for ``num_classes`` (background included).

    Example:
        >>> from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn as b
        >>> m = replace_heads(b(weights=None, weights_backbone=None), 3)
        >>> m.roi_heads.box_predictor.cls_score.out_features
        3
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (background + 1), got {num_classes}")
    if isinstance(model, GeneralizedRCNN):
        _replace_rcnn(model, num_classes, num_keypoints)
    elif isinstance(model, RetinaNet | FCOS):
        _replace_dense(model.head.classification_head, num_classes)
    elif isinstance(model, SSD):
        _replace_ssd(model, num_classes)
    elif isinstance(model, DeepLabV3):
        model.classifier[-1] = _new_conv(model.classifier[-1], num_classes)
        if model.aux_classifier is not None:
            model.aux_classifier[-1] = _new_conv(model.aux_classifier[-1], num_classes)
    elif isinstance(model, LRASPP):
        head = model.classifier
        head.low_classifier = _new_conv(head.low_classifier, num_classes)
        head.high_classifier = _new_conv(head.high_classifier, num_classes)
    else:
        raise TypeError(f"do not know the heads of a {type(model).__name__}")
    return model


def count_parameters(model: nn.Module, *, trainable: bool = False) -> int:
    """Number of (trainable) parameters, for model descriptions.

    Example:
        >>> count_parameters(nn.Linear(2, 3))
        9
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)
