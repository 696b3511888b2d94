"""Smart prediction: a model pre-labels project images; people review what it proposes.

Predictions are written as pending annotations (with a score) through
``Project.replace_predictions``: reviewed annotations are never touched, and only images
that were not reviewed become ``predicted``.

Images are decoded ahead of the model by a pool of threads (decoding releases the GIL, and
threads need no copy of the project): one on a small CPU machine, as many as DataLoader
workers would be on a GPU (see :func:`annowidget.train.loader.auto_workers`). On CUDA the
decoded ``uint8`` images are pinned and copied asynchronously, then made float on the GPU.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from annowidget.models._outputs import instance_predictions, semantic_batch, semantic_predictions
from annowidget.models.card import ModelCard
from annowidget.models.catalog import model_sizes
from annowidget.models.registry import ModelRegistry

__all__ = ["PredictionReport", "predict_images"]

ProgressCallback = Callable[[int, int], None]
_IGNORED_NAMES = frozenset({"n/a", "__background__", "background", "no person"})


@dataclass
class PredictionReport:
    """What one prediction run did.

    Example:
        >>> PredictionReport("m", images=4, seconds=2.0).seconds_per_image
        0.5
    """

    model: str
    images: int = 0
    predictions: int = 0
    dropped: int = 0  # detections of classes the project does not have
    failed: list[tuple[int, str]] = field(default_factory=list)  # (image id, why)
    skipped: list[int] = field(default_factory=list)  # left alone: ``skip(id)`` said so
    per_category: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stopped: bool = False

    @property
    def seconds_per_image(self) -> float:
        """Wall time per predicted image (decoding, inference and writing included)."""
        return self.seconds / self.images if self.images else 0.0


def _resolve(
    project: Any, model: str | tuple[nn.Module, ModelCard], device: str | torch.device
) -> tuple[nn.Module, ModelCard]:
    if isinstance(model, str):
        return ModelRegistry(project).load(model, device=device)
    net, card = model
    return net.to(device), card


def category_mapping(
    project: Any, card: ModelCard, *, add_categories: bool = False
) -> dict[int, int]:
    """Model label -> project category id, matching names case-insensitively.

    A COCO-pretrained model's ``person`` lands on the project's ``Person``; classes the
    project lacks are left out (or created, with ``add_categories``).

    Example:
        >>> # category_mapping(project, ModelRegistry(project).card("round-1")) -> {1: 1}
    """
    by_name = {c.name.lower(): c.id for c in project.categories()}
    mapping: dict[int, int] = {}
    for index, name in enumerate(card.categories):
        key = name.strip().lower()
        if key in _IGNORED_NAMES:
            continue
        if key not in by_name and add_categories:
            by_name[key] = project.add_category(name).id
        if key in by_name:
            mapping[index + 1] = by_name[key]
    return mapping


def _select(
    project: Any, image_ids: Sequence[int] | None, folder: str | None, unlabeled: bool
) -> list[Any]:
    if image_ids is not None:
        return [project.image(int(i)) for i in image_ids]
    return project.images(folder=folder, status="unlabeled" if unlabeled else None)


@contextmanager
def _score_floor(model: nn.Module, threshold: float) -> Iterator[None]:
    """Let the model return scores down to ``threshold`` (its own cut-off may be higher)."""
    owner = getattr(model, "roi_heads", model)
    old = getattr(owner, "score_thresh", None)
    if old is not None and threshold < old:
        owner.score_thresh = threshold
    try:
        yield
    finally:
        if old is not None:
            owner.score_thresh = old


def _decode(path: Any, recorded: tuple[int, int], pin: bool) -> torch.Tensor | Exception:
    """An image's pixels, or why it is skipped (unreadable, or changed since it was added:
    boxes found on a resized file would be stored against the recorded size)."""
    from annowidget.store.images import check_recorded_size, decode_for_model

    try:
        pixels = decode_for_model(path)
        check_recorded_size(path, (int(pixels.shape[-1]), int(pixels.shape[-2])), recorded)
    except (OSError, ValueError) as exc:  # ImageError is a ValueError naming the file
        return exc
    return pixels.pin_memory() if pin else pixels


def _batches(
    project: Any, images: list[Any], size: int, *, threads: int = 1, pin: bool = False
) -> Iterator[list[tuple[Any, Any]]]:
    """Decoded batches; ``threads`` threads decode up to ``threads`` batches ahead of the one
    the model is working on (one thread, one batch ahead: the CPU default)."""
    paths = [project.image_path(image) for image in images]
    chunks = [list(range(i, min(i + size, len(images)))) for i in range(0, len(images), size)]
    ahead = max(1, threads)
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="annowidget-decode") as pool:
        pending: deque[list[Future]] = deque()
        submitted = 0

        def submit() -> None:
            nonlocal submitted
            pending.append(
                [
                    pool.submit(_decode, paths[i], (images[i].width, images[i].height), pin)
                    for i in chunks[submitted]
                ]
            )
            submitted += 1

        try:
            while submitted < min(ahead, len(chunks)):
                submit()
            for index in range(len(chunks)):
                futures = pending.popleft()
                if submitted < len(chunks):
                    submit()
                yield [(images[i], f.result()) for i, f in zip(chunks[index], futures, strict=True)]
        finally:  # stopped early: decode nothing more
            for futures in pending:
                for future in futures:
                    future.cancel()


def _infer(
    net: nn.Module,
    pixels: list[torch.Tensor],
    label_map: dict[int, int],
    threshold: float,
    semantic_sizes: tuple[int, int] | None,
    autocast: Callable[[], Any] = nullcontext,
) -> list[tuple[list[dict[str, Any]], int]]:
    """Predictions (and dropped counts) for decoded uint8 images, one entry per image."""
    if not pixels:
        return []
    device = next(net.parameters()).device
    if semantic_sizes is None:
        # uint8 travels (a quarter of float32's bytes), the GPU makes it float
        inputs = [p.to(device, non_blocking=True).float().div_(255) for p in pixels]
        with autocast():
            outputs = net(inputs)
        return [instance_predictions(out, label_map, threshold) for out in outputs]
    results = []
    for image in pixels:  # semantic models keep each image's own aspect ratio: batch of one
        with autocast():
            logits = net(semantic_batch(image.to(device), *semantic_sizes))["out"].float()
        full = nn.functional.interpolate(
            logits, size=image.shape[-2:], mode="bilinear", align_corners=False
        )
        results.append(semantic_predictions(full[0], label_map, threshold))
    return results


def predict_images(
    project: Any,
    model: str | tuple[nn.Module, ModelCard],
    *,
    image_ids: Sequence[int] | None = None,
    folder: str | None = None,
    unlabeled: bool = False,
    threshold: float = 0.5,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    add_categories: bool = False,
    precision: str = "fp32",
    workers: int | None = None,
    skip: Callable[[int], bool] | None = None,
) -> PredictionReport:
    """Pre-label images with ``model`` (a registry name, or ``(model, card)``).

    Images: ``image_ids`` if given, else those of ``folder`` (all folders if ``None``),
    only the ``unlabeled`` ones if asked. Each image's pending predictions are replaced;
    detections below ``threshold`` or of classes the project lacks (matched by name,
    case-insensitively) are left out, unless ``add_categories`` creates those categories.
    ``precision`` (``fp32``, ``bf16``, ``fp16`` or ``auto``) is the inference precision;
    ``workers`` the decoding threads (``None``: sized to the machine).
    ``skip(image_id)`` is asked just before an image's predictions are written: ``True``
    leaves that image as it is (someone opened it meanwhile, say).

    Example:
        >>> # report = predict_images(project, "raccoons-v1", unlabeled=True, threshold=0.3)
        >>> # report.predictions, report.seconds_per_image
    """
    from annowidget.train.loader import resolve_workers
    from annowidget.train.precision import autocast_for

    start = time.perf_counter()
    net, card = _resolve(project, model, device)
    net.eval()
    on = next(net.parameters()).device
    autocast = autocast_for(precision, on)
    threads = max(1, resolve_workers(workers, on))
    report = PredictionReport(model=card.name)
    images = _select(project, image_ids, folder, unlabeled)
    label_map = category_mapping(project, card, add_categories=add_categories)
    names = {c.id: c.name for c in project.categories()}
    source = f"model:{card.name}"
    semantic = card.task == "semantic_segmentation"
    sizes = model_sizes(card.base_model, card.model_config) if semantic else None
    done = 0
    with _score_floor(net, threshold), torch.inference_mode():
        batches = _batches(
            project, images, max(1, int(batch_size)), threads=threads, pin=on.type == "cuda"
        )
        for batch in batches:
            if stop is not None and stop.is_set():
                report.stopped = True
                break
            ready = [(image, pixels) for image, pixels in batch if isinstance(pixels, torch.Tensor)]
            report.failed.extend(
                (image.id, str(error)) for image, error in batch if isinstance(error, Exception)
            )
            outputs = _infer(net, [p for _, p in ready], label_map, threshold, sizes, autocast)
            for (image, _), (predictions, dropped) in zip(ready, outputs, strict=True):
                if skip is not None and skip(image.id):
                    report.skipped.append(image.id)
                    continue
                project.replace_predictions(image.id, predictions, source=source)
                report.images += 1
                report.predictions += len(predictions)
                report.dropped += dropped
                for prediction in predictions:
                    name = names[prediction["category_id"]]
                    report.per_category[name] = report.per_category.get(name, 0) + 1
            done += len(batch)
            if progress is not None:
                progress(done, len(images))
    report.seconds = time.perf_counter() - start
    return report
