"""``annowidget migrate``: a project moved to PostgreSQL and back keeps every row and id."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from annowidget.models.card import ModelCard
from annowidget.models.registry import ModelRegistry
from annowidget.sample import sample_project
from annowidget.store import Project, ProjectError
from annowidget.store.migrate import TABLES, migrate, table_rows


def _busy_sample(root: Path) -> Project:
    """The sample with every kind of row: predictions, edits, deletions, a split, an author,
    a lease and a trained model's card."""
    project = sample_project(root)
    raccoon = project.category("raccoon")
    project.add_category("person", keypoints=["nose", "eye"], skeleton=[[1, 2]])
    image = project.images(folder="unlabeled")[0]
    project.replace_predictions(
        image.id, [{"category_id": raccoon.id, "bbox": [1, 2, 3, 4], "score": 0.75}], source="m"
    )
    box = project.add_annotation(image.id, raccoon.id, [5.5, 6.25, 70.125, 80])
    project.update_annotation(box.id, bbox=[6, 7, 8, 9], duration=1.5)
    last = project.add_annotation(image.id, raccoon.id, [0, 0, 1, 1])
    project.delete_annotation(last.id)  # the highest id is gone; it must never come back
    project.set_status(image.id, "reviewed", duration=3.0)
    project.user = "ana"
    project.log_action("view", image_id=image.id, duration=0.25, payload={"note": "é ✓"})
    assert project.lease(project.images(folder="unlabeled")[1].id, seconds=3600)
    card = ModelCard(
        name="raccoons-v1",
        task="detection",
        base_model="fasterrcnn_mobilenet_v2_fpn",
        categories=["raccoon"],
        model_config={"num_classes": 2},
    )
    card.save(project.models_dir / "raccoons-v1")
    return project


def _models(root: Path) -> tuple[list[str], dict[str, str]]:
    files = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "models").rglob("*"))
        if p.is_file()
    }
    return ModelRegistry(root / "models").names(), files


def test_migrate_to_postgresql_and_back_keeps_every_table(tmp_path: Path, postgres_db: str) -> None:
    root = tmp_path / "sample"
    with _busy_sample(root) as project:
        before = table_rows(project)
        deleted_id = max(a.id for a in project.annotations()) + 1
    models = _models(root)
    assert "raccoons-v1" in models[0]
    assert {table: len(before[table]) > 0 for table in TABLES} == dict.fromkeys(TABLES, True)

    counts = migrate(root, postgres_db)
    assert counts == {table: len(before[table]) for table in TABLES}
    assert not (root / "project.sqlite").exists()
    assert (root / "project.sqlite.migrated").is_file()  # the source is kept
    with Project.open(root) as moved:
        assert moved.backend == "postgresql"
        assert table_rows(moved) == before
        assert _models(root) == models
        image = moved.images(folder="unlabeled")[0]
        # ids continue where SQLite left off: the deleted box's id is not handed out again
        fresh = moved.add_annotation(image.id, moved.category("raccoon").id, [1, 1, 1, 1])
        assert fresh.id == deleted_id + 1
        before = table_rows(moved)

    migrate(root, "sqlite")
    with Project.open(root) as back:
        assert back.backend == "sqlite"
        assert table_rows(back) == before
        assert back.add_annotation(image.id, 1, [2, 2, 2, 2]).id == fresh.id + 1
    assert _models(root) == models
    assert (root / "project.json.migrated").is_file()


def test_migrate_refuses_what_it_cannot_do_and_changes_nothing(
    tmp_path: Path, postgres_db: str
) -> None:
    root = tmp_path / "sample"
    sample_project(root).close()
    with pytest.raises(ProjectError, match="already a SQLite file"):
        migrate(root, "sqlite")
    with pytest.raises(ProjectError, match="expected 'sqlite' or a postgresql"):
        migrate(root, "mysql://x")
    migrate(root, postgres_db)
    with pytest.raises(ProjectError, match="already lives in"):
        migrate(root, postgres_db)
    # a database that already holds a project is refused before anything moves
    other = tmp_path / "other"
    sample_project(other).close()
    with pytest.raises(ProjectError, match="already holds a project"):
        migrate(other, postgres_db)
    assert (other / "project.sqlite").is_file()
    assert not (other / "project.json").exists()


def test_cli_migrate(tmp_path: Path, postgres_db: str) -> None:
    root = tmp_path / "sample"
    sample_project(root).close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "annowidget.cli", "migrate", str(root), "--to", postgres_db],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "images: 40" in done.stdout
    with Project.open(root) as project:
        assert project.backend == "postgresql"
        assert project.count_images() == 40
