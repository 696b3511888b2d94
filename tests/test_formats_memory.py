"""A COCO file of millions of bad items: a bounded report, a refusal before memory runs out."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from annowidget.formats import import_coco
from annowidget.formats._memory import json_memory_needed
from annowidget.store import Project

ROOT = Path(__file__).parents[1]


def empty_items(path: Path, count: int) -> Path:
    """A COCO file whose annotations are ``count`` empty objects (3 bytes each)."""
    path.write_text(
        '{"images":[],"categories":[],"annotations":[' + ",".join(["{}"] * count) + "]}"
    )
    return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.png")
    with Project.create(tmp_path / "p", images_root=images) as project:
        yield project


def test_the_report_keeps_a_count_and_the_first_examples_not_every_item(
    project: Project, tmp_path: Path
) -> None:
    source = empty_items(tmp_path / "empty.json", 200_000)
    tracemalloc.start()
    try:
        report = import_coco(project, source)
        kept, _peak = tracemalloc.get_traced_memory()  # what is still alive: the report
    finally:
        tracemalloc.stop()
    # A tuple and two strings per item would be ~40 MB for 200,000 items.
    assert kept < 2_000_000, f"{kept / 1e6:.1f} MB still held after the import"
    assert report.skipped_count == 200_000
    assert len(report.skipped) == report.EXAMPLES
    assert report.skipped[0] == ("annotations[0]", "missing 'id'")
    assert not report.ok
    lines = report.summary().splitlines()
    assert lines[1] == "200000 items skipped:"
    assert lines[-1] == "  ... and 199980 more"


def test_the_memory_estimate_covers_what_json_loads_takes() -> None:
    import json

    for data in (b'{"a":[' + b",".join([b"{}"] * 50_000) + b"]}", b"[" + b"1.5," * 50_000 + b"1]"):
        tracemalloc.start()
        try:
            value = json.loads(data)
            taken, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        del value
        assert taken <= json_memory_needed(data) <= 2 * taken


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux")
def test_a_file_too_big_for_memory_is_refused_in_one_line(tmp_path: Path) -> None:
    """Under a 256 MB allowance a 12 MB file of empty items (~400 MB parsed) is refused up
    front, where json.loads would have died with MemoryError halfway."""
    source = empty_items(tmp_path / "huge.json", 4_000_000)
    images = tmp_path / "images"
    images.mkdir()
    script = textwrap.dedent(
        f"""
        import os, resource, sys
        from annowidget.formats import FormatError, import_coco
        from annowidget.store import Project
        project = Project.create({str(tmp_path / "p")!r}, images_root={str(images)!r})
        used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), resource.RLIM_INFINITY))
        try:
            import_coco(project, {str(source)!r})
        except FormatError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout.startswith(f"{source}: reading this 11 MiB file takes about ")
    assert "is free; split the file or free memory" in done.stdout
