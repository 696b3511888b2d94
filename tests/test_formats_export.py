"""Folder exports (VOC, YOLO, label maps) that cannot mislead: complete or absent, never
stale, never a name the format cannot hold."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annowidget.formats import (
    FormatError,
    export_coco,
    export_label_maps,
    export_voc,
    export_yolo,
    import_coco,
    load_classes,
)
from annowidget.store import Project

ROOT = Path(__file__).parents[1]
EXPORTS = {
    "voc": (export_voc, "{}.xml"),
    "yolo": (export_yolo, "labels/{}.txt"),
    "masks": (export_label_maps, "{}.png"),
}


def boxes_project(root: Path, count: int) -> Project:
    """A project of ``count`` reviewed 64x48 images with one box each, in ``train``.

    Folder exports read only the store, so the image files need not exist.
    """
    (root / "images").mkdir(parents=True)
    project = Project.create(root / "p", images_root=root / "images")
    dog = project.add_category("dog").id
    ids = project.add_images_bulk(
        {"path": f"d{i // 1000}/img{i:05d}.jpg", "width": 64, "height": 48, "folder": "train"}
        for i in range(count)
    )
    project.add_annotations_bulk((i, {"category_id": dog, "bbox": [1, 2, 10, 20]}) for i in ids)
    return project


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def expected(fmt: str, project: Project, folder: str) -> set[str]:
    """The files an export of ``folder`` holds, and nothing else."""
    pattern = EXPORTS[fmt][1]
    labels = {
        pattern.format(Path(i.path).with_suffix("").as_posix())
        for i in project.images(folder=folder)
    }
    return labels | ({"classes.txt"} if fmt in ("yolo", "masks") else set())


def cli() -> list[str]:
    script = Path(sys.executable).parent / "annowidget"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "annowidget.cli"]


@pytest.mark.parametrize("fmt", sorted(EXPORTS))
def test_a_re_export_after_a_re_split_leaves_no_stale_label_file(tmp_path: Path, fmt: str) -> None:
    export, _ = EXPORTS[fmt]
    with boxes_project(tmp_path, 10) as project:
        out = tmp_path / "out"
        export(project, out, folders="train")
        assert files(out) == expected(fmt, project, "train")
        # A new split: four training images now belong to the test folder.
        project.move_images([1, 2, 3, 4], "test")
        with pytest.raises(FormatError, match=r"out: the folder is not empty; pass overwrite"):
            export(project, out, folders="train")
        assert len(files(out)) >= 10  # refused: untouched
        counts = export(project, out, folders="train", overwrite=True)
        assert counts["images"] == 6
        assert files(out) == expected(fmt, project, "train")  # the test images' labels are gone
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_empty_or_missing_target_needs_no_overwrite(tmp_path: Path) -> None:
    with boxes_project(tmp_path, 2) as project:
        (tmp_path / "empty").mkdir()
        assert export_yolo(project, tmp_path / "empty")["images"] == 2
        assert export_voc(project, tmp_path / "new" / "voc")["images"] == 2
        (tmp_path / "file").write_text("x")
        with pytest.raises(FormatError, match="exists and is not a folder"):
            export_voc(project, tmp_path / "file", overwrite=True)


def test_overwrite_never_replaces_a_folder_holding_the_project_or_its_images(
    tmp_path: Path,
) -> None:
    with boxes_project(tmp_path, 2) as project:
        for target in (tmp_path, tmp_path / "images", tmp_path / "p"):
            with pytest.raises(FormatError, match="export to a folder of its own"):
                export_yolo(project, target, overwrite=True)
        assert (tmp_path / "p" / "project.sqlite").is_file()


def test_the_export_folder_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with boxes_project(tmp_path, 1) as project:
            export_yolo(project, tmp_path / "out")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755  # readable by the team


def _kill_mid_export(command: list[str], staging_parent: Path, name: str) -> None:
    """Start the CLI export, wait until it has written label files, kill -9 it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            # Written into a staging folder, or (as exports used to) into the target.
            written = [
                *staging_parent.glob(f".{name}.*.partial/labels/d1"),
                *staging_parent.glob(f"{name}/labels/d1"),
            ]
            if any(any(folder.iterdir()) for folder in written):
                break
            time.sleep(0.005)
        assert process.poll() is None, "the export finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()


def test_an_export_killed_midway_leaves_no_partial_target(tmp_path: Path) -> None:
    project = boxes_project(tmp_path, 5_000)
    project.move_images(range(1, 11), "test")
    out = tmp_path / "yolo"
    command = [*cli(), "export", str(tmp_path / "p"), str(out), "--format", "yolo"]

    _kill_mid_export(command, tmp_path, "yolo")
    assert not out.exists()  # not 3,000 label files beside a classes.txt

    # A complete export of the ten test images, then a killed overwrite of it with all.
    export_yolo(project, out, folders="test")
    before = {p: (out / p).read_bytes() for p in files(out)}
    assert len(before) == 11
    _kill_mid_export([*command, "--overwrite"], tmp_path, "yolo")
    assert {p: (out / p).read_bytes() for p in files(out)} == before

    # The next export cleans up what the killed ones left behind.
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".yolo.")]
    assert export_yolo(project, out, folders="test", overwrite=True)["images"] == 10
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".yolo.")] == []
    project.close()


