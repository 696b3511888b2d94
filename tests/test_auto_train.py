"""The LabelingApp's auto-train bar without a browser: the switch starts continuous mode
with the Train tab's settings, a round's figures and model show up, Next follows the
expected correction time while it is on, and the switch turns it all off."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import annowidget
from annowidget.effort.sampling import rank_images
from annowidget.store import Project
from annowidget.widgets.app import LabelingApp

BASE = "ssdlite320_mobilenet_v3_large"
TINY = {
    "image_size": 128,
    "batch_size": 8,
    "learning_rate": 0.01,
    "rois_per_image": 32,
    "num_threads": 1,
    "device": "cpu",
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return annowidget.sample_project(tmp_path / "sample")


def _wait(condition, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_switch_runs_rounds_and_next_follows_the_expected_correction_time(
    project: Project,
) -> None:
    app = LabelingApp(project, hyperparameters=TINY, interval=0.05)
    app.training.base_model.value = BASE
    app.training.pretrained.value = False
    bar = app.auto_train
    assert bar in app.children
    assert "auto-train is off" in bar.figures.value
    assert app.annotator.next_order is None
    bar.every.value = 3
    bar.budget.value = 24
    bar.threshold = 0.05  # what the rounds store; the Annotator shows from 0.5
    app.annotator.goto(project.images(folder="unlabeled")[0])
    open_id = app.current_image.id

    bar.switch.value = True  # 24 reviewed images and no model yet: a round is due at once
    assert bar.loop is not None
    assert bar.loop.running
    assert app.annotator.next_order is bar.ranked_next
    _wait(lambda: "auto-1" in [name for _, name in app.predict.model.options])
    report = bar.loop.reports[0]
    assert report.status == "finished"
    assert report.kept == [open_id]  # the open image keeps what it had
    assert project.annotations(open_id) == []
    _wait(lambda: "round <b>1</b> (auto-1)" in bar.figures.value)
    assert "<b>3</b> reviews until the next round" in bar.figures.value
    assert app._gallery_stale

    # Next opens the image a person would spend the most seconds correcting. A barely
    # trained model gives every image the same boxes (a tie: id order), so give the last
    # image more of them just under the threshold: 200 x 0.45 = 90 objects left to draw.
    last = project.images(folder="unlabeled")[-1].id
    raccoon = project.category("raccoon").id
    hesitant = [
        {"category_id": raccoon, "bbox": [float(k % 50), 10.0, 50.0, 50.0], "score": 0.45}
        for k in range(200)
    ]
    project.replace_predictions(last, hesitant, source="model:auto-1")
    ranked = rank_images(project, "expected_cost", threshold=app.annotator.threshold)
    expected = [i for i in ranked if i != open_id]
    in_list_order = [i.id for i in project.images(folder="unlabeled")][1:3]
    assert expected[0] == last != in_list_order[0]  # the ranking, not the list, decides
    app.annotator.next()
    assert app.current_image.id == expected[0]
    app.annotator.next()  # the first one was left unreviewed: not offered again
    assert app.current_image.id == expected[1]
    app.annotator.previous()  # back where Next came from
    assert app.current_image.id == expected[0]

    bar.order.value = "list"  # the user picks another order
    assert app.annotator.next_order is None
    bar.order.value = "expected_cost"
    bar.pause_button.click()
    assert bar.loop.paused
    assert "paused" in bar.figures.value
    bar.switch.value = False
    assert bar.loop.join(60)
    assert app.annotator.next_order is None
    _wait(lambda: "auto-train is off" in bar.figures.value)


def test_ranked_next_passes_over_an_image_another_annotator_has_open(project: Project) -> None:
    from annowidget.widgets.auto_train import RankedNext

    raccoon = project.category("raccoon").id
    top, second = (i.id for i in project.images(folder="unlabeled")[:2])
    for image_id, objects in ((top, 200), (second, 100)):  # the two costliest images
        hesitant = [
            {"category_id": raccoon, "bbox": [float(k % 50), 10.0, 50.0, 50.0], "score": 0.45}
            for k in range(objects)
        ]
        project.replace_predictions(image_id, hesitant, source="model:m")
    project.user = "ana"
    ranked_next = RankedNext(project, folder=lambda: "unlabeled")
    assert ranked_next(None) == top
    with Project.open(project.root) as ben:
        ben.user = "ben"
        assert ben.lease(top)  # ben opens the costliest image in his notebook
        assert ranked_next(None) == second
        ben.release(top)
    assert ranked_next(None) == top
