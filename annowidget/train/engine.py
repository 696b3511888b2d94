"""The training loop: optimiser, schedule, one epoch of training, one evaluation.

In the style of torchvision's detection references (SGD, a step schedule, a linear warm-up
during the first epoch, COCO evaluation through pycocotools), without their printing.

Example:
    >>> # optimizer = make_optimizer(model, hp); scheduler = make_scheduler(optimizer, hp)
    >>> # result = train_one_epoch(model, optimizer, loader, device, epoch=1)
    >>> # scheduler.step(); metrics = evaluate(model, test_loader, device)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from annowidget.train import coco_eval, distributed
from annowidget.train.dataset import SnapshotDataset
from annowidget.train.events import StepEvent
from annowidget.train.hyperparameters import Hyperparameters
from annowidget.train.loader import eval_loader
from annowidget.train.precision import MixedPrecision
from annowidget.train.transforms import IGNORE_INDEX

StepCallback = Callable[[StepEvent], None]

# torchvision's segmentation models take ImageNet-normalised input (detection models
# normalise inside their own transform).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: the run cannot continue from these weights."""


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; a named device must exist.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} is not available: torch sees no CUDA GPU")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} is not available: {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {name!r} is not available on this machine")
    return device


def make_optimizer(model: nn.Module, hp: Hyperparameters) -> torch.optim.SGD:
    """SGD with momentum and weight decay over the trainable parameters.

    Example:
        >>> make_optimizer(nn.Linear(2, 1), Hyperparameters()).defaults["momentum"]
        0.9
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(
        params, lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.weight_decay
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, hp: Hyperparameters
) -> torch.optim.lr_scheduler.StepLR:
    """Multiply the learning rate by ``gamma`` every ``gamma_epochs`` epochs (step per epoch).

    Example:
        >>> opt = make_optimizer(nn.Linear(2, 1), Hyperparameters())
        >>> make_scheduler(opt, Hyperparameters()).step_size
        5
    """
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=hp.gamma_epochs, gamma=hp.gamma)


def default_warmup_iters(steps_per_epoch: int) -> int:
    """torchvision's choice: warm up over the first epoch, at most 1000 steps.

    Example:
        >>> default_warmup_iters(50)
        49
    """
    return max(0, min(1000, steps_per_epoch - 1))


@dataclass
class EpochResult:
    """What one call of :func:`train_one_epoch` did. ``completed`` is False when stopped."""

    epoch: int
    steps: int
    steps_per_epoch: int
    images: int
    completed: bool
    loss: float
    loss_parts: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    seconds: float = 0.0


def _to_device(
    images: list[torch.Tensor], targets: list[dict[str, Any]], device: torch.device
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    non_blocking = device.type == "cuda"
    images = [image.to(device, non_blocking=non_blocking) for image in images]
    targets = [
        {
            k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
            for k, v in t.items()
        }
        for t in targets
    ]
    return images, targets


def _task_of(data: Any, task: str | None) -> str:
    if task is not None:
        return task
    dataset = getattr(data, "dataset", data)
    return str(getattr(dataset, "task", "detection"))


def semantic_input(images: list[torch.Tensor]) -> torch.Tensor:
    """A batch for a semantic segmentation model: stacked and ImageNet-normalised.

    Example:
        >>> semantic_input([torch.zeros(3, 2, 2)]).shape
        torch.Size([1, 3, 2, 2])
    """
    batch = torch.stack(images)
    mean = torch.tensor(_IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=batch.device).view(1, 3, 1, 1)
    return (batch - mean) / std


def compute_loss(
    model: nn.Module, images: list[torch.Tensor], targets: list[dict[str, Any]], task: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss and its named parts for one batch (model in train mode).

    Detection-style models return their losses; semantic models return logits, scored here
    with cross-entropy (the auxiliary head, when present, weighs 0.5 as in torchvision).

    Example:
        >>> # loss, parts = compute_loss(model, images, targets, "detection")
    """
    if task == "semantic_segmentation":
        batch = semantic_input(images)
        masks = torch.stack([t["mask"] for t in targets]).long()
        outputs = model(batch)
        parts = {
            "loss_out": nn.functional.cross_entropy(
                outputs["out"], masks, ignore_index=IGNORE_INDEX
            )
        }
        if "aux" in outputs:
            parts["loss_aux"] = 0.5 * nn.functional.cross_entropy(
                outputs["aux"], masks, ignore_index=IGNORE_INDEX
            )
    else:
        parts = model(images, targets)
    return sum(parts.values()), parts  # type: ignore[return-value]


