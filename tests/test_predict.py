"""Smart prediction on a real project (SQLite store, image files) with tiny random models."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from annowidget.models.card import ModelCard
from annowidget.models.predict import PredictionReport, predict_images
from annowidget.models.registry import ModelRegistry
from annowidget.models.zoo import build_model
from annowidget.store import Project
from annowidget.store.images import decode_for_model

SIZE = 64


# an empty hub cache, offline, one thread, a fixed seed (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("isolated_hub")


@pytest.fixture
def project(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    with Project.create(tmp_path / "proj", images_root=images) as proj:
        proj.add_category("raccoon")
        proj.add_category("dog")
        for index, (height, width) in enumerate([(48, 64), (64, 64), (56, 72)]):
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            PILImage.fromarray(pixels).save(images / f"img{index}.png")
            proj.add_image(images / f"img{index}.png")
        yield proj


def _save(project: Project, name: str, base: str, task: str, categories: list[str], **kw):
    model = build_model(
        base, len(categories) + 1, pretrained=False, min_size=SIZE, max_size=SIZE, **kw
    ).eval()
    if task == "semantic_segmentation":
        # random heads tend to paint everything background: push classes 1+ above it
        with torch.no_grad():
            model.classifier.high_classifier.bias[0] = -10.0
    card = ModelCard(
        name=name,
        task=task,
        base_model=base,
        categories=categories,
        num_keypoints=kw.get("num_keypoints"),
        status="finished",
        model_config={"num_classes": len(categories) + 1, "min_size": SIZE, "max_size": SIZE},
    )
    registry = ModelRegistry(project)
    registry.reserve(name, card)
    registry.save_weights(name, model.state_dict())
    return model


def test_detection_predictions_are_written_and_reviewed_work_is_kept(project: Project) -> None:
    _save(project, "det", "fasterrcnn_mobilenet_v2_fpn", "detection", ["raccoon", "dog"])
    raccoon = project.category("raccoon")
    reviewed = project.images()[0]
    human = project.add_annotation(reviewed.id, raccoon.id, [1, 2, 10, 12])
    assert project.image(reviewed.id).status == "reviewed"
    calls: list[tuple[int, int]] = []

    report = predict_images(
        project, "det", threshold=0.0, batch_size=2, progress=lambda *a: calls.append(a)
    )

    assert isinstance(report, PredictionReport)
    assert report.images == 3
    assert report.predictions > 0
    assert report.failed == []
    assert calls[-1] == (3, 3)
    assert report.seconds > 0
    assert report.seconds_per_image == report.seconds / 3
    predictions = project.annotations(predictions=True)
    assert len(predictions) == report.predictions
    assert {p.source for p in predictions} == {"model:det"}
    assert all(p.score is not None and 0.0 <= p.score <= 1.0 for p in predictions)
    assert {p.category_id for p in predictions} <= {c.id for c in project.categories()}
    for p in predictions:
        image = project.image(p.image_id)
        x, y, w, h = p.bbox
        assert min(x, y) >= 0
        assert x + w <= image.width + 1e-3
        assert y + h <= image.height + 1e-3
    # the person's box is untouched and the reviewed image stays reviewed
    assert project.annotations(reviewed.id, predictions=False) == [human]
    statuses = [image.status for image in project.images()]
    assert statuses == ["reviewed", "predicted", "predicted"]
    # predicting again replaces, never accumulates
    again = predict_images(project, "det", threshold=0.0)
    assert len(project.annotations(predictions=True)) == again.predictions == report.predictions


def test_unlabeled_only_and_explicit_ids(project: Project) -> None:
    _save(project, "det", "fasterrcnn_mobilenet_v2_fpn", "detection", ["raccoon", "dog"])
    first = project.images()[0]
    project.add_annotation(first.id, project.category("dog").id, [0, 0, 5, 5])
    report = predict_images(project, "det", unlabeled=True, threshold=0.0)
    assert report.images == 2
    assert not project.annotations(first.id, predictions=True)
    only = project.images()[2].id
    report = predict_images(project, "det", image_ids=[only], threshold=0.0)
    assert report.images == 1
    assert {a.image_id for a in project.annotations(predictions=True)} == {
        i.id for i in project.images()[1:]
    }


def test_categories_map_by_name_and_unknown_classes_are_dropped(project: Project) -> None:
    # the model knows "Raccoon" (other case) and "cat" (not in the project)
    model = _save(project, "m", "fasterrcnn_mobilenet_v2_fpn", "detection", ["Raccoon", "cat"])
    model.roi_heads.score_thresh = 0.0
    expected = {1: 0, 2: 0}
    with torch.inference_mode():
        for image in project.images():
            pixels = decode_for_model(project.image_path(image)).float() / 255
            for label in model([pixels])[0]["labels"].tolist():
                expected[label] += 1
    assert expected[1], "random model should emit both labels at threshold 0"
    assert expected[2], "random model should emit both labels at threshold 0"

    report = predict_images(project, "m", threshold=0.0)

    raccoon = project.category("raccoon").id
    assert {a.category_id for a in project.annotations(predictions=True)} == {raccoon}
    assert report.predictions == expected[1]
    assert report.dropped == expected[2]
    assert report.per_category == {"raccoon": expected[1]}
    assert {c.name for c in project.categories()} == {"raccoon", "dog"}


def test_add_categories_creates_the_models_classes(project: Project) -> None:
    _save(project, "m", "fasterrcnn_mobilenet_v2_fpn", "detection", ["raccoon", "cat"])
    report = predict_images(project, "m", threshold=0.0, add_categories=True)
    assert "cat" in {c.name for c in project.categories()}
    assert report.dropped == 0


def test_instance_masks_are_stored_as_rle(project: Project) -> None:
    net = _save(project, "seg", "maskrcnn_mobilenet_v2_fpn", "instance_segmentation", ["dog"])
    net.roi_heads.detections_per_img = 5
    report = predict_images(project, "seg", threshold=0.0)
    assert report.predictions > 0
    prediction = project.annotations(predictions=True)[0]
    image = project.image(prediction.image_id)
    assert prediction.segmentation["size"] == [image.height, image.width]
    assert isinstance(prediction.segmentation["counts"], str)


def test_keypoints_are_stored_flat(project: Project) -> None:
    _save(
        project,
        "kp",
        "keypointrcnn_mobilenet_v2_fpn",
        "keypoints",
        ["raccoon"],
        num_keypoints=3,
    )
    report = predict_images(project, "kp", threshold=0.0, image_ids=[project.images()[0].id])
    assert report.predictions > 0
    keypoints = project.annotations(predictions=True)[0].keypoints
    assert len(keypoints) == 9
    assert keypoints[2::3] == [2.0, 2.0, 2.0]


def test_semantic_masks_one_per_class_present(project: Project) -> None:
    _save(project, "sem", "lraspp_mobilenet_v2", "semantic_segmentation", ["raccoon", "dog"])
    report = predict_images(project, "sem", threshold=0.0)
    assert report.predictions > 0
    predictions = project.annotations(predictions=True)
    for image in project.images():
        mine = [p for p in predictions if p.image_id == image.id]
        assert len({p.category_id for p in mine}) == len(mine)  # one mask per class
        total = sum(p.area for p in mine)
        assert total == image.width * image.height  # background never wins: every pixel kept
        for p in mine:
            assert p.segmentation["size"] == [image.height, image.width]


def test_unreadable_images_are_reported_not_fatal(project: Project) -> None:
    _save(project, "det", "fasterrcnn_mobilenet_v2_fpn", "detection", ["raccoon", "dog"])
    broken = project.images()[1]
    project.image_path(broken).write_bytes(b"not a png")
    report = predict_images(project, "det", threshold=0.0)
    assert report.images == 2
    assert [image_id for image_id, _ in report.failed] == [broken.id]
    assert "img1.png" in report.failed[0][1]


def test_a_model_object_and_a_stop_event(project: Project) -> None:
    model = build_model("lraspp_mobilenet_v2", 2, pretrained=False).eval()
    card = ModelCard("live", "semantic_segmentation", "lraspp_mobilenet_v2", ["dog"])
    stop = threading.Event()
    stop.set()
    report = predict_images(project, (model, card), stop=stop)
    assert report.stopped
    assert report.images == 0
    report = predict_images(project, (model, card), threshold=0.0, folder="unlabeled")
    assert report.images == 3
    assert {a.source for a in project.annotations(predictions=True)} == {"model:live"}


def test_an_image_resized_on_disk_since_it_was_added_is_skipped_naming_it(
    project: Project,
) -> None:
    _save(project, "det", "fasterrcnn_mobilenet_v2_fpn", "detection", ["raccoon", "dog"])
    resized = project.images()[0]  # recorded 64x48
    path = project.image_path(resized)
    PILImage.open(path).resize((32, 24)).save(path)  # same name, half the size
    report = predict_images(project, "det", threshold=0.0)
    assert report.images == 2
    assert report.failed == [
        (
            resized.id,
            f"{path}: 32x24 pixels on disk but the project recorded 64x48 "
            "(the file changed since it was added); its annotations would be misplaced",
        )
    ]
    assert project.annotations(resized.id) == []  # nothing stored in the wrong frame
