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
(about a minute on 2 cores at the default size). With ``--db postgresql://...`` (an empty
database) the same project is also built on that PostgreSQL server and both backends are
measured in the same run, printed side by side.
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


def build(
    root: Path, n_images: int, per_image: int, db: str | None = None
) -> tuple[Project, float]:
    """Create the synthetic project; returns it and the seconds it took."""
    start = time.perf_counter()
    project = Project.create(root / "project", images_root=root, db=db)
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


def measure(root: Path, n_images: int, per_image: int, db: str | None) -> dict[str, Any]:
    """Build the project on one backend and time open, pages and export."""
    project, build_s = build(root, n_images, per_image, db)
    project.close()
    open_s = time_open(root / "project")
    project = Project.open(root / "project")
    pages = time_pages(project, n_images)
    exported = time_export(project, root)
    project.close()
    return {"build": build_s, "open": open_s, "pages": pages, **exported}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--boxes-per-image", type=int, default=10)
    parser.add_argument(
        "--db", default=None, help="postgresql://... (an empty database): measure it too"
    )
    args = parser.parse_args(argv)
    runs: dict[str, dict[str, Any]] = {}
    for name, db in (("SQLite", None), ("PostgreSQL", args.db)):
        if name == "PostgreSQL" and db is None:
            continue
        with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
            runs[name] = measure(Path(tmp), args.images, args.boxes_per_image, db)
    n_boxes = args.images * args.boxes_per_image
    names = list(runs)
    title = f"{args.images:,} images / {n_boxes:,} boxes"
    print(f"{title:<58}" + "".join(f"{n:>14}" for n in names))

    def row(label: str, values: list[str], target: str = "") -> None:
        print(f"{label:<58}" + "".join(f"{v:>14}" for v in values) + f"   {target}")

    row("build (bulk inserts)", [f"{runs[n]['build']:.1f} s" for n in names])
    row(
        "open (Project.open + first page)",
        [f"{runs[n]['open'] * 1000:.1f} ms" for n in names],
        "target < 1000 ms",
    )
    ok = True
    for kind, label in (("offset", "jump to an offset"), ("next", "next page (after_id)")):
        cells = []
        for n in names:
            ms = [t * 1000 for t in runs[n]["pages"][kind]]
            cells.append(f"{statistics.median(ms):.1f}/{p95(ms):.1f}")
            ok &= p95(ms) < 50
        row(f"page of 100 + boxes, {label}, median/p95 ms", cells, "target p95 < 50 ms")
    row("COCO export", [f"{runs[n]['export']:.2f} s" for n in names])
    row("json.dump of the same dict", [f"{runs[n]['dump']:.2f} s" for n in names])
    ratios = [runs[n]["export"] / runs[n]["dump"] for n in names]
    row("export / json.dump", [f"{r:.2f}x" for r in ratios], "target <= 1.5x")
    row(
        "export / (json.dumps + write)",
        [f"{runs[n]['export'] / runs[n]['dumps']:.2f}x" for n in names],
        "(C encoder, stricter baseline)",
    )
    ok &= all(runs[n]["open"] < 1.0 for n in names) and all(r <= 1.5 for r in ratios)
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
