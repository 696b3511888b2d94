"""Resizing and augmentation of (image, target) pairs with ``torchvision.transforms.v2``.

Images are resized once, when first decoded, to the size the model works at (shorter side
``image_size``, longer side at most ``max_size``), so the model's own resize is a no-op and the
decoded-image cache stays small. Augmentation (random horizontal flip, photometric jitter)
then runs on every draw; it never moves a box off the image, so no box is lost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

#: Pixel value of "ignore" in semantic segmentation targets (padding, crowd regions).
IGNORE_INDEX = 255

Target = dict[str, Any]


def resized_shape(height: int, width: int, image_size: int, max_size: int) -> tuple[int, int]:
    """Size of an image after scaling its shorter side to ``image_size`` (longer <= max_size).

    Example:
        >>> resized_shape(400, 600, 200, 333)
        (200, 300)
    """
    scale = min(image_size / min(height, width), max_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def flip_permutation(names: Sequence[str]) -> list[int] | None:
    """Keypoint order after a horizontal flip: "left_eye" trades places with "right_eye".

    Returns ``None`` when no name has a left/right twin (then order is kept).

    Example:
        >>> flip_permutation(["nose", "left_eye", "right_eye"])
        [0, 2, 1]
    """
    index = {name.lower(): i for i, name in enumerate(names)}
    permutation = list(range(len(names)))
    swaps = {"left": "right", "right": "left", "l": "r", "r": "l"}
    found = False
    for i, name in enumerate(names):
        match = re.match(r"^(left|right|l|r)([_\- ].*)$", name.lower()) or re.match(
            r"^(.*[_\- ])(left|right|l|r)$", name.lower()
        )
        if not match:
            continue
        head, tail = match.groups()
        twin = swaps[head] + tail if head in swaps else head + swaps[tail]
        if twin in index:
            permutation[i] = index[twin]
            found = True
    return permutation if found else None


class DetectionAugment:
    """Random horizontal flip and photometric jitter for detection-style targets.

    Boxes, instance masks and keypoints follow the image; keypoints also swap left and right
    (``flip_index``), as a person's left eye becomes the right one in the mirror.

    Example:
        >>> image = tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8))
        >>> boxes = tv_tensors.BoundingBoxes(
        ...     [[0.0, 0.0, 2.0, 2.0]], format="XYXY", canvas_size=(8, 8)
        ... )
        >>> out, target = DetectionAugment(flip_p=1.0, photometric_p=0.0)(image, {"boxes": boxes})
        >>> target["boxes"].tolist()
        [[6.0, 0.0, 8.0, 2.0]]
    """

    def __init__(
        self,
        *,
        flip_p: float = 0.5,
        photometric_p: float = 0.5,
        flip_index: Sequence[int] | None = None,
    ) -> None:
        self.flip_p = flip_p
        self.flip_index = list(flip_index) if flip_index is not None else None
        self.photometric = v2.RandomPhotometricDistort(p=photometric_p) if photometric_p else None

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        if self.flip_p and torch.rand(()) < self.flip_p:
            target = dict(target)
            image = F.horizontal_flip(image)
            for key in ("boxes", "masks", "keypoints"):
                if key in target:
                    target[key] = F.horizontal_flip(target[key])
            if self.flip_index is not None and "keypoints" in target:
                target["keypoints"] = target["keypoints"][:, self.flip_index]
                target["keypoint_visibility"] = target["keypoint_visibility"][:, self.flip_index]
        if self.photometric is not None:
            image = self.photometric(image)
        return image, target


class SemanticAugment:
    """Flip, photometric jitter and a random ``crop_size`` square crop (padded with ignore).

    The crop gives every image of a batch the same size, which semantic models need.

    Example:
        >>> image = tv_tensors.Image(torch.zeros(3, 6, 10, dtype=torch.uint8))
        >>> mask = tv_tensors.Mask(torch.zeros(6, 10, dtype=torch.int64))
        >>> out, target = SemanticAugment(8, augment=False)(image, {"mask": mask})
        >>> tuple(out.shape), tuple(target["mask"].shape)
        ((3, 8, 8), (8, 8))
    """

    def __init__(self, crop_size: int, *, augment: bool = True) -> None:
        fill = {tv_tensors.Mask: IGNORE_INDEX, "others": 0}
        steps: list[v2.Transform] = []
        if augment:
            steps += [v2.RandomHorizontalFlip(0.5), v2.RandomPhotometricDistort(p=0.5)]
        steps.append(v2.RandomCrop(crop_size, pad_if_needed=True, fill=fill))
        self.transform = v2.Compose(steps)

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        image, mask = self.transform(image, target["mask"])
        return image, {**target, "mask": mask}


def to_model_input(image: torch.Tensor) -> torch.Tensor:
    """``uint8`` image -> ``float32`` in [0, 1], the input torchvision's models expect.

    Example:
        >>> to_model_input(torch.full((3, 1, 1), 255, dtype=torch.uint8)).max().item()
        1.0
    """
    return F.to_dtype(image, torch.float32, scale=True).as_subclass(torch.Tensor)
