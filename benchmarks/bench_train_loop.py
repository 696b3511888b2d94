"""Our training loop vs a bare torchvision loop: time per image, same model, same data.

Ours: ``engine.train_one_epoch`` over the ``SnapshotDataset`` of a project snapshot, through
the run's own DataLoader settings (``loader.loader_options``: worker processes sized to the
machine, pinned memory and asynchronous copies on CUDA), loss checks, a StepEvent per step
pushed to a queue as the Trainer does, and the precision's autocast/GradScaler. Bare:
pre-decoded tensors already on the device and ``model(images, targets)``,
``loss.backward()``, ``optimizer.step()`` (under the same ``torch.autocast`` and, for fp16,
a GradScaler). Two identically initialised models take turns, epoch by epoch, on the same
batches (no shuffling, no warm-up, no augmentation: equal work), so load drifts hit both alike.

Time: on the CPU the CPU time of the training thread (with ``--threads 1`` all the model's
work runs on it), so other processes on a shared machine do not skew the ratio; on CUDA the
wall time, synchronised at epoch ends. The first epoch of ours decodes the JPEGs and is
reported apart; the ratio compares the following epochs (medians). Target: <= 1.05.

With a mixed precision (``--precision bf16``/``fp16``/``auto`` on a GPU that has bf16), both
loops also run in fp32 and the speed-up over fp32 is printed; on CUDA, the peak GPU memory of
each loop too. Needs only torch, torchvision, pycocotools and the project on PYTHONPATH.

Run (CPU): .venv/bin/python benchmarks/bench_train_loop.py [--epochs 4 --image-size 160]
Run (GPU): python benchmarks/bench_train_loop.py --device cuda --precision bf16 \\
    --base fasterrcnn_mobilenet_v2_fpn --image-size 512 --repeat 4
"""

from __future__ import annotations

import argparse
import contextlib
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
from annowidget.train.loader import loader_options, resolve_workers
from annowidget.train.precision import MixedPrecision, resolve_precision


class Clock:
    """CPU time of this thread on the CPU; synchronised wall time on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return time.perf_counter()
        return time.thread_time()


def bare_epoch(model, optimizer, batches, amp: MixedPrecision, clock: Clock) -> tuple[float, float]:
    """The reference: nothing but torchvision's forward/backward/step on ready tensors."""
    model.train()
    scaler = torch.amp.GradScaler("cuda") if amp.name == "fp16" else None
    autocast = (
        torch.autocast(amp.device_type, dtype=amp.dtype)
        if amp.dtype is not None
        else contextlib.nullcontext()
    )
    start, wall = clock.now(), time.perf_counter()
    for images, targets in batches:
        with autocast:
            losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    return clock.now() - start, time.perf_counter() - wall


def _on(device: torch.device, batch):
    images, targets = batch
    images = [image.to(device) for image in images]
    targets = [
        {k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets
    ]
    return images, targets


def run_loops(args, dataset, batches, device, amp: MixedPrecision) -> dict:
    """Ours and bare, interleaved epoch by epoch, in precision ``amp``; times per epoch."""
    clock = Clock(device)
    workers = resolve_workers(args.workers, device)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=False,
        collate_fn=collate,
        **loader_options(workers, device, persistent=True),
    )
    torch.manual_seed(0)
    kwargs = {
        "pretrained": False,
        "min_size": args.image_size,
        "max_size": dataset.max_size,
        "rois_per_image": args.rois_per_image,
    }
    ours_model = build_model(args.base, 2, **kwargs).to(device)
    bare_model = copy.deepcopy(ours_model)
    hp = Hyperparameters(learning_rate=0.005, warmup_iters=0)
    ours_opt = engine.make_optimizer(ours_model, hp)
    bare_opt = engine.make_optimizer(bare_model, hp)
    events: queue.Queue = queue.Queue()
    out = {"ours": [], "ours_wall": [], "bare": [], "bare_wall": [], "workers": workers}
    images = len(dataset)
    for epoch in range(1, args.epochs + 1):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start, wall = clock.now(), time.perf_counter()
        result = engine.train_one_epoch(
            ours_model, ours_opt, loader, device, epoch,
            warmup_iters=0, on_step=events.put, precision=amp,
        )  # fmt: skip
        out["ours"].append(clock.now() - start)
        out["ours_wall"].append(time.perf_counter() - wall)
        assert result.completed
        if device.type == "cuda":
            out["ours_memory"] = torch.cuda.max_memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        spent, wall = bare_epoch(bare_model, bare_opt, batches, amp, clock)
        out["bare"].append(spent)
        out["bare_wall"].append(wall)
        if device.type == "cuda":
            out["bare_memory"] = torch.cuda.max_memory_allocated(device)
        print(
            f"[{amp.name}] epoch {epoch}: ours {out['ours'][-1] / images * 1000:.1f} ms/image "
            f"(wall {out['ours_wall'][-1] / images * 1000:.1f}), "
            f"bare {out['bare'][-1] / images * 1000:.1f} ms/image "
            f"(wall {out['bare_wall'][-1] / images * 1000:.1f})",
            flush=True,
        )
    return out


