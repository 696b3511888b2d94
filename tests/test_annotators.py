"""Several annotators on one project (SQLite and PostgreSQL): who did what, image leases,
and last-writer-wins on a conflicting edit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from annowidget.sample import sample_project
from annowidget.store import Project

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


@pytest.fixture
def root(tmp_path: Path, backend_db: str | None) -> Path:
    sample_project(tmp_path / "sample", db=backend_db).close()
    return tmp_path / "sample"


def test_every_log_row_names_its_author(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANNOWIDGET_USER", "ana")
    with Project.open(root) as project:
        assert project.user == "ana"
        image = project.images(folder="unlabeled")[0]
        box = project.add_annotation(image.id, 1, [0, 0, 5, 5])
        project.user = "ben"  # what the app's user field sets
        project.delete_annotation(box.id)
        log = project.actions(image_id=image.id)
    assert [(a.action, a.author) for a in log][-2:] == [("add", "ana"), ("delete", "ben")]


def test_a_bad_annotator_name_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annowidget.store import ProjectError

    root = tmp_path / "proj"
    Project.create(root, images_root=tmp_path).close()
    with Project.open(root) as project:
        for bad, reason in (("  ", "blank"), ("x" * 65, "at most 64"), ("a\nb", "control")):
            with pytest.raises(ProjectError, match=f"user: .*{reason}"):
                project.user = bad
        project.user = " ana  "
        assert project.user == "ana"
    monkeypatch.setenv("ANNOWIDGET_USER", "x" * 65)
    with pytest.raises(ProjectError, match="ANNOWIDGET_USER: at most 64"):
        Project.open(root)


def test_conflicting_edits_last_writer_wins_and_the_log_keeps_both(root: Path) -> None:
    with Project.open(root) as ana, Project.open(root) as ben:
        ana.user, ben.user = "ana", "ben"
        image = ana.images(folder="unlabeled")[0]
        box = ana.add_annotation(image.id, 1, [0, 0, 5, 5])
        seen_by_ben = ben.annotation(box.id)  # both open the image
        ana.update_annotation(box.id, bbox=[10, 10, 5, 5])
        ben.update_annotation(seen_by_ben.id, bbox=[20, 20, 5, 5])  # later: it wins
        assert ana.annotation(box.id).bbox == (20, 20, 5, 5)
        updates = [a for a in ana.actions(image_id=image.id) if a.action == "update"]
    assert [(u.author, u.payload["after"]["bbox"]) for u in updates] == [
        ("ana", [10, 10, 5, 5]),
        ("ben", [20, 20, 5, 5]),
    ]
    assert updates[1].payload["before"]["bbox"] == [10, 10, 5, 5]  # ana's edit, recoverable


def test_next_unlabeled_skips_images_leased_to_others_until_they_expire(root: Path) -> None:
    with Project.open(root) as ana, Project.open(root) as ben:
        ana.user, ben.user = "ana", "ben"
        first = ana.next_unlabeled(seconds=1.0)
        assert first is not None
        assert ana.lease_holder(first.id) == "ana"
        second = ben.next_unlabeled(seconds=60)
        assert second is not None
        assert second.id != first.id
        assert first.id not in {i.id for i in ben.images(status="unlabeled", skip_leased=True)}
        assert not ben.lease(first.id)
        assert ana.lease(first.id, seconds=1.0)  # renewing one's own lease is fine
        time.sleep(1.2)  # ana goes quiet
        assert ben.lease_holder(first.id) is None
        assert ben.lease(first.id)
        ben.release(first.id)
        assert ben.lease_holder(first.id) is None


TAKER = textwrap.dedent(
    """
    import sys, time
    from annowidget.store import Project

    project = Project.open(sys.argv[1])
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together
    mine, last = [], None
    while True:
        image = project.next_unlabeled(after_id=last)
        if image is None or image.id in mine:
            break
        mine.append(image.id)
        last = image.id
    print(" ".join(map(str, mine)), flush=True)
    """
)


def test_two_annotator_processes_never_get_the_same_image(root: Path) -> None:
    start = time.time() + 2.0
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, str(root), str(start)],
            env={**ENV, "ANNOWIDGET_USER": user, "ANNOWIDGET_LEASE_S": "2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for user in ("ana", "ben")
    ]
    taken = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        taken.append([int(i) for i in out.split()])
    with Project.open(root) as project:
        todo = {i.id for i in project.images(status=["unlabeled", "predicted"])}
        assert set(taken[0]).isdisjoint(taken[1])
        assert set(taken[0]) | set(taken[1]) == todo  # every image handed out once
        project.user = "cat"
        assert project.next_unlabeled() is None  # all leased
        time.sleep(2.2)  # both went quiet (exited): their leases run out
        assert project.next_unlabeled() is not None


@contextmanager
def _ana_and_ben(root: Path, **options: Any) -> Iterator[tuple[Any, Any]]:
    """Two Annotators on one project, each in its own Project handle: ana's and ben's."""
    from annowidget.widgets.annotator import Annotator

    with Project.open(root) as ana_project, Project.open(root) as ben_project:
        ana_project.user, ben_project.user = "ana", "ben"
        ana = Annotator(ana_project, **options)
        ben = Annotator(ben_project, **options)
        try:
            yield ana, ben
        finally:
            ana.close()
            ben.close()


def test_two_annotator_widgets_are_shown_different_unlabeled_images(root: Path) -> None:
    with _ana_and_ben(root) as (ana, ben):
        assert ana.next_unlabeled()
        assert ben.next_unlabeled()
        assert ana._current.id != ben._current.id
        assert ana.project.lease_holder(ana._current.id) == "ana"
        ben.goto(ana._current.id)  # opening it anyway: told, not blocked
        assert "ana is labeling this image" in ben.message


def test_next_and_submit_pass_over_the_image_another_annotator_holds(root: Path) -> None:
    with _ana_and_ben(root, folder="unlabeled") as (ana, ben):
        first, second, third, fourth, fifth = ana.image_ids[:5]
        ana.goto(second)  # ana labels the second image
        ben.goto(first)
        ben._handle_custom_msg({"type": "next"}, [])  # Space
        assert ben.image.id == third  # not ana's
        ana.goto(fourth)  # ana moves on: she gives the second back, the fourth is hers
        assert ana.project.lease_holder(second) is None
        ben.previous()
        ben.previous()
        assert ben.image.id == first  # going back never skips
        ben._handle_custom_msg({"type": "next"}, [])
        assert ben.image.id == second  # free again
        ben.goto(third)
        ben._handle_custom_msg({"type": "submit"}, [])  # Enter: reviewed, then Next
        assert ben.project.image(third).status == "reviewed"
        assert ben.image.id == fifth  # past the fourth, ana's now
        last = ben.image_ids[-1]
        assert ana.project.lease(last)
        ben.goto(ben.image_ids[-2])
        ben.next()  # every later image is held: Next still moves, and says by whom
        assert ben.image.id == last
        assert "ana is labeling this image" in ben.message


def test_the_effort_meter_times_each_annotator_on_their_own_timeline(root: Path) -> None:
    from annowidget.effort import effort_per_annotator, effort_per_image

    with Project.open(root) as ana, Project.open(root) as ben:
        ana.user, ben.user = "ana", "ben"
        first, second = ana.images(folder="unlabeled")[:2]
        # interleaved: each person's gaps are their own, not the other's
        ana.log_action("view", image_id=first.id, duration=1.0)
        ben.log_action("view", image_id=second.id, duration=1.0)
        ana.add_annotation(first.id, 1, [0, 0, 5, 5], duration=4.0)
        ben.add_annotation(second.id, 1, [0, 0, 5, 5], duration=6.0)
        ana.set_status(first.id, "reviewed", duration=1.0)
        ben.set_status(second.id, "reviewed", duration=1.0)
        per_image = {e.image_id: e for e in effort_per_image(ana)}
        table = effort_per_annotator(ana)
    assert per_image[first.id].annotator == "ana"
    assert per_image[second.id].annotator == "ben"
    assert table["ana"]["images"] == 1
    assert table["ben"]["images"] == 1
    assert table["ben"]["seconds"] > table["ana"]["seconds"] >= 6.0


def test_an_edit_by_another_annotator_shows_up_in_an_open_annotator(root: Path) -> None:
    from annowidget.widgets.annotator import Annotator

    with Project.open(root) as mine, Project.open(root) as theirs:
        mine.user, theirs.user = "ana", "ben"
        widget = Annotator(mine)
        try:
            widget.goto(mine.images(folder="unlabeled")[0].id)
            image_id = widget.image.id
            box = theirs.add_annotation(image_id, 1, [3, 4, 50, 60])  # ben, elsewhere
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(b["id"] == box.id for b in widget._boxes):
                time.sleep(0.1)
            assert any(b["id"] == box.id for b in widget._boxes)
        finally:
            widget.close()
