"""Nothing lost in the store: per-image imports, short write locks, clean names and errors.

Each test reproduces a case the adversarial run found (issue 15); the ones about kills and
two processes run real subprocesses against a real SQLite file (and, where the test is not
about the file, a real PostgreSQL server too).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import unicodedata
from pathlib import Path

import pytest
from annowidget_permissions import AS_A_USER

import annowidget
from annowidget.formats import export_voc, import_voc, import_yolo
from annowidget.store import Project, ProjectError
from annowidget.widgets._edit_history import EditHistory

DATA = Path(__file__).parents[1].parent / "shared" / "data"
RACCOON = DATA / "raccoon"
IMAGES = DATA / "coco128" / "images" / "train2017"
LABELS = DATA / "coco128" / "object_detection" / "labels" / "train2017"
CONFIG = DATA / "coco128" / "object_detection" / "config.yaml"
needs_data = pytest.mark.skipif(
    not (LABELS.is_dir() and RACCOON.is_dir()), reason=f"no datasets under {DATA}"
)
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as connection:
        return int(connection.execute(sql).fetchone()[0])


def voc_subset(tmp_path: Path, n: int) -> Path:
    xml = tmp_path / "xml"
    xml.mkdir()
    for path in sorted((RACCOON / "annotations").glob("*.xml"))[:n]:
        shutil.copy(path, xml)
    return xml


# ------------------------------------------------------------------ 1. per-image imports
@needs_data
def test_kill_9_during_a_yolo_import_leaves_no_reviewed_image_without_its_boxes(
    tmp_path: Path,
) -> None:
    Project.create(tmp_path / "p", images_root=IMAGES).close()
    db = tmp_path / "p" / "project.sqlite"
    importer = spawn(
        """
        import sys
        from annowidget.formats import import_yolo
        from annowidget.store import Project
        with Project.open(sys.argv[1]) as project:
            import_yolo(project, sys.argv[2], images_dir=sys.argv[3], classes=sys.argv[4])
        """,
        tmp_path / "p",
        LABELS,
        IMAGES,
        CONFIG,
    )
    deadline = time.monotonic() + 120
    while importer.poll() is None and time.monotonic() < deadline:
        try:
            if count(db, "SELECT COUNT(*) FROM images"):
                break  # the first images are committed: kill it right there
        except sqlite3.OperationalError:
            pass
        time.sleep(0.001)
    importer.send_signal(signal.SIGKILL)
    importer.wait()

    lines = {
        p.relative_to(LABELS).with_suffix(".jpg").as_posix(): sum(
            1 for line in p.read_text().splitlines() if line.strip()
        )
        for p in LABELS.glob("*.txt")
    }
    with Project.open(tmp_path / "p") as project:
        for image in project.images(status="reviewed"):
            assert len(project.annotations(image.id)) == lines[image.path], image.path
        # running the import again completes it, and stores nothing twice
        report = import_yolo(project, LABELS, images_dir=IMAGES, classes=CONFIG)
        assert report.skipped == []
        assert project.count_images() == 128
        assert len(project.annotations()) == 929
        import_yolo(project, LABELS, images_dir=IMAGES, classes=CONFIG)
        assert len(project.annotations()) == 929


@needs_data
def test_a_voc_file_with_a_nan_box_leaves_the_other_images_complete(tmp_path: Path) -> None:
    xml = voc_subset(tmp_path, 3)
    bad = sorted(xml.glob("*.xml"))[1]
    text = bad.read_text()
    start = text.index("<xmin>") + len("<xmin>")
    bad.write_text(text[:start] + "nan" + text[text.index("</xmin>") :])
    with Project.create(tmp_path / "p", images_root=RACCOON / "images") as project:
        report = import_voc(project, xml)
        assert any(bad.name in item for item, _ in report.skipped)
        reviewed = project.images(status="reviewed")
        assert len(reviewed) == 2
        for image in reviewed:
            assert project.annotations(image.id), image.path
        assert all(project.annotations(i.id) for i in project.images() if i.status == "reviewed")


@needs_data
def test_an_image_whose_objects_were_all_skipped_is_not_a_reviewed_negative(
    tmp_path: Path,
) -> None:
    xml = voc_subset(tmp_path, 2)
    bad = sorted(xml.glob("*.xml"))[0]
    text = bad.read_text()
    bad.write_text(text.replace("<name>raccoon</name>", "<name></name>"))
    with Project.create(tmp_path / "p", images_root=RACCOON / "images") as project:
        import_voc(project, xml)
        statuses = {Path(i.path).stem: i.status for i in project.images()}
        assert statuses[bad.stem] != "reviewed"
        assert sorted(statuses.values()) == ["reviewed", "unlabeled"]


@needs_data
def test_two_overlapping_imports_of_one_file_store_every_box_once(tmp_path: Path) -> None:
    xml = voc_subset(tmp_path, 30)
    expected = sum(p.read_text().count("<object>") for p in xml.glob("*.xml"))
    Project.create(tmp_path / "p", images_root=RACCOON / "images").close()
    script = """
        import sys, time
        from annowidget.formats import import_voc
        from annowidget.store import Project
        with Project.open(sys.argv[1]) as project:
            time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # start together
            import_voc(project, sys.argv[2])
        """
    start = time.time() + 2.0
    runs = [spawn(script, tmp_path / "p", xml, start) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    with Project.open(tmp_path / "p") as project:
        assert project.count_images() == 30
        assert len(project.annotations()) == expected


# ------------------------------------------------------------------ 2. short write locks
def test_another_writer_commits_while_a_big_import_runs(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with Project.create(tmp_path / "p", images_root=tmp_path / "images") as project:
        project.add_category("box")
    db = tmp_path / "p" / "project.sqlite"
    importer = spawn(
        """
        import sys, time
        from annowidget.store import ImportItem, Project
        with Project.open(sys.argv[1]) as project:
            boxes = [{"category_id": 1, "bbox": [i, i, 5, 5]} for i in range(4)]
            items = (
                ImportItem(f"{i}.jpg", 100, 100, status="reviewed", annotations=boxes)
                for i in range(150_000)
            )
            for _ in project.import_images(items):
                pass
        """,
        tmp_path / "p",
    )
    while not count(db, "SELECT COUNT(*) FROM images") and importer.poll() is None:
        time.sleep(0.01)
    waits = []
    with Project.open(tmp_path / "p") as project:
        for i in range(5):
            if importer.poll() is not None:
                break
            start = time.monotonic()
            project.log_action("probe", payload={"i": i})
            waits.append(time.monotonic() - start)
    importer.kill()
    importer.wait()
    assert waits, "the import ended before another writer could try"
    assert max(waits) < 3.0, waits  # the busy timeout is 10 s; one import chunk is ~0.5 s


# ------------------------------------------------------------------ 3. category names
def test_category_names_are_one_line_and_nfc(project_root: Path) -> None:
    with Project.open(project_root) as project:
        for bad in ("traffic\nlight", "a\tb", "bell\x07", "line\u2028break"):
            with pytest.raises(ProjectError, match="control character"):
                project.add_category(bad)
        composed = project.add_category(unicodedata.normalize("NFC", "café"))
        decomposed = project.add_category(unicodedata.normalize("NFD", "café"))
        assert composed.id == decomposed.id
        assert project.category(unicodedata.normalize("NFD", "café")).id == composed.id
        assert [c.name for c in project.categories()] == ["café"]


@pytest.fixture
def sqlite_root(tmp_path: Path) -> Path:
    """A SQLite project, for the tests about its file."""
    (tmp_path / "images").mkdir()
    Project.create(tmp_path / "p", images_root=tmp_path / "images").close()
    return tmp_path / "p"


@pytest.fixture
def project_root(tmp_path: Path, backend_db: str | None) -> Path:
    """A project on each backend in turn (SQLite, then PostgreSQL)."""
    (tmp_path / "images").mkdir()
    Project.create(tmp_path / "p", images_root=tmp_path / "images", db=backend_db).close()
    return tmp_path / "p"


# ------------------------------------------------------------------ 13. add_category race
def test_add_category_from_several_processes_does_not_race(project_root: Path) -> None:
    start = time.time() + 1.5
    script = """
        import sys, time
        from annowidget.store import Project
        with Project.open(sys.argv[1]) as project:
            time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
            for i in range(40):
                project.add_category(f"class {i}")
        """
    runs = [spawn(script, project_root, start) for _ in range(4)]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    with Project.open(project_root) as project:
        assert len(project.categories()) == 40


# ------------------------------------------------------------------ 5. undo across views
def _two_views(root: Path) -> tuple[Project, Project, EditHistory, int, int]:
    mine, theirs = Project.open(root), Project.open(root)
    category = mine.add_category("raccoon")
    image = mine.add_image("a.jpg", width=100, height=100, checksum="x")
    return mine, theirs, EditHistory(mine), image.id, category.id


def _edit(history: EditHistory, project: Project, image_id: int, edit) -> int:
    mark = history.mark(image_id)
    status = project.image(image_id).status
    ann_id = edit()
    history.record(image_id, mark, [ann_id], status_before=status)
    return ann_id


def _adder(project: Project, image_id: int, category_id: int):
    return lambda: project.add_annotation(image_id, category_id, [0, 0, 9, 9]).id


def test_undo_never_overwrites_an_edit_made_in_another_view(project_root: Path) -> None:
    mine, theirs, history, image_id, cat = _two_views(project_root)
    box = _edit(
        history, mine, image_id, lambda: mine.add_annotation(image_id, cat, [0, 0, 9, 9]).id
    )
    _edit(history, mine, image_id, lambda: mine.update_annotation(box, bbox=[1, 1, 9, 9]).id)
    theirs.update_annotation(box, bbox=[50, 50, 5, 5])  # the other tab moves it later
    with pytest.raises(ProjectError, match="changed elsewhere, not undone"):
        history.undo(image_id)
    assert mine.annotation(box).bbox == (50.0, 50.0, 5.0, 5.0)
    assert history.redo(image_id) == []  # the refused step is gone, not waiting to redo
    assert mine.annotation(box).bbox == (50.0, 50.0, 5.0, 5.0)


def test_a_failed_undo_then_redo_does_not_resurrect_a_box_deleted_elsewhere(
    project_root: Path,
) -> None:
    mine, theirs, history, image_id, cat = _two_views(project_root)
    box = _edit(
        history, mine, image_id, lambda: mine.add_annotation(image_id, cat, [0, 0, 9, 9]).id
    )
    theirs.delete_annotation(box)
    with pytest.raises(ProjectError, match="changed elsewhere, not undone"):
        history.undo(image_id)
    history.redo(image_id)
    assert mine.annotations(image_id) == []


def test_undo_still_works_when_nobody_else_edited(project_root: Path) -> None:
    mine, _, history, image_id, cat = _two_views(project_root)
    box = _edit(
        history, mine, image_id, lambda: mine.add_annotation(image_id, cat, [0, 0, 9, 9]).id
    )
    _edit(history, mine, image_id, lambda: mine.update_annotation(box, bbox=[1, 1, 9, 9]).id)
    history.undo(image_id)
    assert mine.annotation(box).bbox == (0.0, 0.0, 9.0, 9.0)
    history.redo(image_id)
    assert mine.annotation(box).bbox == (1.0, 1.0, 9.0, 9.0)


def test_a_kill_in_the_middle_of_a_multi_delete_lands_none_of_it(
    tmp_path: Path, backend_db: str | None
) -> None:
    annowidget.sample_project(tmp_path / "sample", db=backend_db).close()
    killed = spawn(
        """
        import os, signal, sys
        from annowidget.store import Project
        from annowidget.widgets.annotator import Annotator
        project = Project.open(sys.argv[1])
        annotator = Annotator(project)
        image = annotator._current
        category = project.categories()[0]
        ids = [project.add_annotation(image.id, category.id, [i, i, 9, 9]).id for i in range(3)]
        print(image.id, *ids, flush=True)
        real = project.delete_annotation
        calls = []
        def dying(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:  # two deletes have run: die before the third
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        project.delete_annotation = dying
        edits = [{"type": "delete", "id": i} for i in ids]
        annotator._handle_custom_msg({"type": "batch", "edits": edits, "seq": 1}, [])
        """,
        tmp_path / "sample",
    )
    out, err = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, err
    image_id, *ids = map(int, out.split())
    with Project.open(tmp_path / "sample") as project:
        left = {a.id for a in project.annotations(image_id)}
        assert set(ids) <= left  # none of the three deletes landed


# ------------------------------------------------------------------ 6. split
def test_split_keeps_earlier_assignments_and_custom_folders(project_root: Path) -> None:
    with Project.open(project_root) as project:
        cat = project.add_category("raccoon")
        ids = [project.add_image(f"{i}.jpg", width=9, height=9, checksum="x").id for i in range(45)]
        for i in ids:
            project.add_annotation(i, cat.id, [0, 0, 5, 5])
        project.move_images(ids[:5], "holdout")
        assert project.split(0.75, seed=1) == (30, 10)
        first = {i.id: i.folder for i in project.images()}
        assert [first[i] for i in ids[:5]] == ["holdout"] * 5
        more = [
            project.add_image(f"n{i}.jpg", width=9, height=9, checksum="x").id for i in range(20)
        ]
        for i in more:
            project.add_annotation(i, cat.id, [0, 0, 5, 5])
        assert project.split(0.75, seed=2) == (45, 15)
        second = {i.id: i.folder for i in project.images()}
        assert all(second[i] == folder for i, folder in first.items())  # nothing moved
        assert project.split(0.75, seed=2, reshuffle=True) == (45, 15)
        third = {i.id: i.folder for i in project.images()}
        assert [third[i] for i in ids[:5]] == ["holdout"] * 5
        assert third != second


# ------------------------------------------------------------------ 10. stored paths
def test_a_stored_path_that_escapes_the_root_is_refused_on_read_and_export(
    sqlite_root: Path, tmp_path: Path
) -> None:
    with Project.open(sqlite_root) as project:
        cat = project.add_category("raccoon")
        image = project.add_image("a.jpg", width=9, height=9, checksum="x")
        project.add_annotation(image.id, cat.id, [0, 0, 5, 5])
    with sqlite3.connect(sqlite_root / "project.sqlite") as connection:
        connection.execute("UPDATE images SET path = '../../outside/evil.jpg'")
    with Project.open(sqlite_root) as project:
        with pytest.raises(ProjectError, match="escapes the images root"):
            project.image_path(image.id)
        with pytest.raises(ProjectError, match="escapes the images root"):
            export_voc(project, tmp_path / "export" / "voc")
    assert not (tmp_path / "outside").exists()


# ------------------------------------------------------------------ 12. clean errors
def _info(root: Path) -> dict:
    with Project.open(root) as project:
        return project.info()


@pytest.mark.parametrize(
    "content", [b"", b"just some text\n" * 10, b"SQLite format 3\x00" + b"\x01" * 300]
)
def test_a_damaged_project_file_is_a_one_line_project_error(tmp_path: Path, content: bytes) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "project.sqlite").write_bytes(content)
    with pytest.raises(ProjectError, match=r"project\.sqlite") as caught:
        _info(root)
    assert "\n" not in str(caught.value)


def test_a_truncated_project_file_is_a_project_error(sqlite_root: Path) -> None:
    with Project.open(sqlite_root) as project:
        cat = project.add_category("raccoon")
        for i in range(300):
            image = project.add_image(f"{i}.jpg", width=9, height=9, checksum="x" * 64)
            project.add_annotation(image.id, cat.id, [0, 0, 5, 5])
    db = sqlite_root / "project.sqlite"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    with pytest.raises(ProjectError, match=r"project\.sqlite"):
        _info(sqlite_root)


def test_read_only_mode_reads_and_refuses_edits(sqlite_root: Path) -> None:
    with Project.open(sqlite_root, readonly=True) as project:
        assert project.info()["images"] == 0
        with pytest.raises(ProjectError, match="read-only"):
            project.add_category("raccoon")


def test_info_works_on_a_read_only_project_folder(sqlite_root: Path) -> None:
    # in a child that meets file permissions (root ignores them otherwise)
    script = (
        "import sys; from annowidget.store import Project\n"
        "with Project.open(sys.argv[1], readonly=True) as project:\n"
        "    print(project.info()['images'])\n"
    )
    os.chmod(sqlite_root, 0o555)
    try:
        result = subprocess.run(
            [*AS_A_USER, sys.executable, "-c", script, str(sqlite_root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.chmod(sqlite_root, 0o755)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
