"""Free ongoing evaluation: models scored on the images people corrected after them."""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annowidget.effort import ongoing_evaluation
from annowidget.store import Project

RACCOON, DOG = 1, 2


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images) as created:
        created.add_category("raccoon")
        created.add_category("dog")
        for index in range(12):
            created.add_image(f"{index}.jpg", width=640, height=480, checksum="0" * 40)
        yield created


def predict(project: Project, image_id: int, model: str, boxes: list[tuple]) -> list[int]:
    rows = [{"category_id": c, "bbox": list(b), "score": s} for c, b, s in boxes]
    return [a.id for a in project.replace_predictions(image_id, rows, source=f"model:{model}")]


@pytest.fixture
def reviewed(project: Project) -> Project:
    """r1 pre-labels images 1 and 2, r2 images 3 and 5; image 4 is drawn from scratch."""
    a, b, c, _d = predict(
        project,
        1,
        "r1",
        [
            (RACCOON, (0, 0, 100, 100), 0.9),
            (RACCOON, (200, 200, 50, 50), 0.8),
            (RACCOON, (300, 300, 40, 40), 0.6),
            (RACCOON, (400, 400, 40, 40), 0.3),  # hidden, left pending at submit
        ],
    )
    project.accept_prediction(a)
    project.update_annotation(b, bbox=[205, 200, 50, 50])  # IoU 0.82 with the prediction
    project.delete_annotation(c)
    project.add_annotation(1, RACCOON, [100, 300, 50, 50])  # a miss
    project.set_status(1, "reviewed")

    (dog,) = predict(project, 2, "r1", [(DOG, (10, 10, 50, 50), 0.7)])
    project.update_annotation(dog, category_id=RACCOON)  # right box, wrong class

    predict(project, 3, "r2", [(RACCOON, (0, 0, 10, 10), 0.9)])  # not reviewed yet
    project.add_annotation(4, RACCOON, [0, 0, 10, 10])
    (good,) = predict(project, 5, "r2", [(RACCOON, (0, 0, 10, 10), 0.9)])
    project.accept_prediction(good)
    return project


def test_each_model_is_scored_on_the_images_it_prelabeled(reviewed: Project) -> None:
    scores = ongoing_evaluation(reviewed)
    assert list(scores) == ["r1", "r2"]
    r1 = scores["r1"]
    assert (r1.images, r1.image_ids, r1.ground_truth) == (2, (1, 2), 4)
    assert (r1.predictions, r1.true_positives) == (4, 2)  # 0.3 is under the threshold
    assert (r1.precision, r1.recall) == (0.5, 0.5)
    # raccoon: hits at ranks 1-2 of 4 boxes to find -> precision 1 up to recall 0.5; the dog
    # class has no ground truth here and is left out, as COCOeval does.
    assert r1.ap50 == pytest.approx(51 / 101)
    assert r1.ap50_per_category == {RACCOON: pytest.approx(51 / 101)}
    r2 = scores["r2"]
    assert (r2.images, r2.image_ids, r2.precision, r2.recall) == (1, (5,), 1.0, 1.0)
    assert r2.ap50 == pytest.approx(1.0)


