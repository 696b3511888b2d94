"""A torch ``Dataset`` over a *snapshot* of a project's reviewed annotations.

The dataset holds its own copy of the images' paths and annotations, taken in one read of the
store, so edits made while training runs never change a running epoch.

Targets follow torchvision's detection models: ``boxes`` (``tv_tensors.BoundingBoxes``, XYXY,
in resized-image pixels), ``labels`` (label ``i + 1`` is ``categories[i]``, 0 is background),
``masks`` (instance segmentation), ``keypoints`` (``[N, K, 3]``: x, y, visibility). Semantic
segmentation gets a single ``mask`` of labels (255: ignore). Every target also carries
``image_id`` and ``scale`` (resized / original, x then y) to map predictions back.

Images with no annotation are kept as negatives. An image that cannot be decoded stops the
run: :class:`DataError` names the file. (Skipping it silently would train on a different set
than the one the user reviewed.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from annowidget.models.catalog import max_size_for
from annowidget.models.tasks import check_task
from annowidget.store import Annotation, Category, Image, Project, Snapshot
from annowidget.store.images import ImageError, check_recorded_size
from annowidget.train import transforms as T

Decoder = Callable[[Path], torch.Tensor]
Target = dict[str, Any]

# Decoded, resized images kept in memory so that epochs after the first skip JPEG decoding.
DEFAULT_CACHE_BYTES = 1 << 30


class DataError(ValueError):
    """An image or annotation the training run cannot use; the message names the file."""


def decode_image(path: Path) -> torch.Tensor:
    """Decode ``path`` as a ``uint8`` RGB tensor ``(3, H, W)``, EXIF orientation applied.

    Example:
        >>> decode_image(Path("photo.jpg")).dtype  # doctest: +SKIP
        torch.uint8
    """
    from annowidget.store.images import decode_for_model

    return decode_for_model(path)


def keypoint_names(categories: Sequence[Category]) -> list[str]:
    """Keypoint names shared by the model's classes: the longest list among ``categories``.

    Example:
        >>> keypoint_names([Category(1, "person", keypoints=["nose", "left_eye"])])
        ['nose', 'left_eye']
    """
    return max((list(c.keypoints) for c in categories), key=len, default=[])


class SnapshotDataset(Dataset):
    """(image, target) pairs for one task over a fixed list of images and annotations.

    ``train=True`` with ``augment=True`` draws random flips and colour jitter on every access;
    otherwise samples are deterministic.

    Example:
        >>> # ds = SnapshotDataset.from_snapshot(project, project.snapshot("train"),
        >>> #                                    task="detection", image_size=320)
        >>> # image, target = ds[0]; target["boxes"].shape -> torch.Size([n, 4])
    """

    def __init__(
        self,
        items: Sequence[tuple[Image, Sequence[Annotation]]],
        paths: Sequence[str | os.PathLike[str]],
        categories: Sequence[Category],
        *,
        task: str = "detection",
        image_size: int = 512,
        max_size: int | None = None,
        train: bool = False,
        augment: bool = True,
        decoder: Decoder | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if len(items) != len(paths):
            raise ValueError(f"{len(items)} images but {len(paths)} paths")
        self.task = check_task(task)
        self.items = [(image, list(annotations)) for image, annotations in items]
        self.paths = [Path(p) for p in paths]
        self.categories = list(categories)
        self.labels = {c.id: i + 1 for i, c in enumerate(self.categories)}
        self.keypoint_names = keypoint_names(self.categories) if task == "keypoints" else []
        self.image_size = int(image_size)
        self.max_size = int(max_size) if max_size else max_size_for(self.image_size)
        self.train = train
        self.decoder = decoder or decode_image
        self.cache_bytes = cache_bytes
        self._cache: dict[int, tuple[torch.Tensor, Target]] = {}
        self._cached_bytes = 0
        self.augment: Callable[[torch.Tensor, Target], tuple[torch.Tensor, Target]] | None = None
        if task == "semantic_segmentation" and train:
            self.augment = T.SemanticAugment(self.image_size, augment=augment)
        elif train and augment:
            flip = T.flip_permutation(self.keypoint_names) if self.keypoint_names else None
            self.augment = T.DetectionAugment(flip_index=flip)
        if task == "keypoints" and not self.keypoint_names:
            raise ValueError(
                "the keypoints task needs a category with keypoint names "
                "(project.add_category(name, keypoints=[...]))"
            )

    @classmethod
    def from_snapshot(cls, project: Project, snapshot: Snapshot, **kwargs: Any) -> SnapshotDataset:
        """The dataset of every image in ``snapshot`` (paths resolved through ``project``).

        Missing files are reported here, before training starts, all at once.

        Example:
            >>> # SnapshotDataset.from_snapshot(project, project.snapshot("test"), image_size=320)
        """
        paths = [project.image_path(image) for image, _ in snapshot.items]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise DataError(f"image file(s) not found: {', '.join(missing[:3])}{more}")
        return cls(snapshot.items, paths, snapshot.categories, **kwargs)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def image_ids(self) -> list[int]:
        return [image.id for image, _ in self.items]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        image, target = self._base(index)
        if self.augment is not None:
            image, target = self.augment(image, target)
        return T.to_model_input(image), _finish(target)

    # ---------------------------------------------------------------------- internals
    def _base(self, index: int) -> tuple[tv_tensors.Image, Target]:
        """The decoded, resized sample without augmentation (cached up to ``cache_bytes``)."""
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        record, annotations = self.items[index]
        path = self.paths[index]
        try:
            pixels = self.decoder(path)
        except Exception as exc:  # any decoder failure is a data error on this file
            reason = getattr(exc, "reason", None) or str(exc)  # ImageError already names it
            raise DataError(f"cannot decode image {path}: {reason}") from exc
        height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
        try:
            check_recorded_size(path, (width, height), (record.width, record.height))
        except ImageError as exc:
            raise DataError(f"image {exc.path} is {exc.reason}") from None
        new_h, new_w = T.resized_shape(height, width, self.image_size, self.max_size)
        if (new_h, new_w) != (height, width):
            pixels = F.resize(pixels, [new_h, new_w], antialias=True)
        sx, sy = new_w / width, new_h / height
        try:
            target = self._target(record, annotations, (height, width), (new_h, new_w), sx, sy)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise DataError(f"bad annotation on image {path}: {exc}") from exc
        sample = (tv_tensors.Image(pixels), target)
        size = pixels.numel() + sum(
            v.numel() * v.element_size() for v in target.values() if isinstance(v, torch.Tensor)
        )
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[index] = sample
            self._cached_bytes += size
        return sample

    def _target(
        self,
        record: Image,
        annotations: list[Annotation],
        original: tuple[int, int],
        resized: tuple[int, int],
        sx: float,
        sy: float,
    ) -> Target:
        height, width = original
        target: Target = {"image_id": record.id, "scale": (sx, sy)}
        # Crowd regions are not objects to find; COCOeval handles them on the test side.
        kept = []
        for a in annotations:
            if a.iscrowd or a.category_id not in self.labels:
                continue
            x0, y0 = max(0.0, a.bbox[0]), max(0.0, a.bbox[1])
            x1 = min(float(width), a.bbox[0] + a.bbox[2])
            y1 = min(float(height), a.bbox[1] + a.bbox[3])
            if x1 > x0 and y1 > y0:  # degenerate boxes crash torchvision's box coder
                kept.append((a, (x0, y0, x1, y1)))
        if self.task == "semantic_segmentation":
            target["mask"] = tv_tensors.Mask(self._semantic(annotations, original, resized))
            return target
        boxes = torch.tensor([box for _, box in kept], dtype=torch.float32).reshape(-1, 4)
        boxes *= torch.tensor([sx, sy, sx, sy])
        target["boxes"] = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=resized)
        target["labels"] = torch.tensor([self.labels[a.category_id] for a, _ in kept]).long()
        if self.task == "instance_segmentation":
            masks = [_instance_mask(a, original, resized) for a, _ in kept]
            stacked = torch.stack(masks) if masks else torch.zeros((0, *resized), dtype=torch.uint8)
            target["masks"] = tv_tensors.Mask(stacked)
        if self.task == "keypoints":
            k = len(self.keypoint_names)
            points = torch.zeros((len(kept), k, 3), dtype=torch.float32)
            for i, (a, _) in enumerate(kept):
                if a.keypoints:
                    values = torch.tensor(a.keypoints, dtype=torch.float32).reshape(-1, 3)[:k]
                    points[i, : len(values)] = values
            points[..., 0] *= sx
            points[..., 1] *= sy
            target["keypoints"] = tv_tensors.KeyPoints(points[..., :2], canvas_size=resized)
            target["keypoint_visibility"] = points[..., 2].clone()
        return target

    def _semantic(
        self,
        annotations: list[Annotation],
        original: tuple[int, int],
        resized: tuple[int, int],
    ) -> torch.Tensor:
        mask = torch.zeros(resized, dtype=torch.int64)
        # Larger objects first so that smaller ones drawn on top stay visible.
        for a in sorted(annotations, key=lambda a: -a.area):
            if a.category_id not in self.labels:
                continue
            region = _instance_mask(a, original, resized).bool()
            mask[region] = T.IGNORE_INDEX if a.iscrowd else self.labels[a.category_id]
        return mask


def _instance_mask(
    annotation: Annotation, original: tuple[int, int], resized: tuple[int, int]
) -> torch.Tensor:
    """The annotation's mask at the resized size (its box when it has no segmentation)."""
    height, width = original
    new_h, new_w = resized
    sx, sy = new_w / width, new_h / height
    seg = annotation.segmentation
    if isinstance(seg, list):
        # Rasterise the scaled polygons directly at the small size: cheaper and sharper.
        polygons = [
            [float(v) * (sx if i % 2 == 0 else sy) for i, v in enumerate(poly)]
            for poly in seg
            if len(poly) >= 6
        ]
        if polygons:
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, new_h, new_w))
            return torch.from_numpy(mask_utils.decode(rle).astype(np.uint8))
    elif isinstance(seg, dict) and "counts" in seg:
        rle = dict(seg)
        if isinstance(rle["counts"], list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        elif isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode()
        full = torch.from_numpy(mask_utils.decode(rle).astype(np.uint8))
        if tuple(full.shape) != (height, width):
            raise ValueError(f"mask is {tuple(full.shape)}, the image {(height, width)}")
        return F.resize(full[None], [new_h, new_w], interpolation=F.InterpolationMode.NEAREST)[0]
    x, y, w, h = annotation.bbox
    box = torch.zeros(resized, dtype=torch.uint8)
    x0, y0 = max(0, int(x * sx)), max(0, int(y * sy))
    x1, y1 = min(new_w, int(np.ceil((x + w) * sx))), min(new_h, int(np.ceil((y + h) * sy)))
    box[y0:y1, x0:x1] = 1
    return box


def _finish(target: Target) -> Target:
    """Plain tensors in the layout the models take (keypoints regain their visibility)."""
    out: Target = {}
    for key, value in target.items():
        if key == "keypoint_visibility":
            continue
        if key == "keypoints":
            visibility = target["keypoint_visibility"]
            value = torch.cat([value.as_subclass(torch.Tensor), visibility[..., None]], dim=-1)
        elif key == "boxes":
            value = value.as_subclass(torch.Tensor)
        out[key] = value
    return out


def collate(
    batch: Sequence[tuple[torch.Tensor, Target]],
) -> tuple[list[torch.Tensor], list[Target]]:
    """Keep images as a list: detection models take images of different sizes.

    Example:
        >>> collate([(torch.zeros(3, 2, 2), {"a": 1})])[1]
        [{'a': 1}]
    """
    return [image for image, _ in batch], [target for _, target in batch]


def split_items(
    items: Sequence[tuple[Image, list[Annotation]]], ratio: float, seed: int
) -> tuple[list[tuple[Image, list[Annotation]]], list[tuple[Image, list[Annotation]]]]:
    """Split a snapshot's items into train and test, reproducibly (same seed, same split).

    Both parts get at least one image when there are two or more.

    Example:
        >>> train, test = split_items([(i, []) for i in range(10)], 0.8, seed=0)
        >>> len(train), len(test)
        (8, 2)
    """
    generator = torch.Generator().manual_seed(int(seed))
    shuffled = torch.randperm(len(items), generator=generator).tolist()
    n_train = round(len(items) * ratio)
    if len(items) >= 2:
        n_train = min(max(n_train, 1), len(items) - 1)
    return [items[i] for i in shuffled[:n_train]], [items[i] for i in shuffled[n_train:]]
