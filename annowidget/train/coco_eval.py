"""COCO metrics (bbox, segm, keypoints) through pycocotools' ``COCOeval``, built in memory;
mean IoU for semantic segmentation.

The metrics dict has the task's primary numbers at the top (``AP``, ``AP50``, ``AP75``, ...,
``per_class`` AP by category name; ``iou_type`` says which), and the same set for the other
IoU types under their name (``"bbox"`` for instance segmentation and keypoints). Values are
floats in [0, 1], or ``None`` where COCOeval has nothing to measure (a class absent from the
test images).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annowidget.store import Annotation, Category, Image

#: The IoU types evaluated per task; the first one gives the headline numbers.
IOU_TYPES: dict[str, tuple[str, ...]] = {
    "detection": ("bbox",),
    "instance_segmentation": ("segm", "bbox"),
    "keypoints": ("keypoints", "bbox"),
}

_STAT_NAMES = {
    "bbox": (
        *("AP", "AP50", "AP75", "APs", "APm", "APl"),
        *("AR1", "AR10", "AR100", "ARs", "ARm", "ARl"),
    ),
    "keypoints": ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"),
}
_STAT_NAMES["segm"] = _STAT_NAMES["bbox"]

# Per-keypoint OKS sigma for skeletons other than COCO's 17 person keypoints (their mean).
_DEFAULT_OKS_SIGMA = 0.072

_quiet_lock = threading.RLock()


def _silent(*args: object, **kwargs: object) -> None:
    return None


@contextlib.contextmanager
def quiet_pycocotools() -> Iterator[None]:
    """Silence pycocotools' ``print`` calls while the block runs.

    It shadows ``print`` in pycocotools' own modules rather than redirecting ``sys.stdout``,
    which is process-wide: in a notebook that would swallow what other threads print.

    Example:
        >>> with quiet_pycocotools():
        ...     COCO().createIndex()
    """
    modules = (pycocotools.coco, pycocotools.cocoeval)
    with _quiet_lock:
        saved = [m.__dict__.get("print") for m in modules]
        for module in modules:
            module.print = _silent  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for module, old in zip(modules, saved, strict=True):
                if old is None:
                    del module.print  # type: ignore[attr-defined]
                else:
                    module.print = old  # type: ignore[attr-defined]


def _box_polygon(bbox: Sequence[float]) -> list[list[float]]:
    x, y, w, h = bbox
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def ground_truth(
    items: Sequence[tuple[Image, Sequence[Annotation]]],
    categories: Sequence[Category],
    *,
    num_keypoints: int = 0,
) -> COCO:
    """A pycocotools ``COCO`` object for ``items`` (category ids are model labels 1..C).

    Annotations without a mask get their box as the mask; without keypoints, zeros
    (COCOeval then ignores them for OKS).

    Example:
        >>> gt = ground_truth([(Image(1, "a.jpg", 10, 10, "", "test", "reviewed"),
        ...                     [Annotation(1, 1, 7, (1, 1, 4, 4), area=16.0)])],
        ...                   [Category(7, "cat")])
        >>> gt.anns[1]["category_id"]
        1
    """
    labels = {c.id: i + 1 for i, c in enumerate(categories)}
    images, annotations = [], []
    for image, anns in items:
        images.append({"id": image.id, "width": image.width, "height": image.height})
        for a in anns:
            if a.category_id not in labels:
                continue
            entry: dict[str, Any] = {
                "id": len(annotations) + 1,  # COCOeval mishandles id 0
                "image_id": image.id,
                "category_id": labels[a.category_id],
                "bbox": list(a.bbox),
                "area": float(a.area or a.bbox[2] * a.bbox[3]),
                "iscrowd": int(a.iscrowd),
                "segmentation": a.segmentation or _box_polygon(a.bbox),
            }
            if num_keypoints:
                points = list(a.keypoints or [])[: 3 * num_keypoints]
                points += [0.0] * (3 * num_keypoints - len(points))
                entry["keypoints"] = points
                entry["num_keypoints"] = sum(1 for v in points[2::3] if v > 0)
            annotations.append(entry)
    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": c.name} for i, c in enumerate(categories)],
    }
    with quiet_pycocotools():
        coco.createIndex()
    return coco


def to_results(
    prediction: dict[str, torch.Tensor], image_id: int, scale: tuple[float, float], task: str
) -> dict[str, list[dict[str, Any]]]:
    """One image's model output as COCO result entries per IoU type, in original pixels.

    ``scale`` is (resized / original) along x and y, as the dataset's targets carry it.

    Example:
        >>> out = {"boxes": torch.tensor([[0., 0., 4., 2.]]), "scores": torch.tensor([.9]),
        ...        "labels": torch.tensor([1])}
        >>> to_results(out, 5, (0.5, 0.5), "detection")["bbox"][0]["bbox"]
        [0.0, 0.0, 8.0, 4.0]
    """
    sx, sy = scale
    boxes = prediction["boxes"].detach().float().cpu()
    boxes = boxes / torch.tensor([sx, sy, sx, sy])
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    scores = prediction["scores"].detach().float().cpu().tolist()
    labels = prediction["labels"].detach().cpu().tolist()
    common = [
        {"image_id": int(image_id), "category_id": int(label), "score": float(score)}
        for label, score in zip(labels, scores, strict=True)
    ]
    results: dict[str, list[dict[str, Any]]] = {
        "bbox": [{**c, "bbox": box} for c, box in zip(common, xywh, strict=True)]
    }
    if task == "instance_segmentation" and "masks" in prediction:
        masks = prediction["masks"].detach().float().cpu()  # [N, 1, h, w] probabilities
        segm = []
        size = (round(masks.shape[-2] / sy), round(masks.shape[-1] / sx))
        # One mask at a time: 100 float masks at a photo's full size would take gigabytes.
        for c, mask in zip(common, masks, strict=True):
            full = torch.nn.functional.interpolate(mask[None], size=size, mode="bilinear")
            binary = (full[0, 0] > 0.5).numpy().astype(np.uint8)
            rle = mask_utils.encode(np.asfortranarray(binary))
            rle["counts"] = rle["counts"].decode("ascii")
            segm.append({**c, "segmentation": rle})
        results["segm"] = segm
    if task == "keypoints" and "keypoints" in prediction:
        points = prediction["keypoints"].detach().float().cpu().clone()  # [N, K, 3]
        points[..., 0] /= sx
        points[..., 1] /= sy
        points[..., 2] = 1.0
        results["keypoints"] = [
            {**c, "keypoints": p.reshape(-1).tolist()} for c, p in zip(common, points, strict=True)
        ]
    return results


def _empty_like(gt: COCO) -> COCO:
    coco = COCO()
    coco.dataset = {
        "images": list(gt.dataset["images"]),
        "categories": list(gt.dataset["categories"]),
        "annotations": [],
    }
    coco.createIndex()
    return coco


def _value(x: float) -> float | None:
    return None if x is None or x < 0 or not np.isfinite(x) else round(float(x), 6)


def evaluate_iou_type(
    gt: COCO, results: list[dict[str, Any]], iou_type: str, *, num_keypoints: int = 0
) -> dict[str, Any]:
    """Run ``COCOeval`` for one IoU type; returns the summary stats and per-class AP/AP50.

    Example:
        >>> # evaluate_iou_type(gt, results["bbox"], "bbox")["AP50"] -> 0.87
    """
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    with quiet_pycocotools():
        dt = gt.loadRes([dict(r) for r in results]) if results else _empty_like(gt)
        evaluator = COCOeval(gt, dt, iouType=iou_type)
        if iou_type == "keypoints" and num_keypoints != 17:
            evaluator.params.kpt_oks_sigmas = np.full(num_keypoints, _DEFAULT_OKS_SIGMA)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics: dict[str, Any] = {
        name: _value(v) for name, v in zip(_STAT_NAMES[iou_type], evaluator.stats, strict=False)
    }
    precision = evaluator.eval["precision"]  # [IoU thresholds, recall, class, area, max dets]
    per_class, per_class50 = {}, {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        per_class[names[cat_id]] = _value(p[p > -1].mean()) if (p > -1).any() else None
        per_class50[names[cat_id]] = _value(p50[p50 > -1].mean()) if (p50 > -1).any() else None
    metrics["per_class"] = per_class
    metrics["per_class_AP50"] = per_class50
    return metrics


def coco_metrics(
    gt: COCO,
    results: dict[str, list[dict[str, Any]]],
    task: str,
    *,
    num_keypoints: int = 0,
) -> dict[str, Any]:
    """COCO metrics for every IoU type of ``task``; the first type's numbers on top, the
    others under their IoU type's name.

    Example:
        >>> # coco_metrics(gt, {"bbox": [...]}, "detection")["AP50"]
    """
    metrics: dict[str, Any] = {"images": len(gt.dataset["images"])}
    for i, iou_type in enumerate(IOU_TYPES[task]):
        values = evaluate_iou_type(
            gt, results.get(iou_type, []), iou_type, num_keypoints=num_keypoints
        )
        if i == 0:
            metrics.update(values)
            metrics["iou_type"] = iou_type
        else:
            metrics[iou_type] = values
    return metrics


class ConfusionMatrix:
    """Pixel counts per (true class, predicted class) for semantic segmentation.

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
        >>> cm.metrics(["background", "cat"])["mIoU"]
        1.0
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def update(self, target: torch.Tensor, predicted: torch.Tensor) -> None:
        target, predicted = target.reshape(-1).cpu(), predicted.reshape(-1).cpu()
        keep = target != self.ignore_index
        index = target[keep] * self.num_classes + predicted[keep]
        self.matrix += torch.bincount(index, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def metrics(self, class_names: Sequence[str]) -> dict[str, Any]:
        """``mIoU`` over classes present in truth or prediction, per-class IoU, pixel accuracy."""
        m = self.matrix.double()
        true_pos = m.diag()
        union = m.sum(0) + m.sum(1) - true_pos
        iou = {
            name: (_value((true_pos[i] / union[i]).item()) if union[i] > 0 else None)
            for i, name in enumerate(class_names)
        }
        present = [v for v in iou.values() if v is not None]
        total = m.sum().item()
        return {
            "mIoU": round(sum(present) / len(present), 6) if present else None,
            "pixel_accuracy": _value(true_pos.sum().item() / total) if total else None,
            "per_class": iou,
        }
