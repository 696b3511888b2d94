"""Smart prediction overhead: ``predict_images`` against a bare forward pass, same run.

Both sides use the same model (offline Faster R-CNN MobileNetV2 FPN, ImageNet backbone when
the offline weights package is installed), the same images, batch size, score cut-off and
precision:

- forward: ``model.eval()`` under ``torch.inference_mode`` on images decoded beforehand and
  already on the device (decoding and copying are not timed) — the floor any prediction loop
  pays;
- predict: ``predict_images`` end to end: decoding (threads ahead of the model, pinned memory
  on CUDA), inference, conversion to annotations and SQLite writes of every prediction, report.

Prints the ratio predict / forward (target <= 1.05) and images/s; with ``--precision`` other
than fp32 both sides also run in fp32 and the speed-up is printed; on CUDA the peak GPU memory.
The score threshold is low (0.05) so that the random head writes ~100 boxes per image: the
write path is exercised at its worst. Needs only torch, torchvision, pycocotools and the
project on PYTHONPATH.

Run: ``.venv/bin/python benchmarks/bench_predict.py [--images N] [--threads T]``
GPU: ``python benchmarks/bench_predict.py --device cuda --precision bf16 --images 40``
Uses ../shared/data/raccoon/images when present, else the 40 raccoon images bundled with the
package (and synthetic 640x480 JPEGs beyond those).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

RACCOON = Path(__file__).resolve().parents[2] / "shared" / "data" / "raccoon" / "images"


def _images_root(workdir: Path, count: int) -> tuple[Path, list[Path]]:
    from annowidget.sample import SAMPLE_DIR

    for folder in (RACCOON, SAMPLE_DIR / "images"):
        if folder.is_dir():
            files = sorted(folder.glob("*.jpg"))[:count]
            if len(files) == count:
                return folder, files
    root = workdir / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        path = root / f"synthetic-{i:03d}.jpg"
        PILImage.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path)
        files.append(path)
    return root, files


def _clock(device: torch.device) -> tuple[float, float]:
    # wall time, and CPU time of the whole process (all threads): on a shared machine the
    # CPU ratio is the steadier one, the wall ratio is what a user waits
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float], device: torch.device) -> tuple[float, float]:
    wall, cpu = _clock(device)
    return wall - start[0], cpu - start[1]


def _time_forward(model, tensors, batch_size, threshold, autocast, device) -> tuple[float, float]:
    model.roi_heads.score_thresh = threshold
    start = _clock(device)
    with torch.inference_mode():
        for i in range(0, len(tensors), batch_size):
            with autocast():
                model(tensors[i : i + batch_size])
    return _since(start, device)


def measure(args, project, loaded, card, tensors, precision: str, device) -> dict:
    """Forward and predict_images, interleaved ``--repeats`` times, in ``precision``."""
    from annowidget.models import predict_images
    from annowidget.train.precision import autocast_for

    autocast = autocast_for(precision, device)
    kwargs = {
        "threshold": args.threshold,
        "batch_size": args.batch_size,
        "device": device,
        "precision": precision,
        "workers": args.workers,
    }
    predict_images(project, (loaded, card), image_ids=[1], **kwargs)  # warm-up
    _time_forward(
        loaded, tensors[: args.batch_size], args.batch_size, args.threshold, autocast, device
    )
    forward, predict, report = [], [], None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.repeats):  # interleaved, so load changes hit both sides alike
        forward.append(
            _time_forward(loaded, tensors, args.batch_size, args.threshold, autocast, device)
        )
        start = _clock(device)
        report = predict_images(project, (loaded, card), **kwargs)
        predict.append(_since(start, device))
    memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"forward": forward, "predict": predict, "report": report, "memory": memory}


def summary(name: str, result: dict, n: int) -> float:
    """Print one precision's figures; returns predict_images' images/s (wall)."""
    report = result["report"]
    per_image = report.predictions / n
    print(f"[{name}] predictions written: {report.predictions} ({per_image:.0f} per image)")
    for index, what in enumerate(("wall", "cpu")):
        best_forward = min(f[index] for f in result["forward"])
        best_predict = min(p[index] for p in result["predict"])
        print(
            f"[{name}] {what:4s} forward only {best_forward:6.2f} s "
            f"({best_forward / n * 1000:5.0f} ms/img)  predict_images {best_predict:6.2f} s "
            f"({best_predict / n * 1000:5.0f} ms/img)  ratio {best_predict / best_forward:.3f}"
            "  (target <= 1.05)"
        )
    rate = n / min(p[0] for p in result["predict"])
    forward_rate = n / min(f[0] for f in result["forward"])
    print(f"[{name}] images/s (wall): predict_images {rate:.1f}, forward {forward_rate:.1f}")
    if result["memory"] is not None:
        print(f"[{name}] peak GPU memory: {result['memory'] / (1 << 30):.2f} GiB")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, help="torch threads (default: 1 on the CPU)")
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"),
        help="inference precision to measure against fp32 (default: fp32 alone)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, help="decoding threads (default: auto)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["TORCH_HOME"] = str(workdir / "torch")  # never touch the user's cache
        os.environ["ANNOWIDGET_OFFLINE"] = "1"
        from annowidget.models import ModelCard, ModelRegistry, build_model
        from annowidget.models.weights import offline_weights_source
        from annowidget.store import Project
        from annowidget.store.images import decode_for_model
        from annowidget.train.engine import resolve_device
        from annowidget.train.precision import choose_precision

        device = resolve_device(args.device)
        if args.threads is not None or device.type == "cpu":
            torch.set_num_threads(args.threads or 1)
        capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
        chosen = choose_precision(args.precision, device.type, capability)

        images_root, files = _images_root(workdir, args.images)
        project = Project.create(workdir / "proj", images_root=images_root)
        project.add_category("raccoon")
        for path in files:
            project.add_image(path)

        base = "fasterrcnn_mobilenet_v2_fpn"
        pretrained = offline_weights_source() is not None
        torch.manual_seed(0)
        model = build_model(base, 2, pretrained=pretrained).eval()
        card = ModelCard(
            "bench", "detection", base, ["raccoon"], status="finished",
            model_config={"num_classes": 2},
        )  # fmt: skip
        registry = ModelRegistry(project)
        registry.reserve("bench", card)
        registry.save_weights("bench", model.state_dict())
        loaded, card = registry.load("bench", device=device)

        paths = [project.image_path(image) for image in project.images()]
        tensors = [decode_for_model(p).to(device).float().div_(255) for p in paths]
        names = ["fp32"] if chosen == "fp32" else ["fp32", chosen]
        results = {
            name: measure(args, project, loaded, card, tensors, name, device) for name in names
        }
        project.close()

    n = len(tensors)
    print(
        f"images: {n} from {images_root}  device: {device}  threads: {torch.get_num_threads()}  "
        f"backbone: {'ImageNet' if pretrained else 'random'}  batch: {args.batch_size}"
    )
    rates = {name: summary(name, results[name], n) for name in names}
    if chosen != "fp32":
        speedup = rates[chosen] / rates["fp32"]
        print(f"{chosen} speed-up over fp32 (predict_images images/s): {speedup:.2f}x")


if __name__ == "__main__":
    main()
