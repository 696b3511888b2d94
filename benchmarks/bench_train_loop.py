"""Our training loop vs a bare torchvision loop: time per image, same model, same data.

Ours: ``engine.train_one_epoch`` over the ``SnapshotDataset`` of a project snapshot (decode
cache, v2 transforms, DataLoader, loss checks, a StepEvent per step pushed to a queue as the
Trainer does). Bare: pre-decoded tensors in memory and ``model(images, targets)``,
``loss.backward()``, ``optimizer.step()``. Two identically initialised models take turns,
epoch by epoch, on the same batches (no shuffling, no warm-up, no augmentation: equal work),
so machine load drifts hit both alike. Time is the CPU time of the training thread (with
``--threads 1`` all the work runs on it), so other processes on a shared machine do not skew
the ratio; wall time is printed too. The first epoch of ours decodes the JPEGs and is
reported apart; the ratio compares the following epochs (medians). Target: <= 1.05.

Run: .venv/bin/python benchmarks/bench_train_loop.py [--epochs 4 --image-size 160]
"""

from __future__ import annotations

import argparse
import copy
import queue
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import annowidget
from annowidget.models import build_model
from annowidget.train import engine
from annowidget.train.dataset import SnapshotDataset, collate
from annowidget.train.hyperparameters import Hyperparameters


def bare_epoch(model, optimizer, batches) -> tuple[float, float]:
    """The reference: nothing but torchvision's forward/backward/step on ready tensors."""
    model.train()
    cpu, wall = time.thread_time(), time.perf_counter()
    for images, targets in batches:
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.thread_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per loop (first is cold)")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rois-per-image", type=int, default=128)
    parser.add_argument("--base", default="fasterrcnn_mobilenet_v3_large_320_fpn")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    workdir = Path(tempfile.mkdtemp(prefix="bench-train-loop-"))
    project = annowidget.sample_project(workdir / "sample")
    snapshot = project.snapshot("train")
    dataset = SnapshotDataset.from_snapshot(
        project, snapshot, image_size=args.image_size, train=True, augment=False
    )
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, collate_fn=collate)
    # The bare loop gets exactly the tensors ours produces, decoded and resized in advance.
    ready = SnapshotDataset.from_snapshot(project, snapshot, image_size=args.image_size)
    batches = list(DataLoader(ready, batch_size=args.batch_size, collate_fn=collate))
    images = len(dataset)

    torch.manual_seed(0)
    kwargs = {
        "pretrained": False,
        "min_size": args.image_size,
        "max_size": dataset.max_size,
        "rois_per_image": args.rois_per_image,
    }
    ours_model = build_model(args.base, 2, **kwargs)
    bare_model = copy.deepcopy(ours_model)
    hp = Hyperparameters(learning_rate=0.005, warmup_iters=0)
    ours_opt = engine.make_optimizer(ours_model, hp)
    bare_opt = engine.make_optimizer(bare_model, hp)
    events: queue.Queue = queue.Queue()

    ours_cpu, ours_wall, bare_cpu, bare_wall = [], [], [], []
    for epoch in range(1, args.epochs + 1):
        cpu, wall = time.thread_time(), time.perf_counter()
        result = engine.train_one_epoch(
            ours_model, ours_opt, loader, torch.device("cpu"), epoch,
            warmup_iters=0, on_step=events.put,
        )  # fmt: skip
        ours_cpu.append(time.thread_time() - cpu)
        ours_wall.append(time.perf_counter() - wall)
        assert result.completed
        cpu_time, wall_time = bare_epoch(bare_model, bare_opt, batches)
        bare_cpu.append(cpu_time)
        bare_wall.append(wall_time)
        print(
            f"epoch {epoch}: ours {ours_cpu[-1] / images * 1000:.1f} ms/image "
            f"(wall {ours_wall[-1] / images * 1000:.1f}), "
            f"bare {bare_cpu[-1] / images * 1000:.1f} ms/image "
            f"(wall {bare_wall[-1] / images * 1000:.1f})"
        )
    print(f"model {args.base}, {images} images at {args.image_size} px, batch {args.batch_size}")
    print(f"first epoch (JPEG decoding included): {ours_cpu[0] / bare_cpu[0]:.3f} x bare")
    warm_ours, warm_bare = statistics.median(ours_cpu[1:]), statistics.median(bare_cpu[1:])
    wall_ratio = statistics.median(ours_wall[1:]) / statistics.median(bare_wall[1:])
    print(
        f"ours / bare time per image: {warm_ours / warm_bare:.3f} "
        f"({warm_ours / images * 1000:.1f} vs {warm_bare / images * 1000:.1f} ms CPU; "
        f"wall-time ratio {wall_ratio:.3f}; target <= 1.05)"
    )


if __name__ == "__main__":
    main()
