"""A project on a real PostgreSQL server: formats, training snapshots and the CLI on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from annowidget.formats.coco import export_coco, import_coco
from annowidget.sample import SAMPLE_DIR, sample_project
from annowidget.store import Project, ProjectError
from annowidget.train.dataset import SnapshotDataset


def _raccoons(root: Path, db: str | None) -> Project:
    images = root / "images"
    images.mkdir(parents=True)
    for entry in json.loads((SAMPLE_DIR / "annotations.json").read_text())["images"]:
        (images / entry["file_name"]).write_bytes(
            (SAMPLE_DIR / "images" / entry["file_name"]).read_bytes()
        )
    project = Project.create(root / "proj", images_root=images, db=db)
    import_coco(project, SAMPLE_DIR / "annotations.json", folder="train")
    project.split(0.8, seed=1, source_folders=["train"])
    return project


def _untimed(item: tuple) -> tuple:
    image, annotations = item
    return image, [replace(a, created_at=0, updated_at=0) for a in annotations]


def test_coco_import_and_export_on_postgresql_equal_sqlite(
    tmp_path: Path, postgres_db: str
) -> None:
    with _raccoons(tmp_path / "lite", None) as lite, _raccoons(tmp_path / "pg", postgres_db) as pg:
        assert pg.backend == "postgresql"
        assert lite.backend == "sqlite"
        counts = [export_coco(p, tmp_path / f"{p.backend}.json") for p in (lite, pg)]
        assert counts[0] == counts[1] == {"images": 40, "annotations": 43, "categories": 1}
        exported = [
            json.loads((tmp_path / f"{b}.json").read_text()) for b in ("sqlite", "postgresql")
        ]
        assert exported[0] == exported[1]
        same = {"project": "", "db": "", "images_root": ""}
        assert pg.info() | same == lite.info() | same
        # a training snapshot reads the same items, and the dataset decodes them
        snapshots = [p.snapshot("train") for p in (lite, pg)]
        assert [_untimed(s) for s in snapshots[0].items] == [
            _untimed(s) for s in snapshots[1].items
        ]
        assert snapshots[0].categories == snapshots[1].categories
        assert snapshots[1].num_annotations > 0
        torch.set_num_threads(1)
        dataset = SnapshotDataset.from_snapshot(pg, snapshots[1], image_size=64)
        image, target = dataset[0]
        assert image.shape[0] == 3
        assert len(target["boxes"]) >= 1


def test_the_sample_project_on_postgresql_reopens_with_its_edits(
    tmp_path: Path, postgres_db: str
) -> None:
    project = sample_project(tmp_path / "sample", db=postgres_db)
    image = project.images(folder="unlabeled")[0]
    box = project.add_annotation(image.id, project.category("raccoon").id, [1, 2, 30, 40])
    project.close()
    with sample_project(tmp_path / "sample") as reopened:
        assert reopened.backend == "postgresql"
        assert reopened.annotation(box.id).bbox == (1, 2, 30, 40)
        assert reopened.count_images() == 40
        assert [a.action for a in reopened.actions()][-1] == "add"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "annowidget.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_cli_init_on_postgresql_from_the_flag_or_the_environment(
    tmp_path: Path, postgres_dsn: str, postgres_db: str
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    done = _cli("init", str(tmp_path / "a"), "--images", str(images), "--db", postgres_db)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "a" / "project.json").read_text()) == {"db": postgres_db}
    assert not (tmp_path / "a" / "project.sqlite").exists()
    info = _cli("info", str(tmp_path / "a"), "--json")
    assert json.loads(info.stdout)["db"] == postgres_db
    # the same database twice: refused, naming it
    again = _cli("init", str(tmp_path / "b"), "--images", str(images), "--db", postgres_db)
    assert again.returncode == 1
    assert "already holds a project" in again.stderr
    # ANNOWIDGET_DB when no --db is given
    from annowidget_postgres_cluster import create_database

    other = create_database(postgres_dsn, "from_env")
    by_env = _cli(
        "init", str(tmp_path / "c"), "--images", str(images), env={"ANNOWIDGET_DB": other}
    )
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads((tmp_path / "c" / "project.json").read_text()) == {"db": other}


def test_a_bad_pointer_or_an_unreachable_server_is_a_one_line_error(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "project.json").write_text('{"db": "mysql://x"}')
    with pytest.raises(ProjectError, match=r"project\.json: field 'db'"):
        Project.open(root)
    (root / "project.json").write_text("{")
    with pytest.raises(ProjectError, match=r"project\.json: not a readable project pointer"):
        Project.open(root)
    (root / "project.json").write_text('{"db": "postgresql://u:secret@127.0.0.1:1/x"}')
    with pytest.raises(ProjectError, match=r"cannot connect") as caught:
        Project.open(root)
    assert "secret" not in str(caught.value)


def test_the_workshop_notebook_joins_the_shared_project_when_annowidget_db_is_set(
    tmp_path: Path, postgres_db: str
) -> None:
    import nbformat

    notebook = nbformat.read(
        Path(__file__).parents[1] / "notebooks" / "02_transfer_learning_workshop.ipynb", 4
    )
    setup = notebook.cells[1].source  # the cell that opens the project
    shared = tmp_path / "room"
    for user in ("organiser", "ana"):
        done = subprocess.run(
            [sys.executable, "-c", setup],
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "ANNOWIDGET_DB": postgres_db,
                "ANNOWIDGET_PROJECT": str(shared),
                "ANNOWIDGET_USER": user,
                "ANNOWIDGET_NOTEBOOK_SMOKE": "1",
            },
        )
        assert done.returncode == 0, done.stderr
        assert f"joined the shared project {shared} as '{user}'" in done.stdout
    with Project.open(shared) as project:
        assert project.backend == "postgresql"
        assert project.count_images() == 40  # one project, made once, joined once


def test_cli_sample_on_postgresql_when_annowidget_db_is_set(
    tmp_path: Path, postgres_db: str
) -> None:
    done = _cli("sample", str(tmp_path / "room"), env={"ANNOWIDGET_DB": postgres_db})
    assert done.returncode == 0, done.stderr
    with Project.open(tmp_path / "room") as project:
        assert project.dsn == postgres_db
        assert project.count_images() == 40


def test_a_server_restart_loses_nothing_and_the_next_edit_reconnects(
    tmp_path: Path, postgres_db: str, postgres_cluster
) -> None:
    (tmp_path / "images").mkdir()
    with Project.create(tmp_path / "p", images_root=tmp_path / "images", db=postgres_db) as project:
        category = project.add_category("raccoon")
        image = project.add_image("a.jpg", width=10, height=10, checksum="x")
        before = project.add_annotation(image.id, category.id, [0, 0, 5, 5])
        postgres_cluster.restart()  # every pooled connection is dropped by the server
        after = project.add_annotation(image.id, category.id, [1, 1, 5, 5])
        assert [a.id for a in project.annotations(image.id)] == [before.id, after.id]


def test_while_the_server_is_down_the_annotator_says_reconnecting_and_saves_later(
    tmp_path: Path, postgres_db: str, postgres_cluster
) -> None:
    from annowidget.widgets.annotator import Annotator

    project = sample_project(tmp_path / "s", db=postgres_db)
    widget = Annotator(project)
    try:
        widget.goto(project.images(folder="unlabeled")[0].id)
        image_id = widget.image.id
        category = project.categories()[0].id
        postgres_cluster.pg_ctl("-m", "fast", "-w", "stop")
        try:
            message = {"type": "add", "category_id": category, "bbox": [10, 10, 40, 30]}
            widget._handle_custom_msg({**message, "client_id": "c1", "seq": 1}, [])
            assert widget.message.startswith("not saved: reconnecting to the database server")
            assert widget.unsaved == 1
        finally:
            postgres_cluster.start()
        deadline = time.monotonic() + 30
        while widget.unsaved and time.monotonic() < deadline:
            time.sleep(0.2)
        assert widget.unsaved == 0
        assert [a.bbox for a in project.annotations(image_id)] == [(10.0, 10.0, 40.0, 30.0)]
    finally:
        widget.close()
        project.close()
