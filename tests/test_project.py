"""The Project store on a real SQLite file and on a real PostgreSQL server (every test runs
on both): edits, statuses, folders, snapshots, the log."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from annowidget.store import Project, ProjectError


@pytest.fixture
def project(tmp_path: Path, backend_db: str | None) -> Project:
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images, db=backend_db) as created:
        yield created


def add_image(project: Project, name: str = "a.jpg", **kwargs) -> int:
    return project.add_image(name, width=640, height=480, checksum="0" * 40, **kwargs).id


def test_create_makes_a_wal_database_and_models_folder(project: Project) -> None:
    assert (project.root / "models").is_dir()
    if project.backend == "postgresql":  # the folder only points at the server
        assert json.loads((project.root / "project.json").read_text())["db"] == project.dsn
        assert not (project.root / "project.sqlite").exists()
        return
    assert (project.root / "project.sqlite").is_file()
    mode = sqlite3.connect(project.db_path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_create_refuses_an_existing_project(project: Project) -> None:
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(project.root, images_root=project.images_root)


def test_open_refuses_a_folder_that_is_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not an annowidget project"):
        Project.open(tmp_path)


def test_images_root_inside_the_project_is_stored_relative(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "images").mkdir(parents=True)
    Project.create(root, images_root=root / "images").close()
    moved = tmp_path / "moved"
    root.rename(moved)
    with Project.open(moved) as reopened:
        assert reopened.images_root == moved / "images"


@pytest.mark.parametrize("bad", ["../outside.jpg", "/etc/passwd", "sub/../../x.jpg", "."])
def test_paths_escaping_the_images_root_are_refused(project: Project, bad: str) -> None:
    with pytest.raises(ProjectError, match="outside the project's images root"):
        project.add_image(bad, width=1, height=1, checksum="")
    assert project.count_images() == 0


def test_paths_are_stored_relative_and_posix(project: Project) -> None:
    image = project.add_image(
        project.images_root / "sub" / "b.jpg", width=3, height=2, checksum="c"
    )
    assert image.path == "sub/b.jpg"
    assert project.image_path(image) == project.images_root / "sub" / "b.jpg"
    assert project.image_by_path("sub/b.jpg") == image


def test_categories_are_matched_by_name(project: Project) -> None:
    first = project.add_category("person", keypoints=["nose", "eye"], skeleton=[[1, 2]])
    again = project.add_category("person")
    assert first == again
    assert again.keypoints == ["nose", "eye"]
    assert again.skeleton == [[1, 2]]
    assert [c.name for c in project.categories()] == ["person"]
    with pytest.raises(ProjectError, match="'dog' does not exist"):
        project.category("dog")


def test_a_human_box_marks_the_image_reviewed(project: Project) -> None:
    image_id = add_image(project)
    cat = project.add_category("raccoon")
    annotation = project.add_annotation(image_id, cat.id, [10, 20, 30, 40])
    assert annotation.area == 1200
    assert project.image(image_id).status == "reviewed"


def test_predictions_accept_edit_and_reject(project: Project) -> None:
    image_id = add_image(project)
    cat = project.add_category("raccoon")
    predicted = project.replace_predictions(
        image_id,
        [
            {"category_id": cat.id, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"category_id": cat.id, "bbox": [5, 5, 10, 10], "score": 0.4},
            {"category_id": cat.id, "bbox": [9, 9, 10, 10], "score": 0.2},
        ],
        source="model:round1",
    )
    assert project.image(image_id).status == "predicted"
    assert all(p.is_prediction and p.source == "model:round1" for p in predicted)

    accepted = project.accept_prediction(predicted[0].id)
    assert not accepted.is_prediction
    assert accepted.score == pytest.approx(0.9)  # the log and effort meter keep the score
    edited = project.update_annotation(predicted[1].id, bbox=[6, 6, 12, 12])
    assert not edited.is_prediction
    assert edited.score is None
    assert project.image(image_id).status == "predicted"  # one prediction still pending
    project.delete_annotation(predicted[2].id)
    assert project.image(image_id).status == "reviewed"
    assert [a.action for a in project.actions(image_id=image_id)][-4:] == [
        "predict",
        "accept",
        "update",
        "reject",
    ]


def test_new_predictions_replace_old_ones_and_keep_reviewed_boxes(project: Project) -> None:
    image_id = add_image(project)
    cat = project.add_category("raccoon")
    kept = project.add_annotation(image_id, cat.id, [1, 1, 5, 5])
    project.replace_predictions(
        image_id, [{"category_id": cat.id, "bbox": [0, 0, 2, 2], "score": 0.5}], source="m:a"
    )
    project.replace_predictions(
        image_id, [{"category_id": cat.id, "bbox": [3, 3, 2, 2], "score": 0.7}], source="m:b"
    )
    boxes = project.annotations(image_id)
    assert [a.id for a in boxes if not a.is_prediction] == [kept.id]
    assert [a.source for a in boxes if a.is_prediction] == ["m:b"]


def test_update_logs_before_and_after_and_undo_can_restore(project: Project) -> None:
    image_id = add_image(project)
    cat = project.add_category("raccoon")
    box = project.add_annotation(image_id, cat.id, [1, 2, 3, 4])
    project.update_annotation(box.id, bbox=[2, 3, 4, 5], duration=1.5)
    update = project.actions()[-1]
    assert update.action == "update"
    assert update.duration == 1.5
    assert update.payload["before"]["bbox"] == [1, 2, 3, 4]
    assert update.payload["after"]["bbox"] == [2, 3, 4, 5]
    project.delete_annotation(box.id)
    restored = project.restore_annotation(project.actions()[-1].payload["before"])
    assert restored.id == box.id
    assert restored.bbox == (2, 3, 4, 5)


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        ([1, 2, -3, 4], "negative width or height"),
        ([1, 2, 3], "four numbers"),
        ([1, 2, float("nan"), 4], "non-finite"),
    ],
)
def test_bad_boxes_are_refused_with_the_field_named(
    project: Project, bbox: list[float], message: str
) -> None:
    image_id = add_image(project)
    cat = project.add_category("raccoon")
    with pytest.raises(ProjectError, match=message):
        project.add_annotation(image_id, cat.id, bbox)
    assert project.annotations(image_id) == []


def test_unknown_ids_and_fields_are_refused(project: Project) -> None:
    image_id = add_image(project)
    cat = project.add_category("raccoon")
    with pytest.raises(ProjectError, match="image 99 does not exist"):
        project.add_annotation(99, cat.id, [0, 0, 1, 1])
    with pytest.raises(ProjectError, match="category 7"):
        project.add_annotation(image_id, 7, [0, 0, 1, 1])
    box = project.add_annotation(image_id, cat.id, [0, 0, 1, 1])
    with pytest.raises(ProjectError, match="score"):
        project.update_annotation(box.id, score=0.3)


def test_the_action_log_is_append_only(project: Project) -> None:
    add_image(project)
    # a connection of its own, outside the store's write path
    connection = sqlite3.connect(project.db_path) if project.dsn is None else project._db
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute("DELETE FROM actions")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute("UPDATE actions SET action = 'x'")


def test_split_is_reproducible_and_moves_reviewed_images(project: Project) -> None:
    cat = project.add_category("raccoon")
    ids = [add_image(project, f"{i}.jpg") for i in range(20)]
    for image_id in ids[:10]:
        project.add_annotation(image_id, cat.id, [0, 0, 5, 5])
    assert project.split(0.8, seed=3) == (8, 2)
    first = {i.id: i.folder for i in project.images()}
    assert sorted(first.values()).count("unlabeled") == 10  # unlabeled images stay put
    project.split(0.8, seed=3)
    assert {i.id: i.folder for i in project.images()} == first
    with pytest.raises(ProjectError, match="ratio"):
        project.split(1.5)


def test_move_and_filter_by_folder_and_status(project: Project) -> None:
    ids = [add_image(project, f"{i}.jpg") for i in range(5)]
    project.move_images(ids[:2], "train")
    assert [i.id for i in project.images(folder="train")] == ids[:2]
    assert project.count_images(folder=["train", "unlabeled"], status="unlabeled") == 5
    assert project.folders() == ["train", "unlabeled"]
    with pytest.raises(ProjectError, match="folder name"):
        project.move_images(ids, "a/b")


def test_pages_of_images_come_with_their_annotations(project: Project) -> None:
    cat = project.add_category("raccoon")
    ids = [add_image(project, f"{i}.jpg") for i in range(30)]
    for image_id in ids:
        project.add_annotation(image_id, cat.id, [0, 0, image_id, 1])
    page = project.images(limit=10, offset=10)
    assert [i.id for i in page] == ids[10:20]
    assert project.images(limit=10, after_id=page[-1].id) == project.images(limit=10, offset=20)
    assert project.images(folder="unlabeled", after_id=ids[-2]) == [project.image(ids[-1])]
    annotations = project.annotations_for([i.id for i in page])
    assert all(annotations[i.id][0].bbox[2] == i.id for i in page)


def test_snapshot_is_unaffected_by_later_edits(project: Project) -> None:
    cat = project.add_category("raccoon")
    image_id = add_image(project, folder="train")
    box = project.add_annotation(image_id, cat.id, [0, 0, 5, 5])
    project.replace_predictions(
        image_id, [{"category_id": cat.id, "bbox": [1, 1, 1, 1], "score": 0.3}], source="m"
    )
    snapshot = project.snapshot("train")
    project.update_annotation(box.id, bbox=[9, 9, 9, 9])
    project.add_annotation(image_id, cat.id, [2, 2, 2, 2])
    assert snapshot.num_annotations == 1  # pending predictions are not training data
    assert snapshot.items[0][1][0].bbox == (0, 0, 5, 5)


def test_reads_from_another_thread_see_committed_state(project: Project) -> None:
    cat = project.add_category("raccoon")
    image_id = add_image(project)
    seen: list[int] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            count = len(project.annotations(image_id))
            seen.append(count)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(50):
        project.add_annotation(image_id, cat.id, [i, 0, 1, 1])
    done.set()
    thread.join()
    assert seen == sorted(seen)  # never goes backwards, never sees half an edit
    assert len(project.annotations(image_id)) == 50


def test_info_counts_per_folder_status_and_category(project: Project) -> None:
    cat = project.add_category("raccoon")
    project.add_category("dog")
    first = add_image(project, "1.jpg", folder="train")
    add_image(project, "2.jpg")
    project.add_annotation(first, cat.id, [0, 0, 1, 1])
    info = project.info()
    assert info["folders"] == {"train": 1, "unlabeled": 1}
    assert info["status"] == {"unlabeled": 1, "predicted": 0, "reviewed": 1}
    assert info["categories"]["raccoon"] == {"annotations": 1, "predictions": 0}
    assert info["categories"]["dog"] == {"annotations": 0, "predictions": 0}


def test_bulk_predictions_leave_the_image_predicted(project: Project) -> None:
    cat = project.add_category("raccoon")
    human, model = add_image(project, "h.jpg"), add_image(project, "m.jpg")
    project.add_annotations_bulk(
        [
            (human, {"category_id": cat.id, "bbox": [0, 0, 1, 1]}),
            (model, {"category_id": cat.id, "bbox": [0, 0, 1, 1], "score": 0.7}),
        ]
    )
    assert project.image(human).status == "reviewed"
    assert project.image(model).status == "predicted"
    assert project.annotations(model)[0].is_prediction


def test_annotation_ids_are_never_reused(project: Project) -> None:
    cat = project.add_category("raccoon")
    image_id = add_image(project)
    last = project.add_annotation(image_id, cat.id, [0, 0, 1, 1])
    project.delete_annotation(last.id)
    assert project.add_annotation(image_id, cat.id, [0, 0, 1, 1]).id == last.id + 1


def test_percent_signs_and_question_marks_in_values_and_literals_survive(project: Project) -> None:
    # the PostgreSQL dialect rewrites `?` and `%`: values and quoted literals must not change
    image_id = add_image(project, "100% sure?.jpg")
    assert project.image(image_id).path == "100% sure?.jpg"
    row = project._db.execute("SELECT '50%?' || path FROM images WHERE id = ?", (image_id,))
    assert row.fetchone()[0] == "50%?100% sure?.jpg"
    assert project._db.execute("SELECT '%'").fetchone()[0] == "%"
