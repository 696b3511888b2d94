"""The effort meter on scripted action logs with known answers.

Edits go through the real store on a real SQLite file; the store's clock is set by the
``clock`` fixture, so every logged action carries a chosen timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from annowidget.effort import effort_per_image, effort_per_round
from annowidget.store import Project
from annowidget.store import annotations as store_annotations

T0 = 1_700_000_000.0


class Clock:
    """The store's clock in tests: ``clock.at(12)`` logs what follows at ``T0 + 12`` s."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float) -> Clock:
        self.now = T0 + seconds
        return self


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(store_annotations, "now", clock)
    return clock


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images) as created:
        created.add_category("raccoon")
        created.add_category("dog")
        for name in "abcd":
            created.add_image(f"{name}.jpg", width=640, height=480, checksum="0" * 40)
        yield created


RACCOON, DOG = 1, 2


def predict(project: Project, image_id: int, model: str, boxes: list[tuple]) -> list[int]:
    rows = [{"category_id": c, "bbox": list(b), "score": s} for c, b, s in boxes]
    return [a.id for a in project.replace_predictions(image_id, rows, source=f"model:{model}")]


def view(project: Project, image_id: int) -> None:
    project.log_action("view", image_id=image_id)


@pytest.fixture
def campaign(project: Project, clock: Clock) -> Project:
    """Four images: one corrected after round r1, one from scratch, two after round r2."""
    clock.at(0)
    p1, p2, p3, p4, _hidden = predict(
        project,
        1,
        "r1",
        [
            (RACCOON, (10, 10, 100, 100), 0.9),
            (RACCOON, (200, 200, 50, 50), 0.8),
            (RACCOON, (300, 300, 40, 40), 0.7),
            (RACCOON, (0, 0, 20, 20), 0.6),
            (RACCOON, (400, 10, 30, 30), 0.2),  # under the threshold: never shown
        ],
    )
    clock.at(100)
    view(project, 1)  # the first action of the log counts 0 s
    clock.at(103)
    project.accept_prediction(p1)  # +3
    clock.at(108)
    project.update_annotation(p2, bbox=[205, 200, 50, 50])  # +5, IoU 2250/2750
    clock.at(110)
    project.update_annotation(p3, category_id=DOG)  # +2
    clock.at(111)
    project.delete_annotation(p4)  # +1
    clock.at(160)
    project.add_annotation(1, RACCOON, [500, 400, 60, 60], duration=6.0)  # gap 49 > 30: 6
    clock.at(162)
    project.set_status(1, "reviewed")  # +2  -> image 1: 19 s

    clock.at(170)
    view(project, 2)  # +8 (from the last action, on image 1)
    clock.at(177)
    project.add_annotation(2, RACCOON, [1, 1, 50, 50])  # +7
    clock.at(180)
    wrong = project.add_annotation(2, DOG, [60, 60, 50, 50])  # +3
    clock.at(181)
    project.delete_annotation(wrong.id)  # +1
    clock.at(185)
    project.set_status(2, "reviewed")  # +4  -> image 2: 23 s, one box drawn

    clock.at(190)  # a batch prediction run: program entries, not a person's time
    q1, q2 = predict(
        project, 3, "r2", [(RACCOON, (5, 5, 50, 50), 0.95), (DOG, (80, 80, 40, 40), 0.85)]
    )
    r1, _r2 = predict(project, 4, "r2", [(DOG, (5, 5, 50, 50), 0.9), (DOG, (90, 90, 9, 9), 0.7)])
    clock.at(200)
    view(project, 3)  # +15 (from 185: the predict entries at 190 do not cut the gap)
    clock.at(202)
    project.accept_prediction(q1)  # +2
    clock.at(203)
    project.accept_prediction(q2)  # +1 -> image 3: 18 s, reviewed by the store itself

    clock.at(300)
    view(project, 4)  # gap 97 > 30: 0
    clock.at(301)
    project.update_annotation(r1, bbox=[5.3, 5, 50, 50])  # +1, a 0.3 px nudge: unchanged
    return project  # image 4 is left half done


def by_image(efforts: list) -> dict:
    return {e.image_id: e for e in efforts}