def summary(name: str, out: dict, images: int, device: torch.device) -> tuple[float, float]:
    """Print one precision's figures; returns the warm images/s of ours and bare."""
    what = "CPU" if device.type == "cpu" else "wall"
    warm_ours, warm_bare = statistics.median(out["ours"][1:]), statistics.median(out["bare"][1:])
    wall_ratio = statistics.median(out["ours_wall"][1:]) / statistics.median(out["bare_wall"][1:])
    cold = out["ours"][0] / out["bare"][0]
    print(f"[{name}] first epoch (JPEG decoding included): {cold:.3f} x bare")
    print(
        f"[{name}] ours / bare time per image: {warm_ours / warm_bare:.3f} "
        f"({warm_ours / images * 1000:.1f} vs {warm_bare / images * 1000:.1f} ms {what}; "
        f"wall-time ratio {wall_ratio:.3f}; target <= 1.05)"
    )
    ours_rate = images / statistics.median(out["ours_wall"][1:])
    bare_rate = images / statistics.median(out["bare_wall"][1:])
    print(f"[{name}] images/s (wall): ours {ours_rate:.1f}, bare {bare_rate:.1f}")
    if device.type == "cuda":
        gib = 1 << 30
        print(
            f"[{name}] peak GPU memory: ours {out['ours_memory'] / gib:.2f} GiB, "
            f"bare {out['bare_memory'] / gib:.2f} GiB"
        )
    return ours_rate, bare_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per loop (first is cold)")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rois-per-image", type=int, default=128)
    parser.add_argument("--base", default="fasterrcnn_mobilenet_v3_large_320_fpn")
    parser.add_argument("--threads", type=int, help="torch threads (default: 1 on the CPU)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"),
        help="mixed precision to measure against fp32 (default: fp32 alone)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: auto)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="each image this many times per epoch (GPU: 4+)"
    )
    args = parser.parse_args()
    device = engine.resolve_device(args.device)
    if args.threads is not None or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    amp = resolve_precision(args.precision, device)

    workdir = Path(tempfile.mkdtemp(prefix="bench-train-loop-"))
    if args.repeat == 1:  # the historical setting: the sample's 24 training images
        project = annowidget.sample_project(workdir / "sample")
        snapshot = project.snapshot("train")
    else:  # all 40 labelled images of the sample, each taken --repeat times
        project = annowidget.sample_project(workdir / "sample", labeled=40)
        snapshot = project.snapshot(["train", "test"])
    items = list(snapshot.items) * args.repeat
    paths = [project.image_path(image) for image, _ in items]
    common = {"image_size": args.image_size}
    dataset = SnapshotDataset(
        items, paths, snapshot.categories, train=True, augment=False, **common
    )
    # The bare loop gets exactly the tensors ours produces, decoded, resized, on the device.
    ready = SnapshotDataset(items, paths, snapshot.categories, **common)
    loader = DataLoader(ready, batch_size=args.batch_size, collate_fn=collate)
    batches = [_on(device, batch) for batch in loader]
    images = len(dataset)

    names = ["fp32"] if amp.name == "fp32" else ["fp32", amp.name]
    results = {}
    for name in names:
        results[name] = run_loops(args, dataset, batches, device, MixedPrecision(name, device))
    print(
        f"model {args.base}, {images} images at {args.image_size} px, batch {args.batch_size}, "
        f"device {device}, workers {results['fp32']['workers']}"
    )
    rates = {name: summary(name, results[name], images, device) for name in names}
    if amp.name != "fp32":
        ours, bare = rates[amp.name][0] / rates["fp32"][0], rates[amp.name][1] / rates["fp32"][1]
        print(f"{amp.name} speed-up over fp32 (images/s): ours {ours:.2f}x, bare {bare:.2f}x")


if __name__ == "__main__":
    main()