def _rename_category(project: Project, old: str, new: str) -> None:
    """What a project made before names were validated may hold (the store now refuses)."""
    with sqlite3.connect(project.root / "project.sqlite") as db:
        db.execute("UPDATE categories SET name = ? WHERE name = ?", (new, old))


@pytest.mark.parametrize(
    ("name", "fmt", "shown"),
    [
        ("traffic\nlight", "yolo", r"'traffic\\nlight'"),
        ("traffic\u2028light", "yolo", r"'traffic\\u2028light'"),
        ("bell\x07", "voc", r"'bell\\x07'"),
        ("esc\x1b[0m", "masks", r"'esc\\x1b\[0m'"),
        (" dog", "yolo", "' dog'"),
    ],
)
def test_a_name_the_format_cannot_hold_is_refused_naming_it(
    tmp_path: Path, name: str, fmt: str, shown: str
) -> None:
    export, _ = EXPORTS[fmt]
    with boxes_project(tmp_path, 3) as project:
        project.add_category("cat")
        _rename_category(project, "dog", name)
        with pytest.raises(FormatError, match=rf"^category {shown} \(id 1\) .*COCO export keeps"):
            export(project, tmp_path / "out")
        assert not (tmp_path / "out").exists()  # nothing half-written either
        # COCO (JSON) holds any name, and reads it back.
        export_coco(project, tmp_path / "all.json")
    with Project.create(tmp_path / "back", images_root=tmp_path / "images") as back:
        import_coco(back, tmp_path / "all.json")
        # ...except where the store refuses the name on the way in (control characters)
        kept = [name.strip()] if name.isprintable() else []
        assert [c.name for c in back.categories()] == [*kept, "cat"]


def test_a_yolo_export_reads_back_with_the_same_classes(tmp_path: Path) -> None:
    """What the refusal protects: every name exported is the name read back, in order."""
    with boxes_project(tmp_path, 1) as project:
        for name in ("traffic light", "café", "a#b", "x:y", "'quoted'"):
            project.add_category(name)
        export_yolo(project, tmp_path / "out")
        names = [c.name for c in project.categories()]
    assert list(load_classes(tmp_path / "out" / "classes.txt").values()) == names


def test_an_image_path_xml_cannot_hold_is_refused_by_voc(tmp_path: Path) -> None:
    with boxes_project(tmp_path, 1) as project:
        image = project.add_images_bulk([{"path": "bad\x1bname.jpg", "width": 8, "height": 8}])[0]
        project.add_annotations_bulk([(image, {"category_id": 1, "bbox": [1, 1, 2, 2]})])
        with pytest.raises(FormatError, match=r"image 'bad\\x1bname.jpg' contains the control"):
            export_voc(project, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        # The rest exports once that image is out of the selection.
        project.move_images([image], "odd")
        assert export_voc(project, tmp_path / "out", folders="train")["images"] == 1


def test_a_running_export_s_staging_folder_is_left_alone(tmp_path: Path) -> None:
    running = tmp_path / f".out.{os.getppid()}.0123abcd.partial"  # a live process's
    running.mkdir(parents=True)
    (running / "classes.txt").write_text("dog\n")
    unrelated = tmp_path / ".out.notes"
    unrelated.write_text("mine")
    with boxes_project(tmp_path, 1) as project:
        export_yolo(project, tmp_path / "out")
    assert running.is_dir()
    assert unrelated.read_text() == "mine"


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="RLIMIT_FSIZE is POSIX")
def test_a_write_error_midway_leaves_the_previous_export_whole(tmp_path: Path) -> None:
    """A write that fails half-way (here a file-size limit, as a full disk would) keeps the
    previous export as it was, and leaves no staging folder behind."""
    with boxes_project(tmp_path, 3) as project:
        export_voc(project, tmp_path / "voc")
    before = {p: (tmp_path / "voc" / p).read_bytes() for p in files(tmp_path / "voc")}
    script = f"""
import resource, signal
from annowidget.formats import export_voc
from annowidget.store import Project
project = Project.open({str(tmp_path / "p")!r})
# The third image gets a box whose long category name makes its XML file (~900 bytes)
# pass the 600-byte limit below, after the first two (489 bytes) were written.
project.add_annotation(3, project.add_category("x" * 400).id, [1, 1, 2, 2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write raises, as ENOSPC would
resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))
try:
    export_voc(project, {str(tmp_path / "voc")!r}, overwrite=True)
except OSError as exc:
    print(exc.errno)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.stdout.strip() == "27", done.stderr[-2000:]  # EFBIG: the write failed
    assert {p: (tmp_path / "voc" / p).read_bytes() for p in files(tmp_path / "voc")} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".voc.")] == []


def test_voc_refuses_only_names_it_would_write(tmp_path: Path) -> None:
    """YOLO and label maps list every category; VOC writes only those with a box."""
    with boxes_project(tmp_path, 2) as project:
        project.add_category("unused")
        _rename_category(project, "unused", "un\nused")
        assert export_voc(project, tmp_path / "voc")["annotations"] == 2
        with pytest.raises(FormatError, match=r"category 'un\\nused' \(id 2\)"):
            export_yolo(project, tmp_path / "yolo")