def test_each_image_gets_its_seconds_and_box_outcomes(campaign: Project) -> None:
    efforts = by_image(effort_per_image(campaign))
    one = efforts[1]
    assert (one.model, one.seconds, one.predictions) == ("r1", 19.0, 5)
    assert (one.accepted_unchanged, one.adjusted, one.relabeled) == (1, 1, 1)
    assert (one.deleted_false_positives, one.drawn_from_scratch, one.unreviewed) == (1, 1, 1)
    assert one.adjusted_iou == [pytest.approx(2250 / 2750)]
    assert one.reviewed
    two = efforts[2]
    assert (two.model, two.seconds, two.drawn_from_scratch, two.predictions) == (None, 23.0, 1, 0)
    three = efforts[3]
    assert (three.model, three.seconds, three.accepted_unchanged, three.reviewed) == (
        "r2",
        18.0,
        2,
        True,
    )
    four = efforts[4]
    assert (four.seconds, four.accepted_unchanged, four.unreviewed, four.reviewed) == (
        1.0,
        1,
        1,
        False,
    )
    assert [e.image_id for e in effort_per_image(campaign)] == [1, 2, 3, 4]


def test_rounds_aggregate_reviewed_images_in_the_order_they_started(campaign: Project) -> None:
    rounds = effort_per_round(campaign)
    assert [r.model for r in rounds] == ["r1", None, "r2"]
    r1, scratch, r2 = rounds
    assert (r1.images, r1.seconds_per_image, r1.predictions) == (1, 19.0, 5)
    assert r1.share_accepted_unchanged == pytest.approx(1 / 4)
    assert r1.mean_adjusted_iou == pytest.approx(2250 / 2750)
    assert (r1.false_positives_per_image, r1.misses_per_image) == (1.0, 1.0)
    assert (scratch.images, scratch.seconds_per_image, scratch.misses_per_image) == (1, 23.0, 1.0)
    assert scratch.share_accepted_unchanged is None
    assert (r2.images, r2.seconds, r2.share_accepted_unchanged) == (1, 18.0, 1.0)
    assert r2.mean_adjusted_iou is None


def test_half_done_images_count_only_when_asked(campaign: Project) -> None:
    r2 = effort_per_round(campaign, reviewed_only=False)[-1]
    assert (r2.model, r2.images, r2.seconds, r2.seconds_per_image) == ("r2", 2, 19.0, 9.5)
    assert (r2.accepted_unchanged, r2.predictions) == (3, 4)


def test_a_longer_idle_gap_counts_the_pause_instead_of_the_duration(campaign: Project) -> None:
    one = by_image(effort_per_image(campaign, idle_gap=60.0))[1]
    assert one.seconds == 19.0 - 6.0 + 49.0  # the 49 s pause now counts, holding the 6 s
    four = by_image(effort_per_image(campaign, idle_gap=100.0))[4]
    assert four.seconds == 97.0 + 1.0


def test_a_gap_of_exactly_idle_gap_counts_and_a_longer_one_does_not(
    project: Project, clock: Clock
) -> None:
    clock.at(0)
    view(project, 1)
    clock.at(30)
    project.add_annotation(1, RACCOON, [0, 0, 5, 5])
    clock.at(60.5)
    project.add_annotation(1, RACCOON, [9, 9, 5, 5])
    assert effort_per_image(project, idle_gap=30.0)[0].seconds == 30.0
    assert effort_per_image(project, idle_gap=30.5)[0].seconds == 60.5
    assert effort_per_image(project, idle_gap=29.9)[0].seconds == 0.0


def test_going_back_and_forth_between_images_never_counts_time_twice(
    project: Project, clock: Clock
) -> None:
    for t, image_id, act in [(0, 1, "view"), (5, 1, "add"), (6, 2, "view"), (20, 2, "add")]:
        clock.at(t)
        if act == "view":
            view(project, image_id)
        else:
            project.add_annotation(image_id, RACCOON, [t, t, 5, 5])
    clock.at(21)
    view(project, 1)
    clock.at(22)
    project.add_annotation(1, RACCOON, [30, 30, 5, 5])
    efforts = by_image(effort_per_image(project))
    assert (efforts[1].seconds, efforts[2].seconds) == (7.0, 15.0)
    assert efforts[1].seconds + efforts[2].seconds == 22.0  # the wall-clock time
    assert efforts[1].drawn_from_scratch == 2


def test_durations_logged_at_one_instant_add_up(project: Project, clock: Clock) -> None:
    # A simulated annotator logs its cost model's seconds without waiting for them.
    (prediction,) = predict(project, 1, "sim", [(RACCOON, (1, 1, 20, 20), 0.9)])
    project.accept_prediction(prediction, duration=1.8)
    project.add_annotation(1, RACCOON, [40, 40, 20, 20], duration=7.0)
    (effort,) = effort_per_image(project)
    assert effort.seconds == pytest.approx(8.8)
    assert (effort.accepted_unchanged, effort.drawn_from_scratch) == (1, 1)


