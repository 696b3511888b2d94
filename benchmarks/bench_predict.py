"""Smart prediction overhead: ``predict_images`` against a bare forward pass, same run.

Both sides use the same model (offline Faster R-CNN MobileNetV2 FPN, ImageNet backbone when
the offline weights package is installed), the same images, batch size and score cut-off:

- forward: ``model.eval()`` under ``torch.inference_mode`` on images decoded beforehand
  (decoding is not timed) — the floor any prediction loop pays;
- predict: ``predict_images`` end to end: decoding (overlapped in a thread), inference,
  conversion to annotations and SQLite writes of every prediction, report.

Prints the ratio predict / forward; target <= 1.05. The score threshold is low (0.05) so
that the random head writes ~100 boxes per image: the write path is exercised at its worst.

Run: ``.venv/bin/python benchmarks/bench_predict.py [--images N] [--threads T]``
Uses ../shared/data/raccoon/images when present, else synthetic 640x480 JPEGs.
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
    if RACCOON.is_dir():
        files = sorted(RACCOON.glob("*.jpg"))[:count]
        if len(files) == count:
            return RACCOON, files
    root = workdir / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        path = root / f"synthetic-{i:03d}.jpg"
        PILImage.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path)
        files.append(path)
    return root, files


def _clock() -> tuple[float, float]:
    # wall time, and CPU time of the whole process (all threads): on a shared machine the
    # CPU ratio is the steadier one, the wall ratio is what a user waits
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _time_forward(model, tensors, batch_size, threshold) -> tuple[float, float]:
    model.roi_heads.score_thresh = threshold
    start = _clock()
    with torch.inference_mode():
        for i in range(0, len(tensors), batch_size):
            model(tensors[i : i + batch_size])
    return _since(start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["TORCH_HOME"] = str(workdir / "torch")  # never touch the user's cache
        os.environ["ANNOWIDGET_OFFLINE"] = "1"
        from annowidget.models import ModelCard, ModelRegistry, build_model, predict_images
        from annowidget.models.weights import offline_weights_source
        from annowidget.store import Project
        from annowidget.store.images import decode_for_model

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
        loaded, card = registry.load("bench")

        paths = [project.image_path(image) for image in project.images()]
        tensors = [decode_for_model(p).float().div_(255) for p in paths]
        kwargs = {"threshold": args.threshold, "batch_size": args.batch_size}
        predict_images(project, (loaded, card), image_ids=[1], **kwargs)  # warm-up
        _time_forward(loaded, tensors[:1], 1, args.threshold)

        forward, predict, report = [], [], None
        for _ in range(args.repeats):  # interleaved, so load changes hit both sides alike
            forward.append(_time_forward(loaded, tensors, args.batch_size, args.threshold))
            start = _clock()
            report = predict_images(project, (loaded, card), **kwargs)
            predict.append(_since(start))
        project.close()

    assert report is not None
    n = len(tensors)
    print(f"images: {n} from {images_root}  threads: {args.threads}  backbone: "
          f"{'ImageNet' if pretrained else 'random'}  batch: {args.batch_size}")  # fmt: skip
    print(f"predictions written: {report.predictions} ({report.predictions / n:.0f} per image)")
    for index, what in enumerate(("wall", "cpu")):
        best_forward = min(f[index] for f in forward)
        best_predict = min(p[index] for p in predict)
        print(
            f"{what:4s} forward only {best_forward:6.2f} s ({best_forward / n * 1000:5.0f} ms/img)"
            f"  predict_images {best_predict:6.2f} s ({best_predict / n * 1000:5.0f} ms/img)"
            f"  ratio {best_predict / best_forward:.3f}  (target <= 1.05)"
        )


if __name__ == "__main__":
    main()