def finite_parts(
    parts: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of a batch without any box: the parts that are NaN are left out.

    With no box in the batch, an R-CNN head may sample no proposal at all and divide by
    zero (its box loss becomes 0/0). Nothing is wrong with the weights or the learning rate:
    those parts simply have nothing to learn from this batch.

    Example:
        >>> loss, parts = finite_parts({"a": torch.tensor(0.5), "b": torch.tensor(float("nan"))})
        >>> float(loss), sorted(parts)
        (0.5, ['a'])
    """
    kept = {k: v for k, v in parts.items() if bool(torch.isfinite(v).all())}
    if not kept:  # nothing to learn: a zero loss outside the graph (no gradient at all)
        device = next(iter(parts.values())).device
        return torch.zeros((), device=device, requires_grad=True), {}
    return sum(kept.values()), kept  # type: ignore[return-value]


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[tuple[list[torch.Tensor], list[dict[str, Any]]]],
    device: torch.device,
    epoch: int,
    *,
    warmup_iters: int | None = None,
    on_step: StepCallback | None = None,
    stop_event: threading.Event | None = None,
    task: str | None = None,
    run_start: float | None = None,
    precision: MixedPrecision | None = None,
    grad_clip_norm: float = 0.0,
) -> EpochResult:
    """Train ``model`` for one pass over ``loader``; epochs count from 1.

    During epoch 1 the learning rate ramps up linearly from 1/1000 of its value over
    ``warmup_iters`` steps (default: the whole epoch, at most 1000 steps; 0: no warm-up).
    ``stop_event`` is checked before every step: when set, the epoch ends early with
    ``completed=False`` (the weights then hold a partial epoch). A NaN or infinite loss
    raises :class:`NonFiniteLossError` before the weights are updated with it, except for
    the parts of a batch without a single box (see :func:`finite_parts`). ``grad_clip_norm``
    > 0 caps the total gradient norm of every step. ``precision`` (default: fp32) autocasts
    the forward pass and scales fp16 gradients (unscaled before clipping). Under torchrun the
    loss is averaged across ranks (every rank sees the same number).

    Example:
        >>> # r = train_one_epoch(model, opt, loader, torch.device("cpu"), 1, on_step=print)
        >>> # r.completed, r.loss
    """
    task = _task_of(loader, task)
    amp = precision or MixedPrecision("fp32", device)
    model.train()
    try:
        steps_per_epoch = len(loader)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = 0
    warmup = None
    if epoch == 1:
        iters = default_warmup_iters(steps_per_epoch) if warmup_iters is None else warmup_iters
        if iters > 0:
            warmup = torch.optim.lr_scheduler.LinearLR(
                optimizer, start_factor=1.0 / 1000, total_iters=iters
            )
    start = time.perf_counter()
    run_start = start if run_start is None else run_start
    totals: dict[str, float] = {}
    total_loss = 0.0
    steps = images_seen = 0
    completed = True
    for images, targets in loader:
        if stop_event is not None and stop_event.is_set():
            completed = False
            break
        images, targets = _to_device(list(images), list(targets), device)
        with amp.autocast():
            loss, parts = compute_loss(model, images, targets, task)
        if task != "semantic_segmentation" and not any(len(t["boxes"]) for t in targets):
            loss, parts = finite_parts(parts)
        # one copy from the device for the loss and its parts (a GPU sync each otherwise)
        values = torch.stack([loss.detach().float(), *(v.detach().float() for v in parts.values())])
        loss_value, *rest = values.tolist()
        loss_value = distributed.average(loss_value)
        part_values = dict(zip(parts, rest, strict=True))
        if not math.isfinite(loss_value):
            detail = ", ".join(f"{k}={v:.4g}" for k, v in part_values.items())
            raise NonFiniteLossError(
                f"the loss became {loss_value} at epoch {epoch}, step {steps + 1} ({detail}); "
                f"the learning rate ({optimizer.param_groups[0]['lr']:.3g}) is probably too high"
            )
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
        if grad_clip_norm > 0:
            amp.unscale(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, grad_clip_norm)
        amp.step(optimizer)
        lr = float(optimizer.param_groups[0]["lr"])
        if warmup is not None:
            warmup.step()
        steps += 1
        images_seen += len(images)
        total_loss += loss_value
        for k, v in part_values.items():
            totals[k] = totals.get(k, 0.0) + v
        if on_step is not None:
            on_step(
                StepEvent(
                    epoch=epoch,
                    step=steps,
                    steps_per_epoch=steps_per_epoch,
                    loss=loss_value,
                    loss_parts=part_values,
                    lr=lr,
                    elapsed=time.perf_counter() - run_start,
                )
            )
    if stop_event is not None and stop_event.is_set() and steps < steps_per_epoch:
        completed = False
    return EpochResult(
        epoch=epoch,
        steps=steps,
        steps_per_epoch=steps_per_epoch,
        images=images_seen,
        completed=completed,
        loss=total_loss / steps if steps else math.nan,
        loss_parts={k: v / steps for k, v in totals.items()},
        lr=float(optimizer.param_groups[0]["lr"]),
        seconds=time.perf_counter() - start,
    )


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: SnapshotDataset | DataLoader,
    device: torch.device,
    *,
    batch_size: int | None = None,
    stop_event: threading.Event | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on a test dataset: COCO AP/AP50/AP75 and per-class AP (detection,
    instance segmentation, keypoints) or mean IoU (semantic segmentation).

    Ground truth is the dataset's annotations in original pixels; predictions are mapped
    back to them. Returns ``{}`` when ``stop_event`` is set midway. ``batch_size``: 2 on the
    CPU, 8 on a GPU. Under torchrun every rank scores its share of the images and the
    predictions of all ranks are gathered before COCOeval (every rank gets the metrics).

    Example:
        >>> # metrics = evaluate(model, test_dataset, torch.device("cpu"))
        >>> # metrics["AP50"], metrics["per_class"]["raccoon"]
    """
    # a loader given is scored as it is; a dataset is shared out between the ranks
    sharded = not isinstance(data, DataLoader)
    loader = eval_loader(data, batch_size, device=device) if sharded else data
    dataset: SnapshotDataset = loader.dataset  # type: ignore[assignment]
    task = dataset.task
    model = distributed.unwrap(model)  # each rank scores alone: no DDP collective per batch
    was_training = model.training
    model.eval()
    try:
        if task == "semantic_segmentation":
            names = ["background", *(c.name for c in dataset.categories)]
            matrix = coco_eval.ConfusionMatrix(len(names), IGNORE_INDEX)
            for images, targets in loader:
                if stop_event is not None and stop_event.is_set():
                    return {}
                batch = semantic_input([image.to(device, non_blocking=True) for image in images])
                predicted = model(batch)["out"].argmax(1)
                for target, pred in zip(targets, predicted, strict=True):
                    matrix.update(target["mask"], pred)
            if sharded:
                matrix.matrix = sum(distributed.gather([matrix.matrix]))  # type: ignore[assignment]
            return {"images": len(dataset), **matrix.metrics(names)}
        results: dict[str, list[dict[str, Any]]] = {}
        for images, targets in loader:
            if stop_event is not None and stop_event.is_set():
                return {}
            outputs = model([image.to(device, non_blocking=True) for image in images])
            for output, target in zip(outputs, targets, strict=True):
                entries = coco_eval.to_results(output, target["image_id"], target["scale"], task)
                for iou_type, values in entries.items():
                    results.setdefault(iou_type, []).extend(values)
        if sharded:
            results = _gathered(results)
        num_keypoints = len(dataset.keypoint_names)
        gt = coco_eval.ground_truth(dataset.items, dataset.categories, num_keypoints=num_keypoints)
        return coco_eval.coco_metrics(gt, results, task, num_keypoints=num_keypoints)
    finally:
        model.train(was_training)


def _gathered(results: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every rank's COCO results per IoU type (this process's alone outside torchrun)."""
    if not distributed.is_active():
        return results
    merged: dict[str, list[dict[str, Any]]] = {}
    for part in distributed.gather([results]):
        for iou_type, values in part.items():
            merged.setdefault(iou_type, []).extend(values)
    return merged