def test_looking_before_asking_for_predictions_belongs_to_that_round(
    project: Project, clock: Clock
) -> None:
    clock.at(0)
    view(project, 1)
    clock.at(2)
    (prediction,) = predict(project, 1, "r1", [(RACCOON, (1, 1, 20, 20), 0.9)])
    clock.at(4)
    project.accept_prediction(prediction)
    (effort,) = effort_per_image(project)
    assert (effort.model, effort.seconds, effort.started) == ("r1", 4.0, T0)


def test_a_new_prediction_run_starts_a_new_round_on_the_image(
    project: Project, clock: Clock
) -> None:
    clock.at(0)
    kept, _ = predict(
        project, 1, "r1", [(RACCOON, (1, 1, 20, 20), 0.9), (DOG, (50, 50, 9, 9), 0.4)]
    )
    clock.at(1)
    project.accept_prediction(kept)
    clock.at(3)  # the pending dog box is replaced unseen
    (newer,) = predict(project, 1, "r2", [(DOG, (50, 50, 10, 10), 0.8)])
    clock.at(7)
    project.accept_prediction(newer)
    first, second = effort_per_image(project)
    assert (first.model, first.accepted_unchanged, first.unreviewed, first.seconds) == (
        "r1",
        1,
        1,
        0.0,
    )
    assert (second.model, second.accepted_unchanged, second.seconds) == ("r2", 1, 6.0)
    assert [r.model for r in effort_per_round(project)] == ["r1", "r2"]


def test_undone_deletes_are_followed_to_the_end(project: Project, clock: Clock) -> None:
    (prediction,) = predict(project, 1, "r1", [(RACCOON, (1, 1, 20, 20), 0.9)])
    drawn = project.add_annotation(1, DOG, [40, 40, 20, 20])
    project.delete_annotation(prediction)
    project.delete_annotation(drawn.id)
    project.restore_annotation(project.actions()[-2].payload["before"])  # undo the reject
    project.restore_annotation(project.actions()[-2].payload["before"])  # undo the delete
    project.accept_prediction(prediction)
    (effort,) = effort_per_image(project)
    assert (effort.accepted_unchanged, effort.deleted_false_positives) == (1, 0)
    assert effort.drawn_from_scratch == 1


def test_an_undone_correction_leaves_the_prediction_unreviewed(
    project: Project, clock: Clock
) -> None:
    moved, accepted = predict(
        project, 1, "r1", [(RACCOON, (1, 1, 20, 20), 0.9), (DOG, (50, 50, 20, 20), 0.8)]
    )
    project.update_annotation(moved, bbox=[30, 1, 20, 20])
    project.accept_prediction(accepted)
    # Undo as the Annotator's EditHistory does it: delete the row, restore the prediction.
    for annotation_id in (moved, accepted):
        before = next(
            a.payload["before"] for a in project.actions() if a.annotation_id == annotation_id
        )
        project.delete_annotation(annotation_id)
        project.restore_annotation(before)
    (effort,) = effort_per_image(project)
    assert (effort.unreviewed, effort.adjusted, effort.accepted_unchanged) == (2, 0, 0)
    project.accept_prediction(moved)  # and now accepted as the model had it
    (effort,) = effort_per_image(project)
    assert (effort.unreviewed, effort.accepted_unchanged) == (1, 1)


def test_imported_boxes_and_other_images_are_not_effort(project: Project, clock: Clock) -> None:
    project.add_annotation(1, RACCOON, [1, 1, 5, 5], source="import:coco")
    project.move_images([1, 2], "train")
    assert effort_per_image(project) == []
    assert effort_per_round(project) == []


@pytest.mark.parametrize("idle_gap", [0.0, -1.0, float("nan")])
def test_a_non_positive_idle_gap_is_refused(project: Project, idle_gap: float) -> None:
    with pytest.raises(ValueError, match="idle_gap"):
        effort_per_image(project, idle_gap=idle_gap)


