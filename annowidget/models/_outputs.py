"""Turn torchvision model outputs into the store's prediction dicts (original image pixels).

Detection-style models already return boxes, masks and keypoints in the input image's
pixels; semantic models return logits that become one mask per class present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

# torchvision's segmentation models expect ImageNet-normalised input (the trainer does the same)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a binary ``(H, W)`` mask, JSON-ready (``counts`` as str).

    Example:
        >>> encode_mask(np.ones((2, 3), dtype=np.uint8))["size"]
        [2, 3]
    """
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _xywh(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)]


def instance_predictions(
    output: Mapping[str, torch.Tensor],
    label_map: Mapping[int, int],
    threshold: float,
) -> tuple[list[dict[str, Any]], int]:
    """Predictions of one image from a detection / Mask / Keypoint R-CNN style output.

    Returns the prediction dicts and how many were dropped for want of a project category.

    Example:
        >>> out = {"boxes": torch.tensor([[1., 2., 5., 6.]]), "scores": torch.tensor([.9]),
        ...        "labels": torch.tensor([1])}
        >>> instance_predictions(out, {1: 7}, 0.5)[0][0]["bbox"]
        [1.0, 2.0, 4.0, 4.0]
    """
    scores = output["scores"].detach().float().cpu()
    keep = torch.nonzero(scores >= threshold).flatten()
    if len(keep) == 0:
        return [], 0
    labels = output["labels"][keep].cpu().tolist()
    boxes = output["boxes"][keep].detach().float().cpu().tolist()
    masks = None
    if "masks" in output:
        masks = (output["masks"][keep, 0] > 0.5).cpu().numpy()
    points = None
    if "keypoints" in output:
        points = output["keypoints"][keep].detach().float().cpu().clone()
        points[..., 2] = 2.0  # COCO: labelled and visible
    predictions: list[dict[str, Any]] = []
    dropped = 0
    for row, (label, box, score) in enumerate(
        zip(labels, boxes, scores[keep].tolist(), strict=True)
    ):
        category_id = label_map.get(int(label))
        if category_id is None:
            dropped += 1
            continue
        prediction: dict[str, Any] = {
            "category_id": category_id,
            "bbox": _xywh(box),
            "score": float(score),
        }
        if masks is not None:
            prediction["segmentation"] = encode_mask(masks[row])
            prediction["area"] = float(masks[row].sum())
        if points is not None:
            prediction["keypoints"] = points[row].flatten().tolist()
        predictions.append(prediction)
    return predictions, dropped


def semantic_predictions(
    logits: torch.Tensor,
    label_map: Mapping[int, int],
    threshold: float,
) -> tuple[list[dict[str, Any]], int]:
    """One prediction per class present in a ``(C, H, W)`` logit map (label 0 = background).

    The score is the class's mean probability over its pixels.

    Example:
        >>> logits = torch.zeros(2, 4, 4); logits[1, :2] = 5.0
        >>> preds, _ = semantic_predictions(logits, {1: 3}, 0.5)
        >>> preds[0]["bbox"], preds[0]["area"]
        ([0.0, 0.0, 4.0, 2.0], 8.0)
    """
    probabilities = logits.detach().float().softmax(0)
    confidence, labels = probabilities.max(0)
    present = [int(v) for v in torch.unique(labels).tolist() if int(v) != 0]
    predictions: list[dict[str, Any]] = []
    dropped = 0
    for label in present:
        pixels = labels == label
        score = float(confidence[pixels].mean())
        if score < threshold:
            continue
        category_id = label_map.get(label)
        if category_id is None:
            dropped += 1
            continue
        mask = pixels.cpu().numpy()
        rle = encode_mask(mask)
        compressed = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        bbox = [float(v) for v in mask_utils.toBbox(compressed)]
        predictions.append(
            {
                "category_id": category_id,
                "bbox": bbox,
                "score": score,
                "segmentation": rle,
                "area": float(mask.sum()),
            }
        )
    return predictions, dropped


def semantic_batch(image: torch.Tensor, image_size: int, max_size: int) -> torch.Tensor:
    """A ``(1, 3, h, w)`` normalised input: shorter side ``image_size``, longer <= ``max_size``.

    Example:
        >>> semantic_batch(torch.zeros(3, 40, 60, dtype=torch.uint8), 20, 100).shape
        torch.Size([1, 3, 20, 30])
    """
    height, width = image.shape[-2:]
    scale = min(image_size / min(height, width), max_size / max(height, width))
    size = [max(1, round(height * scale)), max(1, round(width * scale))]
    pixels = image.float().div(255)[None]
    if size != [height, width]:
        pixels = torch.nn.functional.interpolate(
            pixels, size=size, mode="bilinear", antialias=True, align_corners=False
        )
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std
