"""EffortPanel widget state, without a browser, on a real project with a scripted log.

The store's clock is set for every edit, so the seconds are known; the panel must show what
the effort meter and the ongoing evaluation compute, and follow Refresh and the idle gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from annowidget.effort import effort_per_round, ongoing_evaluation
from annowidget.store import Project
from annowidget.store import annotations as store_annotations
from annowidget.widgets.effort_panel import FROM_SCRATCH, EffortPanel

T0 = 1_700_000_000.0
RACCOON = 1


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(store_annotations, "now", clock)
    return clock


@pytest.fixture
def project(tmp_path: Path, clock: Clock) -> Iterator[Project]:
    """Round by round: image 1 from scratch (16 s), image 2 after r1 (12 s), 3 after r2 (4 s)."""
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images) as project:
        project.add_category("raccoon")
        for name in "abcde":
            project.add_image(f"{name}.jpg", width=200, height=200, checksum="0" * 40)
        clock.at(0)
        project.add_annotation(1, RACCOON, [10, 10, 50, 50], duration=7.0)
        clock.at(7)
        project.add_annotation(1, RACCOON, [100, 100, 50, 50])  # +7
        clock.at(9)
        project.set_status(1, "reviewed")  # +2 -> 16 s

        clock.at(100)
        rows = [
            {"category_id": RACCOON, "bbox": [10, 10, 50, 50], "score": 0.7},
            {"category_id": RACCOON, "bbox": [150, 0, 40, 40], "score": 0.6},
        ]
        keep, wrong = project.replace_predictions(2, rows, source="model:r1")
        clock.at(110)
        project.add_annotation(2, RACCOON, [100, 100, 60, 60], duration=7.0)  # after 101 s: 7
        clock.at(112)
        project.update_annotation(keep.id, bbox=[12, 10, 50, 50])  # +2
        clock.at(114)
        project.delete_annotation(wrong.id)  # +2 -> 11 s, reviewed by the store
        clock.at(115)
        project.set_status(2, "reviewed")  # +1 -> 12 s

        clock.at(200)
        rows = [{"category_id": RACCOON, "bbox": [20, 20, 80, 80], "score": 0.9}]
        (good,) = project.replace_predictions(3, rows, source="model:r2")
        clock.at(203)
        project.log_action("view", image_id=3)  # after 88 s: 0
        clock.at(206)
        project.accept_prediction(good.id)  # +3
        clock.at(207)
        project.set_status(3, "reviewed")  # +1 -> 4 s
        yield project


def _traces(panel: EffortPanel) -> dict:
    return {trace.name: trace for trace in panel.figure.data}


def test_panel_shows_what_the_meter_computes(project: Project) -> None:
    panel = EffortPanel(project)
    rounds = effort_per_round(project)
    scores = ongoing_evaluation(project)

    traces = _traces(panel)
    seconds = traces["seconds per image"]
    assert list(seconds.x) == [FROM_SCRATCH, "r1", "r2"]
    assert list(seconds.y) == [r.seconds_per_image for r in rounds]
    assert list(seconds.y) == [16.0, 12.0, 4.0]  # the scripted log's known answers
    shares = traces["accepted unchanged (%)"]
    assert list(shares.y) == [None, 0.0, 100.0]  # r1: adjusted one, deleted one; r2: kept
    assert list(traces["precision"].x) == ["r1", "r2"]
    assert list(traces["precision"].y) == [scores["r1"].precision, scores["r2"].precision]
    assert list(traces["recall"].y) == [0.5, 1.0]  # r1 found 1 of 2 raccoons, r2 1 of 1
    assert list(traces["AP50"].y) == [scores["r1"].ap50, scores["r2"].ap50]

    table = panel.table.value
    assert table.count("<tr>") == 4  # header + three rounds
    assert ">16.0<" in table
    assert ">12.0<" in table
    assert "1 (0.92)" in table  # r1: one box adjusted, IoU 2300/2500 with its prediction
    assert "3 round(s), 3 reviewed image(s)" in panel.message.value


def test_refresh_and_idle_gap_follow_the_log(project: Project, clock: Clock) -> None:
    panel = EffortPanel(project)
    clock.at(300)
    rows = [{"category_id": RACCOON, "bbox": [0, 0, 30, 30], "score": 0.8}]
    (miss,) = project.replace_predictions(4, rows, source="model:r2")
    clock.at(301)
    project.add_annotation(4, RACCOON, [100, 0, 30, 30], duration=7.0)  # +7
    clock.at(309)
    project.delete_annotation(miss.id)  # +8
    clock.at(310)
    project.set_status(4, "reviewed")  # +1 -> 16 s

    assert list(_traces(panel)["seconds per image"].y)[-1] == 4.0  # not re-read yet
    panel.refresh_button.click()
    assert list(_traces(panel)["seconds per image"].y)[-1] == 10.0  # (4 + 16) / 2
    assert panel.rounds == effort_per_round(project)

    panel.idle_gap.value = 7.5  # the 8 s pause before the delete is now idle time
    expected = [r.seconds_per_image for r in effort_per_round(project, idle_gap=7.5)]
    assert list(_traces(panel)["seconds per image"].y) == expected
    assert expected[-1] == 6.0  # (4 + 8) / 2


def test_empty_project_and_errors_are_shown_not_raised(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    project = Project.create(tmp_path / "proj", images_root=images)
    panel = EffortPanel(project)
    assert panel.message.value == "no reviewed work in the action log yet"
    assert list(_traces(panel)["seconds per image"].y) == []
    assert panel.table.value == ""

    project.close()
    (tmp_path / "proj" / "project.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / "proj" / f"project.sqlite{suffix}").unlink(missing_ok=True)
    (tmp_path / "proj" / "project.sqlite").mkdir()  # not a database any more
    assert panel.refresh() is False
    assert "could not read the effort" in panel.message.value


def test_axes_titles_and_threshold_are_where_they_belong(project: Project) -> None:
    panel = EffortPanel(project)
    layout = panel.figure.layout
    cost_title, score_title = (a.text for a in layout.annotations)
    assert cost_title == "labeling cost per round"
    assert "score ≥ 0.50" in score_title  # the threshold precision and recall counted from
    # Stacked, not side by side: the two titles sit on different rows and cannot overlap.
    assert layout.annotations[0].y > layout.annotations[1].y
    # The % axis belongs to the cost chart (overlays its y axis), with round ticks.
    assert layout.yaxis2.title.text == "accepted unchanged (%)"
    assert layout.yaxis2.overlaying == "y"
    assert list(layout.yaxis2.tickvals) == [0, 25, 50, 75, 100]
    # The score chart has its own 0-1 axis, titled as such.
    assert layout.yaxis3.title.text == "score (0-1)"
    assert tuple(layout.yaxis3.range) == (0, 1.05)
    assert "precision (score ≥ 0.50)" in panel.table.value
    assert panel.empty.layout.display == "none"
    assert panel.plots.layout.display is None


def test_one_default_threshold_and_it_is_named(project: Project) -> None:
    from annowidget.effort import DEFAULT_THRESHOLD
    from annowidget.widgets import LabelingApp

    assert EffortPanel(project).threshold == DEFAULT_THRESHOLD
    assert ongoing_evaluation(project)["r1"].threshold == DEFAULT_THRESHOLD
    stricter = EffortPanel(project, threshold=0.65)
    assert "score ≥ 0.65" in stricter.figure.layout.annotations[1].text
    assert list(_traces(stricter)["precision"].y) == [
        s.precision for s in ongoing_evaluation(project, threshold=0.65).values()
    ]
    app = LabelingApp(project)
    assert app.effort.threshold == app.predict.threshold.value == DEFAULT_THRESHOLD


def test_empty_state_until_there_is_work(tmp_path: Path, clock: Clock) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images) as project:
        project.add_category("raccoon")
        project.add_image("a.jpg", width=200, height=200, checksum="0" * 40)
        panel = EffortPanel(project)
        assert panel.empty.layout.display is None
        assert "Nothing to show yet" in panel.empty.value
        assert panel.plots.layout.display == "none"
        clock.at(0)
        project.log_action("view", image_id=1)  # looking is not work: still empty
        panel.refresh()
        assert panel.plots.layout.display == "none"
        clock.at(5)
        project.add_annotation(1, RACCOON, [1, 1, 20, 20])
        panel.refresh()
        assert panel.empty.layout.display == "none"
        assert panel.plots.layout.display is None
        assert list(_traces(panel)["seconds per image"].x) == [FROM_SCRATCH]


def test_a_second_annotator_brings_a_table_per_annotator(project: Project, clock: Clock) -> None:
    panel = EffortPanel(project)
    assert len(panel.annotators) == 1
    assert panel.annotator_table.value == ""  # one person: the rounds' totals say it all
    solo = project.user
    with Project.open(project.root) as other:  # another participant, same project file
        other.user = "ben" if solo != "ben" else "cat"
        clock.at(300)
        rows = [{"category_id": RACCOON, "bbox": [0, 0, 30, 30], "score": 0.8}]
        (box,) = other.replace_predictions(4, rows, source="model:r2")
        clock.at(305)
        other.accept_prediction(box.id, duration=3.0)  # their first action: its duration
        clock.at(306)
        other.set_status(4, "reviewed")  # +1 -> 4 s
    panel.refresh()
    assert list(panel.annotators) == [solo, other.user]  # most images first
    mine, theirs = panel.annotators[solo], panel.annotators[other.user]
    assert (mine["images"], mine["seconds"], mine["seconds_per_image"]) == (3, 32.0, 32.0 / 3)
    assert (mine["predictions_reviewed"], mine["accepted_unchanged"]) == (3, 1)
    assert (theirs["images"], theirs["seconds"], theirs["share_accepted_unchanged"]) == (
        1,
        4.0,
        1.0,
    )
    table = panel.annotator_table.value
    assert "per annotator" in table
    assert table.count("<tr>") == 3  # header + two people
    assert f">{other.user}<" in table
    assert ">1 (100%)<" in table  # their one prediction, kept as is
    assert ">1 (33%)<" in table  # the first person's: 1 of 3 kept unchanged
    assert ">10.7<" in table  # 32 s over 3 images