# ---------------------------------------------------------------- browsing is not labeling
def test_browsing_reviewed_images_is_not_labeling(project: Project, clock: Clock) -> None:
    """The reported session: Space through imported, reviewed images, then label one image
    from scratch. Only the labeled image enters the baseline, with only its own seconds."""
    project.add_annotations_bulk(  # images 1-3 arrive labeled (one "import" log entry)
        [(i, {"category_id": RACCOON, "bbox": [1, 1, 30, 30]}) for i in (1, 2, 3)]
    )
    for t, image_id in [(0, 1), (1.2, 2), (2.0, 3)]:  # Space, Space, Space
        clock.at(t)
        view(project, image_id)
    clock.at(3.0)
    project.set_status(3, "reviewed")  # Enter on a reviewed image: moving on, not work
    clock.at(4.0)
    view(project, 4)  # unlabeled: labeling starts here (+1, the gap before opening it)
    clock.at(10.0)
    project.add_annotation(4, RACCOON, [5, 5, 40, 40])
    clock.at(12.0)
    project.set_status(4, "reviewed")

    efforts = effort_per_image(project)
    assert [(e.image_id, e.model, e.seconds) for e in efforts] == [(4, None, 9.0)]
    (scratch,) = effort_per_round(project)
    assert (scratch.model, scratch.images, scratch.seconds_per_image) == (None, 1, 9.0)


def test_touching_up_a_labeled_image_is_not_the_from_scratch_baseline(
    project: Project, clock: Clock
) -> None:
    project.add_annotations_bulk([(1, {"category_id": RACCOON, "bbox": [1, 1, 30, 30]})])
    (imported,) = project.annotations(1)
    clock.at(0)
    view(project, 1)
    clock.at(5)
    project.update_annotation(imported.id, bbox=[2, 1, 30, 30])  # a fix, not labeling
    clock.at(6)
    view(project, 2)
    clock.at(16)
    project.add_annotation(2, DOG, [0, 0, 9, 9])
    clock.at(18)
    project.set_status(2, "reviewed")
    assert [(e.image_id, e.seconds) for e in effort_per_image(project)] == [(2, 13.0)]
    assert [(r.model, r.images) for r in effort_per_round(project)] == [(None, 1)]


def test_looking_again_at_a_finished_image_adds_no_seconds(project: Project, clock: Clock) -> None:
    clock.at(0)
    view(project, 1)
    clock.at(9)
    project.add_annotation(1, RACCOON, [1, 1, 20, 20])  # reviewed by the store itself
    clock.at(10)
    view(project, 2)
    clock.at(20)
    view(project, 1)  # back to image 1, only looking: not counted
    clock.at(25)
    view(project, 2)  # and on to image 2 again
    clock.at(30)
    project.add_annotation(2, DOG, [5, 5, 20, 20])
    clock.at(40)
    view(project, 1)
    clock.at(42)
    project.add_annotation(1, DOG, [50, 50, 20, 20])  # looking then working: both count
    efforts = by_image(effort_per_image(project))
    assert (efforts[1].seconds, efforts[2].seconds) == (9.0 + 10.0 + 2.0, 1.0 + 5.0 + 5.0)
    assert efforts[1].drawn_from_scratch == 2


def test_browsing_past_predictions_is_not_a_round(project: Project, clock: Clock) -> None:
    project.add_annotations_bulk([(1, {"category_id": RACCOON, "bbox": [1, 1, 30, 30]})])
    clock.at(0)
    predict(project, 1, "r1", [(RACCOON, (1, 1, 30, 30), 0.9)])  # on a reviewed image
    predict(project, 2, "r1", [(RACCOON, (1, 1, 30, 30), 0.9)])
    clock.at(1)
    view(project, 1)  # only looked: no round
    clock.at(3)
    view(project, 2)
    clock.at(4)
    project.set_status(2, "reviewed")  # predictions left pending, but the status changed
    assert [(e.image_id, e.model, e.seconds) for e in effort_per_image(project)] == [(2, "r1", 3.0)]


