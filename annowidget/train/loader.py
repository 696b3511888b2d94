"""The DataLoaders of a run: decoding, resizing and augmentation in worker processes sized to
the machine, pinned memory on CUDA, a distributed sampler under torchrun.

Workers: ``hyperparameters.workers`` (``None``: :func:`auto_workers`). On a GPU the training
loop must never wait for JPEG decoding, so up to 8 processes per GPU decode, resize and
augment ahead (each keeps ``prefetch_factor`` batches ready, and they live for the whole run);
batches land in pinned memory so that copies to the GPU are asynchronous. On the CPU the model
already keeps every core busy and the decoded-image cache makes every epoch after the first
free of decoding: workers only compete with the model for cores, so a small machine uses none
(measured on 2 cores: see ``auto_workers``).

Each worker process holds its own copy of the dataset and of its decoded-image cache; the
cache's byte budget is shared out between them so that memory stays what one process used.

Example:
    >>> auto_workers("cpu", cores=2), auto_workers("cuda", cores=16)
    (0, 8)
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from annowidget.train import distributed
from annowidget.train.dataset import collate
from annowidget.train.hyperparameters import Hyperparameters

#: At most this many worker processes per GPU (torchvision's references use 4 to 8).
MAX_GPU_WORKERS = 8
#: Batches each worker keeps ready (PyTorch's default, spelled out).
PREFETCH_FACTOR = 2


def auto_workers(device_type: str, *, cores: int | None = None, processes: int = 1) -> int:
    """Worker processes for a run on ``device_type`` with ``cores`` CPU cores shared by
    ``processes`` training processes (ranks) on this machine.

    GPU: all the cores but one of a process's share, at most 8. CPU: none up to 4 cores
    (measured on a loaded 2-core machine, Faster R-CNN at 160 px, 24 images: first epoch
    18 s and second 14 s with none, 23 s and 22 s with one worker, 26 s and 21 s with two:
    workers only take cores from the model's own threads), then a quarter, at most 4.

    Example:
        >>> auto_workers("cuda", cores=16, processes=4), auto_workers("cpu", cores=32)
        (3, 4)
    """
    total = cores if cores is not None else (os.cpu_count() or 1)
    share = max(1, total // max(1, processes))
    if device_type == "cuda":
        return max(0, min(MAX_GPU_WORKERS, share - 1))
    return 0 if share <= 4 else min(4, share // 4)


def resolve_workers(setting: int | None, device: torch.device) -> int:
    """``setting`` itself, or :func:`auto_workers` for this machine when it is ``None``.

    Example:
        >>> resolve_workers(3, torch.device("cpu")), resolve_workers(None, torch.device("cpu")) >= 0
        (3, True)
    """
    if setting is not None:
        return int(setting)
    return auto_workers(device.type, processes=distributed.local_world_size())


def _share_cache(worker_id: int) -> None:
    """Worker start: this worker's part of the decoded-image cache budget."""
    info = get_worker_info()
    if info is None:
        return
    dataset = info.dataset
    if hasattr(dataset, "cache_bytes"):
        dataset.cache_bytes = int(dataset.cache_bytes) // max(1, info.num_workers)


def loader_options(workers: int, device: torch.device, *, persistent: bool) -> dict[str, Any]:
    """DataLoader keyword arguments for ``workers`` processes feeding ``device``.

    Example:
        >>> loader_options(0, torch.device("cpu"), persistent=True)
        {'num_workers': 0, 'pin_memory': False}
    """
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        options.update(
            persistent_workers=persistent,
            prefetch_factor=PREFETCH_FACTOR,
            worker_init_fn=_share_cache,
        )
    return options


def train_loader(dataset: Dataset, hp: Hyperparameters, device: torch.device) -> DataLoader:
    """The shuffled training loader of a run (a distributed sampler under torchrun: each rank
    trains on its own share of every epoch).

    Example:
        >>> # loader = train_loader(train_set, Hyperparameters(batch_size=4), torch.device("cpu"))
    """
    workers = resolve_workers(hp.workers, device)
    semantic = getattr(dataset, "task", "") == "semantic_segmentation"
    # a lone image in a batch breaks BatchNorm after global pooling (DeepLabV3)
    per_rank = len(dataset) // distributed.world_size()  # type: ignore[arg-type]
    drop_last = semantic and per_rank > hp.batch_size
    sampler = None
    if distributed.is_active():
        sampler = distributed.EpochSampler(dataset, seed=hp.seed)
    return DataLoader(
        dataset,
        batch_size=hp.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(hp.seed),
        drop_last=drop_last,
        **loader_options(workers, device, persistent=True),
    )


def default_eval_batch(device: torch.device) -> int:
    """Images per evaluation batch: 2 on the CPU (as before), 8 on a GPU (inference takes
    far less memory than training, and a GPU wants full batches).

    Example:
        >>> default_eval_batch(torch.device("cpu"))
        2
    """
    return 8 if device.type == "cuda" else 2


def eval_loader(
    dataset: Dataset,
    batch_size: int | None = None,
    *,
    device: torch.device | None = None,
    workers: int | None = None,
) -> DataLoader:
    """A sequential loader over ``dataset`` (one image per batch for semantic models, whose
    test images keep their own sizes). Under torchrun each rank gets every world-size-th
    image (no padding: every image is scored exactly once).

    Example:
        >>> # loader = eval_loader(SnapshotDataset.from_snapshot(project, snap, image_size=320))
    """
    device = device or torch.device("cpu")
    if batch_size is None:
        batch_size = default_eval_batch(device)
    if getattr(dataset, "task", "") == "semantic_segmentation":
        batch_size = 1
    sampler = distributed.shard(len(dataset)) if distributed.is_active() else None  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        collate_fn=collate,
        # evaluations are short and far apart: workers that lived on would only hold memory
        **loader_options(resolve_workers(workers, device), device, persistent=False),
    )


__all__ = [
    "auto_workers",
    "default_eval_batch",
    "eval_loader",
    "loader_options",
    "resolve_workers",
    "train_loader",
]