def test_one_image_known_answer(project: Project) -> None:
    a, b, c, _d = predict(
        project,
        1,
        "m",
        [
            (RACCOON, (0, 0, 100, 100), 0.9),
            (RACCOON, (200, 200, 50, 50), 0.8),
            (RACCOON, (300, 300, 40, 40), 0.6),
            (RACCOON, (400, 400, 40, 40), 0.3),
        ],
    )
    project.accept_prediction(a)
    project.update_annotation(b, bbox=[205, 200, 50, 50])
    project.delete_annotation(c)
    project.add_annotation(1, RACCOON, [100, 300, 50, 50])
    project.set_status(1, "reviewed")
    score = ongoing_evaluation(project)["m"]
    assert (score.precision, score.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert score.ap50 == pytest.approx(67 / 101)  # precision 1 up to recall 2/3
    loose = ongoing_evaluation(project, threshold=0.25)["m"]
    assert (loose.predictions, loose.precision) == (4, 0.5)
    strict = ongoing_evaluation(project, iou=0.9)["m"]
    assert strict.true_positives == 1  # the adjusted box overlaps its final box by 0.82
    assert strict.ap50 == pytest.approx(67 / 101)  # AP50 stays at IoU 0.5


def test_images_not_reviewed_or_replaced_unseen_do_not_count(project: Project) -> None:
    predict(project, 1, "m", [(RACCOON, (0, 0, 10, 10), 0.9)])  # pending, image predicted
    first, _ = predict(
        project, 2, "m", [(RACCOON, (0, 0, 10, 10), 0.9), (DOG, (50, 50, 9, 9), 0.8)]
    )
    project.accept_prediction(first)
    (other,) = predict(project, 2, "n", [(DOG, (50, 50, 10, 10), 0.8)])  # the dog box is lost
    project.accept_prediction(other)
    scores = ongoing_evaluation(project)
    assert list(scores) == ["n"]
    assert (scores["n"].image_ids, scores["n"].precision) == ((2,), 1.0)
    assert scores["n"].recall == 0.5  # the raccoon kept from m's run is ground truth too


def test_a_model_that_found_nothing_has_no_precision_and_zero_recall(project: Project) -> None:
    predict(project, 1, "blind", [])
    project.add_annotation(1, RACCOON, [0, 0, 10, 10])
    score = ongoing_evaluation(project)["blind"]
    assert (score.images, score.predictions, score.precision, score.recall) == (1, 0, None, 0.0)
    assert score.ap50 == 0.0


def test_no_model_no_scores(project: Project) -> None:
    project.add_annotation(1, RACCOON, [0, 0, 10, 10])
    assert ongoing_evaluation(project) == {}


def test_bad_iou_is_refused(project: Project) -> None:
    with pytest.raises(ValueError, match="iou"):
        ongoing_evaluation(project, iou=0.0)


def _jitter(rng: random.Random, box: list[float], amount: float) -> list[float]:
    x, y, w, h = box
    return [x + rng.uniform(-amount, amount), y + rng.uniform(-amount, amount), w, h]


def test_ap50_agrees_with_pycocotools(project: Project) -> None:
    rng = random.Random(7)
    truth: dict[int, list[tuple[int, list[float]]]] = {}
    detections: dict[int, list[tuple[int, list[float], float]]] = {}
    for image_id in range(1, 11):
        gts = [
            (rng.choice([RACCOON, DOG]), [rng.uniform(0, 500), rng.uniform(0, 350), 60.0, 50.0])
            for _ in range(rng.randint(0, 4))
        ]
        boxes = [(c, _jitter(rng, b, 30.0)) for c, b in gts if rng.random() < 0.8]
        boxes += [
            (rng.choice([RACCOON, DOG]), [rng.uniform(0, 500), rng.uniform(0, 350), 40.0, 40.0])
            for _ in range(rng.randint(0, 2))
        ]
        dets = [(c, b, round(rng.random(), 3)) for c, b in boxes]
        truth[image_id], detections[image_id] = gts, dets
        # The person rejects every prediction and draws the truth: the log keeps the rest.
        for annotation_id in predict(project, image_id, "m", dets):
            project.delete_annotation(annotation_id)
        for category, box in gts:
            project.add_annotation(image_id, category, box)
        project.set_status(image_id, "reviewed")

    ours = ongoing_evaluation(project)["m"]
    assert ours.images == 10
    assert ours.ap50 == pytest.approx(_coco_ap50(truth, detections), abs=1e-9)
    assert 0.05 < ours.ap50 < 0.95  # a case with hits and misses, not a trivial one


def _coco_ap50(truth: dict, detections: dict) -> float:
    dataset = {
        "images": [{"id": i, "width": 640, "height": 480} for i in truth],
        "categories": [{"id": RACCOON, "name": "raccoon"}, {"id": DOG, "name": "dog"}],
        "annotations": [
            {"id": n, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
            for n, (i, c, b) in enumerate(
                ((i, c, b) for i, rows in truth.items() for c, b in rows), start=1
            )
        ],
    }
    results = [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, rows in detections.items()
        for c, b, s in rows
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints its progress
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1])