# ------------------------------------------------ the quickstart's "See the gain", as reported
def test_see_the_gain_after_browsing_then_labeling(tmp_path: Path, clock: Clock) -> None:
    """The session from the report, through the real sample project, the real Annotator (fed
    the messages its front end sends) and the quickstart's own summary: Space through 11
    reviewed images, label 2 unlabeled ones from scratch, correct 3 after model-1. The
    baseline is the 2 labeled images at their own seconds, not 13 images of browsing."""
    from annowidget import sample_project
    from annowidget.effort import gain_summary
    from annowidget.widgets import Annotator

    project = sample_project(tmp_path / "sample")
    raccoon = project.category("raccoon").id
    unlabeled = [image.id for image in project.images(folder="unlabeled")]
    clock.at(0)
    browse = Annotator(project, folder="train")
    t = 0.0
    for _ in range(11):  # Space through reviewed images, 0.7-2.4 s each
        t += 1.5
        clock.at(t)
        browse._handle_custom_msg({"type": "next", "seq": 0}, [])
    reviewed_views = {a.image_id for a in project.actions() if a.action == "view"}
    assert len(reviewed_views) == 12  # the first image and 11 more, all reviewed

    label = Annotator(project, folder="unlabeled")
    assert label.image.id == unlabeled[0]
    for seconds in (20.0, 16.0):  # two images from scratch: draw one box, Enter
        t += 1.0
        clock.at(t)  # the Annotator logs its "view" as the image opens; the box comes later
        t += seconds - 2.0
        clock.at(t)
        label._handle_custom_msg(
            {"type": "add", "category_id": raccoon, "bbox": [10, 10, 80, 60], "seq": 1}, []
        )
        t += 1.0
        clock.at(t)
        label._handle_custom_msg({"type": "submit", "seq": 2}, [])
    for image_id in unlabeled[2:5]:  # model-1 pre-labels three; each takes 4 s to accept
        rows = [{"category_id": raccoon, "bbox": [5, 5, 50, 50], "score": 0.9}]
        (prediction,) = project.replace_predictions(image_id, rows, source="model:model-1")
        t += 2.0
        clock.at(t)
        label.goto(image_id)
        t += 1.0
        clock.at(t)
        label._handle_custom_msg({"type": "accept", "id": prediction.id, "seq": 3}, [])
        t += 1.0
        clock.at(t)
        project.set_status(image_id, "reviewed")

    text = gain_summary(project)
    scratch_line = next(line for line in text.splitlines() if "from scratch:" in line)
    # 19 s + 16 s: Enter after drawing logs nothing (the box already made the image
    # reviewed), so the second of it counts as opening the next image; browsing counts 0.
    assert "from scratch: 2 image(s), 17.5 s/image" in scratch_line
    assert "model-1: 3 image(s), 4.3 s/image (0.25x from scratch), kept unchanged: 100%" in text
    assert [e.seconds for e in effort_per_image(project)] == [19.0, 16.0, 5.0, 4.0, 4.0]
    (scratch, model_1) = effort_per_round(project)
    assert {e.image_id for e in effort_per_image(project) if e.model is None} == set(unlabeled[:2])
    assert (scratch.images, model_1.images) == (2, 3)


def test_an_accepted_prediction_is_not_taken_for_an_imported_label(
    project: Project, clock: Clock
) -> None:
    # Images imported in bulk leave no per-image log entry. Image 5's first prediction is
    # accepted, the second waits: coming back to it later is coming back to work, not to a
    # reviewed image (the accepted box is not an imported label).
    (new,) = project.add_images_bulk([{"path": "e.jpg", "width": 640, "height": 480}])
    clock.at(0)
    first, second = predict(
        project, new, "r1", [(RACCOON, (1, 1, 20, 20), 0.9), (DOG, (50, 50, 20, 20), 0.8)]
    )
    clock.at(1)
    view(project, new)
    clock.at(2)
    project.accept_prediction(first)  # +1
    clock.at(4)
    view(project, 2)  # elsewhere: +2 to image 2, only looked
    clock.at(5)
    view(project, new)  # +1: a look at an image that still needs work counts
    clock.at(6)
    view(project, 2)
    clock.at(7)
    view(project, new)  # +1
    clock.at(9)
    project.delete_annotation(second)  # +2
    (effort,) = effort_per_image(project)
    assert (effort.image_id, effort.model) == (new, "r1")
    assert effort.seconds == 0.0 + 1.0 + 1.0 + 1.0 + 2.0


def test_a_status_the_log_first_mentions_in_a_set_status_is_its_before(
    project: Project, clock: Clock
) -> None:
    # Images bulk-added as reviewed without boxes (negatives) leave no per-image log entry:
    # the first set_status on one says what it was. Boxing a reviewed negative is touching
    # up a labeled image; the bulk-added unlabeled image is the one labeled from scratch.
    rows = [{"path": f"n{i}.jpg", "width": 64, "height": 64, "status": "reviewed"} for i in (1, 2)]
    negative, other, fresh = project.add_images_bulk(
        [*rows, {"path": "n3.jpg", "width": 64, "height": 64}]
    )
    clock.at(0)
    project.set_status(negative, "unlabeled")  # "this one needs a box after all"
    clock.at(5)
    project.add_annotation(negative, RACCOON, [1, 1, 9, 9])
    clock.at(6)
    view(project, other)
    clock.at(8)
    project.set_status(other, "reviewed")  # reviewed -> reviewed: moving on, not work
    clock.at(9)
    view(project, fresh)
    clock.at(15)
    project.add_annotation(fresh, RACCOON, [1, 1, 9, 9])
    assert [(e.image_id, e.model, e.seconds) for e in effort_per_image(project)] == [
        (fresh, None, 7.0)
    ]
