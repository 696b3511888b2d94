"""Active learning orders on a real project with known prediction scores."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from annowidget.effort import (
    STRATEGIES,
    expected_cost,
    next_image,
    predictions_by_confidence,
    rank_images,
)
from annowidget.store import Project

RACCOON = 1
# image id -> pending prediction scores (None: never predicted)
SCORES: dict[int, list[float] | None] = {
    1: [0.9, 0.55, 0.45],
    2: [0.3],
    3: None,
    4: [0.95, 0.8],
    5: [0.6, 0.62, 0.4, 0.5],
    6: [],  # predicted, the model found nothing
}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images) as created:
        created.add_category("raccoon")
        for index in range(1, 9):
            folder = "other" if index == 8 else "unlabeled"
            created.add_image(f"{index}.jpg", folder=folder, width=640, height=480, checksum="")
        for image_id, scores in [*SCORES.items(), (8, [0.1])]:
            if scores is not None:
                rows = [
                    {"category_id": RACCOON, "bbox": [10.0 * n, 10.0, 20.0, 20.0], "score": s}
                    for n, s in enumerate(scores)
                ]
                created.replace_predictions(image_id, rows, source="model:m")
        created.add_annotation(7, RACCOON, [0, 0, 10, 10])  # image 7: reviewed, 2 boxes
        created.add_annotation(7, RACCOON, [50, 0, 10, 10])
        yield created


def test_least_confident_puts_the_lowest_top_score_first(project: Project) -> None:
    # top scores: 3 -> 0 (never predicted), 6 -> 0 (nothing found), 8 -> .1, 2 -> .3, ...
    assert rank_images(project, "least_confident") == [3, 6, 8, 2, 5, 1, 4]
    assert rank_images(project, "least_confident", folder="unlabeled") == [3, 6, 2, 5, 1, 4]


def test_only_pending_predictions_count(project: Project) -> None:
    (top,) = [a for a in project.annotations(1) if a.score == 0.9]
    project.accept_prediction(top.id)  # image 1 now tops at .55, below image 5's .62
    assert rank_images(project, "least_confident", folder="unlabeled") == [3, 6, 2, 1, 5, 4]


def test_near_threshold_puts_the_most_undecided_boxes_first(project: Project) -> None:
    # within .5 +- .15: image 5 has 4 boxes, image 1 has 2; the rest none, ordered by
    # their box closest to .5 (2: .2 away, 4: .3, 8: .4) and then the images with no box.
    assert rank_images(project, "near_threshold") == [5, 1, 2, 4, 8, 3, 6]
    # a margin of .05 keeps .45 and .55 (inclusive) for image 1 but only .5 for image 5
    assert rank_images(project, "near_threshold", margin=0.05)[:2] == [1, 5]
    assert rank_images(project, "near_threshold", threshold=0.9, margin=0.1)[:2] == [4, 1]


def test_expected_cost_puts_the_most_correction_work_first(project: Project) -> None:
    # 2 boxes per reviewed image expected: images 2, 3, 6, 8 show nothing -> 2 draws = 14 s;
    # then 5 (5.36 s), 1 (4.95 s), 4 (2.25 s).
    assert rank_images(project, "expected_cost") == [2, 3, 6, 8, 5, 1, 4]
    assert expected_cost([0.9, 0.55, 0.45], 0.5, 2.0) == pytest.approx(4.95)
    assert expected_cost([0.6, 0.62, 0.4, 0.5], 0.5, 2.0) == pytest.approx(5.36)
    assert expected_cost([0.95, 0.8], 0.5, 2.0) == pytest.approx(2.25)
    assert expected_cost([], 0.5, 2.0) == pytest.approx(14.0)


def test_random_is_a_seeded_shuffle(project: Project) -> None:
    candidates = [1, 2, 3, 4, 5, 6, 8]
    expected = list(candidates)
    random.Random(3).shuffle(expected)
    assert rank_images(project, "random", seed=3) == expected
    assert rank_images(project, "random", seed=3) == rank_images(project, "random", seed=3)
    orders = {tuple(rank_images(project, "random", seed=seed)) for seed in range(5)}
    assert len(orders) > 1
    assert all(sorted(order) == candidates for order in orders)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_ranks_exactly_the_images_left_to_review(
    project: Project, strategy: str
) -> None:
    assert sorted(rank_images(project, strategy)) == [1, 2, 3, 4, 5, 6, 8]
    project.add_annotation(3, RACCOON, [0, 0, 5, 5])  # image 3 is now reviewed
    assert 3 not in rank_images(project, strategy)


def test_next_image_follows_the_order_and_skips_what_was_skipped(project: Project) -> None:
    assert next_image(project, "least_confident") == 3
    assert next_image(project, "least_confident", exclude={3, 6}) == 8
    assert next_image(project, "least_confident", folder="other", exclude=[8]) is None
    project.add_annotation(3, RACCOON, [0, 0, 5, 5])
    assert next_image(project, "least_confident") == 6


def test_tab_visits_predictions_from_least_to_most_confident(project: Project) -> None:
    by_score = {a.score: a.id for a in project.annotations(1)}
    assert predictions_by_confidence(project, 1) == [by_score[0.45], by_score[0.55], by_score[0.9]]
    shown = predictions_by_confidence(project, 1, threshold=0.5)
    assert shown == [by_score[0.55], by_score[0.9]]
    assert predictions_by_confidence(project, 3) == []
    assert predictions_by_confidence(project, 7) == []  # reviewed boxes are not predictions


def test_equal_scores_keep_the_model_order(project: Project) -> None:
    rows = [{"category_id": RACCOON, "bbox": [0, 0, 5, 5], "score": 0.7} for _ in range(3)]
    ids = [a.id for a in project.replace_predictions(3, rows, source="model:m")]
    assert predictions_by_confidence(project, 3) == ids


def test_bad_arguments_are_refused(project: Project) -> None:
    with pytest.raises(ValueError, match="strategy must be one of"):
        rank_images(project, "most_fun")
    with pytest.raises(ValueError, match="margin"):
        rank_images(project, "near_threshold", margin=-0.1)


def test_least_confident_is_not_the_gallerys_weakest_prediction(project: Project) -> None:
    """Two named meanings: the sampler ranks by the top score (no prediction = most
    uncertain, first); the Gallery's review sort by the lowest score (nothing to check, last)."""
    from annowidget.widgets._gallery_sort import sort_images

    images = project.images(folder="unlabeled", status=("unlabeled", "predicted"))
    annotations = project.annotations_for([image.id for image in images])
    review = [image.id for image in sort_images(images, "weakest prediction", annotations)]
    assert review == [2, 5, 1, 4, 3, 6]  # minimum scores .3, .4, .45, .8, then none
    assert rank_images(project, "least_confident", folder="unlabeled") == [3, 6, 2, 5, 1, 4]
    old = [image.id for image in sort_images(images, "lowest confidence", annotations)]
    assert old == review  # the old name still works
