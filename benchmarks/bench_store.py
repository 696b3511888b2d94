"""How the Project store holds up at 100,000 images and 1,000,000 boxes.

Builds a synthetic project through the bulk APIs (no image files: sizes and checksums are
given), then prints:

- open: ``Project.open`` plus the first query (the first page of images); target < 1 s;
- page: one gallery page, ``images(limit=100, ...)`` plus ``annotations_for``: jumps to
  offsets spread over the project, and "next page" by key (``after_id``) from those same
  places; target < 50 ms (p95 of 30 pages each: single pages are at the mercy of the
  machine's other load);
- export: ``export_coco`` of the whole project, as a ratio to ``json.dump`` of the same
  dict (read back from the exported file) into a file, measured in the same run; target
  <= 1.5x. ``json.dumps`` (C encoder, one string) + write is printed as a second, stricter
  baseline.

Run: ``.venv/bin/python benchmarks/bench_store.py [--images N] [--boxes-per-image K]``
(about a minute on 2 cores at the default size).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annowidget.formats import export_coco
from annowidget.store import Project


def _image_rows(count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield {
            "path": f"images/{i // 1000:03d}/{i:06d}.jpg",
            "width": 640,
            "height": 480,
            "checksum": f"{i:040x}",
            "folder": "train" if i % 5 else "test",
            "status": "reviewed",
        }


def _annotation_rows(
    image_ids: list[int], per_image: int, category_ids: list[int], seed: int = 0
) -> Iterator[tuple[int, dict[str, Any]]]:
    rng = random.Random(seed)
    for image_id in image_ids:
        for _ in range(per_image):
            w, h = rng.uniform(4, 300), rng.uniform(4, 300)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            yield (
                image_id,
                {
                    "category_id": rng.choice(category_ids),
                    "bbox": (round(x, 2), round(y, 2), round(w, 2), round(h, 2)),
                    "source": "bench",
                },
            )


def build(root: Path, n_images: int, per_image: int) -> tuple[Project, float]:
    """Create the synthetic project; returns it and the seconds it took."""
    start = time.perf_counter()
    project = Project.create(root / "project", images_root=root)
    categories = [project.add_category(f"class{i:02d}").id for i in range(80)]
    ids = project.add_images_bulk(_image_rows(n_images))
    project.add_annotations_bulk(_annotation_rows(ids, per_image, categories))
    return project, time.perf_counter() - start


def time_open(path: Path) -> float:
    start = time.perf_counter()
    project = Project.open(path)
    project.images(limit=100)
    elapsed = time.perf_counter() - start
    project.close()
    return elapsed


def time_pages(project: Project, n_images: int, pages: int = 30) -> dict[str, list[float]]:
    offsets = [round(i * (n_images - 200) / (pages - 1)) for i in range(pages)]
    times: dict[str, list[float]] = {"offset": [], "next": []}
    for offset in offsets:
        start = time.perf_counter()
        images = project.images(limit=100, offset=offset)
        by_image = project.annotations_for([image.id for image in images])
        times["offset"].append(time.perf_counter() - start)
        start = time.perf_counter()
        following = project.images(limit=100, after_id=images[-1].id)
        project.annotations_for([image.id for image in following])
        times["next"].append(time.perf_counter() - start)
        if len(images) != 100 or len(by_image) != 100 or len(following) != 100:
            raise RuntimeError(f"page at offset {offset} has {len(images)} images")
    return times


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def time_export(project: Project, root: Path) -> dict[str, float]:
    out = root / "export.json"
    start = time.perf_counter()
    counts = export_coco(project, out)
    export_s = time.perf_counter() - start

    with out.open(encoding="utf-8") as handle:
        data = json.load(handle)  # the same dict the export describes
    if len(data["annotations"]) != counts["annotations"]:
        raise RuntimeError("the exported file does not hold every annotation")
    gc.collect()
    start = time.perf_counter()
    with (root / "dump.json").open("w", encoding="utf-8") as handle:
        json.dump(data, handle)
    dump_s = time.perf_counter() - start
    start = time.perf_counter()
    with (root / "dumps.json").open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(data))
    dumps_s = time.perf_counter() - start
    return {"export": export_s, "dump": dump_s, "dumps": dumps_s, **counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--boxes-per-image", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        root = Path(tmp)
        project, build_s = build(root, args.images, args.boxes_per_image)
        n_boxes = args.images * args.boxes_per_image
        print(f"built {args.images:,} images / {n_boxes:,} boxes in {build_s:.1f} s")
        project.close()

        open_s = time_open(root / "project")
        project = Project.open(root / "project")
        pages = time_pages(project, args.images)
        exported = time_export(project, root)
        project.close()

    ratio = exported["export"] / exported["dump"]
    print(f"open (Project.open + first page)   {open_s * 1000:8.1f} ms   target < 1000 ms")
    page_p95 = {}
    for kind, label in (("offset", "jump to an offset"), ("next", "next page (after_id)")):
        ms = [t * 1000 for t in pages[kind]]
        page_p95[kind] = p95(ms)
        print(
            f"page of 100 + annotations, {label:<21}{statistics.median(ms):6.1f} ms median, "
            f"{page_p95[kind]:.1f} ms p95, {max(ms):.1f} ms max   target < 50 ms"
        )
    print(
        f"COCO export ({exported['images']:,} images, {exported['annotations']:,} annotations)"
        f"  {exported['export']:.2f} s"
    )
    print(f"json.dump of the same dict          {exported['dump']:.2f} s")
    print(f"export / json.dump                  {ratio:.2f}x   target <= 1.5x")
    print(
        f"export / (json.dumps + write)       {exported['export'] / exported['dumps']:.2f}x"
        "   (C encoder, stricter baseline)"
    )
    ok = open_s < 1.0 and max(page_p95.values()) < 50 and ratio <= 1.5
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
