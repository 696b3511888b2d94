"""A killed process keeps every edit that had returned; readers see consistent snapshots
(on SQLite and on PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from annowidget.store import Project

EDITOR = textwrap.dedent(
    """
    import sys
    from annowidget.store import Project

    project = Project.open(sys.argv[1])
    category = project.category("raccoon")
    image = project.images()[0]
    for i in range(100_000):
        box = project.add_annotation(image.id, category.id, [i, i, 10, 10])
        project.update_annotation(box.id, bbox=[i, i, 20, 20])
        # Only now has the edit returned to the caller: report it.
        print(box.id, flush=True)
    """
)

READER = textwrap.dedent(
    """
    import sys
    from annowidget.store import Project

    project = Project.open(sys.argv[1])
    # Every box is written as 10x10 and then widened to 20x20 in a separate commit; the
    # invariant a reader must never break is seeing a snapshot older than a previous one.
    last = 0
    for _ in range(300):
        snapshot = project.snapshot()
        boxes = [a for _, anns in snapshot.items for a in anns]
        assert len(boxes) >= last, (len(boxes), last)
        assert all(a.bbox[2] in (10.0, 20.0) for a in boxes)
        last = len(boxes)
    print("ok", last, flush=True)
    """
)


def make_project(tmp_path: Path, db: str | None = None) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images, db=db) as project:
        project.add_category("raccoon")
        project.add_image("a.jpg", width=1000, height=1000, checksum="x")
    return tmp_path / "proj"


def test_sigkill_mid_way_keeps_every_returned_edit(tmp_path: Path, backend_db: str | None) -> None:
    root = make_project(tmp_path, backend_db)
    child = subprocess.Popen(
        [sys.executable, "-c", EDITOR, str(root)], stdout=subprocess.PIPE, text=True
    )
    returned: list[int] = []
    assert child.stdout is not None
    for line in child.stdout:
        returned.append(int(line))
        if len(returned) >= 150:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    with Project.open(root) as project:
        stored = {a.id: a for a in project.annotations()}
        missing = [i for i in returned if i not in stored]
        assert missing == []
        # The update of each returned box had committed too.
        assert all(stored[i].bbox[2] == 20 for i in returned)
        assert project.db_path.stat().st_size > 0
        assert project.info()["annotations"] >= len(returned)


def test_a_second_process_reads_consistent_snapshots_while_one_writes(
    tmp_path: Path, backend_db: str | None
) -> None:
    root = make_project(tmp_path, backend_db)
    writer = subprocess.Popen(
        [sys.executable, "-c", EDITOR, str(root)],
        stdout=subprocess.DEVNULL,
    )
    try:
        reader = subprocess.run(
            [sys.executable, "-c", READER, str(root)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        writer.kill()
        writer.wait()
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.startswith("ok")
