"""The ``effort`` and ``compare`` commands, in-process through ``annowidget.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from annowidget import cli
from annowidget.effort.compare import compare_models
from annowidget.formats import import_voc
from annowidget.models.card import ModelCard
from annowidget.models.registry import ModelRegistry
from annowidget.models.zoo import build_model
from annowidget.store import Project
from annowidget.store import annotations as store_annotations

RACCOON_DATA = Path(__file__).parents[1].parent / "shared" / "data" / "raccoon"
T0 = 1_700_000_000.0
RACCOON = 1


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, second: str | None) -> Path:
    """Image 1 drawn from scratch (13 s); images 2 and 3 corrected after model r1 (20 s),
    by ``second`` when given (one Project handle, its ``user`` changed as the app's field
    does), else by the same person."""
    now = [T0]
    monkeypatch.setattr(store_annotations, "now", lambda: now[0])

    def at(seconds: float) -> None:
        now[0] = T0 + seconds

    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images) as project:
        project.add_category("raccoon")
        for name in "abc":
            project.add_image(f"{name}.jpg", width=100, height=100, checksum="0" * 40)
        at(0)
        project.add_annotation(1, RACCOON, [0, 0, 10, 10], duration=7.0)  # first action: 7
        at(5)
        project.add_annotation(1, RACCOON, [20, 20, 10, 10])  # +5
        at(6)
        project.set_status(1, "reviewed")  # +1 -> 13 s
        at(50)
        rows2 = [
            {"category_id": RACCOON, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"category_id": RACCOON, "bbox": [50, 50, 10, 10], "score": 0.6},
        ]
        p1, p2 = (a.id for a in project.replace_predictions(2, rows2, source="model:r1"))
        rows3 = [{"category_id": RACCOON, "bbox": [0, 0, 20, 20], "score": 0.8}]
        (p3,) = (a.id for a in project.replace_predictions(3, rows3, source="model:r1"))
        if second is not None:
            project.user = second
        at(60)
        project.accept_prediction(p1, duration=2.0)  # after a 54 s pause: its duration, 2
        at(63)
        project.update_annotation(p2, bbox=[52, 50, 10, 10])  # +3, IoU 80/120
        at(64)
        project.set_status(2, "reviewed")  # +1 -> 6 s
        at(70)
        project.add_annotation(3, RACCOON, [5, 5, 20, 20])  # +6: the model's miss
        at(77)
        project.delete_annotation(p3)  # +7
        at(78)
        project.set_status(3, "reviewed")  # +1 -> 14 s
    return tmp_path / "proj"


@pytest.fixture
def campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ANNOWIDGET_USER", "ana")
    return _campaign(tmp_path, monkeypatch, second=None)


@pytest.fixture
def two_authors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ANNOWIDGET_USER", "ana")
    return _campaign(tmp_path, monkeypatch, second="ben")


def test_effort_json_has_the_known_answers(campaign: Path, capsys) -> None:
    code, out, err = run(capsys, "effort", campaign, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["idle_gap"] == 30.0
    scratch, r1 = data["rounds"]
    assert scratch["model"] is None
    assert (scratch["images"], scratch["seconds"], scratch["drawn_from_scratch"]) == (1, 13.0, 2)
    assert scratch["share_accepted_unchanged"] is None
    assert scratch["ongoing"] is None
    assert r1["model"] == "r1"
    assert (r1["images"], r1["seconds"], r1["seconds_per_image"]) == (2, 20.0, 10.0)
    counts = [r1[k] for k in ("accepted_unchanged", "adjusted", "deleted_false_positives")]
    assert counts == [1, 1, 1]
    assert r1["drawn_from_scratch"] == 1
    assert r1["share_accepted_unchanged"] == pytest.approx(1 / 3, abs=1e-4)
    assert r1["mean_adjusted_iou"] == pytest.approx(80 / 120, abs=1e-4)
    # r1 on the corrected images: 2 of its 3 boxes match (IoU >= 0.5), 2 of 3 objects found;
    # AP50: precision 1 up to recall 1/3 (34 of COCO's 101 points), 2/3 up to 2/3 (33 points).
    assert r1["ongoing"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert r1["ongoing"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert r1["ongoing"]["ap50"] == pytest.approx((34 + 33 * 2 / 3) / 101, abs=1e-4)


def test_effort_table_and_idle_gap(campaign: Path, capsys) -> None:
    code, out, _ = run(capsys, "effort", campaign)
    assert code == 0
    header, scratch, r1, total = out.strip().splitlines()
    assert header.split()[:3] == ["round", "images", "s/image"]
    assert scratch.split()[:4] == ["(from", "scratch)", "1", "13.0"]
    assert r1.split()[:3] == ["r1", "2", "10.0"]
    assert "33%" in r1.split()
    assert total.startswith("3 images, 33 s of work in all")

    # With a 6.5 s idle gap the 7 s before deleting on image 3 no longer count.
    code, out, _ = run(capsys, "effort", campaign, "--json", "--idle-gap", "6.5")
    assert json.loads(out)["rounds"][1]["seconds"] == 13.0


def test_effort_per_annotator_on_a_log_with_two_authors(two_authors: Path, capsys) -> None:
    code, out, err = run(capsys, "effort", two_authors, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    ben, ana = data["annotators"]  # most images first
    assert (ben["annotator"], ben["images"], ben["seconds"], ben["seconds_per_image"]) == (
        "ben",
        2,
        20.0,
        10.0,
    )
    assert (ben["predictions_reviewed"], ben["accepted_unchanged"]) == (3, 1)
    assert ben["share_accepted_unchanged"] == pytest.approx(1 / 3, abs=1e-4)
    assert (ana["annotator"], ana["images"], ana["seconds"]) == ("ana", 1, 13.0)
    assert ana["share_accepted_unchanged"] is None  # from scratch: nothing to accept
    assert [r["images"] for r in data["rounds"]] == [1, 2]  # the rounds are unchanged

    code, out, _ = run(capsys, "effort", two_authors)
    assert code == 0
    rounds, people = out.strip().split("\n\n")
    assert len(rounds.splitlines()) == 4
    header, ben_line, ana_line = people.splitlines()
    assert header.split() == ["annotator", "images", "s/image", "decided", "accepted%"]
    assert ben_line.split() == ["ben", "2", "10.0", "3", "33%"]
    assert ana_line.split() == ["ana", "1", "13.0", "0", "-"]


def test_one_annotator_gets_no_annotator_table_but_json_names_them(campaign: Path, capsys) -> None:
    code, out, _ = run(capsys, "effort", campaign)
    assert code == 0
    assert "annotator" not in out
    code, out, _ = run(capsys, "effort", campaign, "--json")
    (ana,) = json.loads(out)["annotators"]
    assert (ana["annotator"], ana["images"], ana["seconds"]) == ("ana", 3, 33.0)


def test_effort_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "effort", tmp_path / "missing")
    assert code == 1
    assert err.startswith("annowidget effort: error: ")
    assert len(err.strip().splitlines()) == 1
    images = tmp_path / "images"
    images.mkdir()
    Project.create(tmp_path / "empty", images_root=images).close()
    code, out, _ = run(capsys, "effort", tmp_path / "empty")
    assert (code, out.strip()) == (0, "no reviewed work in the action log yet")
    code, _, err = run(capsys, "effort", tmp_path / "empty", "--idle-gap", "0")
    assert code == 1
    assert "--idle-gap must be a positive number" in err


def _save_random(project: Project, name: str, seed: int) -> None:
    torch.manual_seed(seed)
    base = "fasterrcnn_mobilenet_v2_fpn"
    model = build_model(base, 2, pretrained=False, min_size=64, max_size=64)
    card = ModelCard(
        name=name,
        task="detection",
        base_model=base,
        categories=["raccoon"],
        status="finished",
        model_config={"num_classes": 2, "min_size": 64, "max_size": 64},
    )
    registry = ModelRegistry(project)
    registry.reserve(name, card)
    registry.save_weights(name, model.state_dict())


@pytest.mark.skipif(not RACCOON_DATA.is_dir(), reason=f"dataset missing: {RACCOON_DATA}")
def test_compare_prints_the_reports_table_and_json(tmp_path: Path, capsys) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Project.create(tmp_path / "proj", images_root=RACCOON_DATA / "images") as project:
            files = [RACCOON_DATA / "annotations" / f"raccoon-{i}.xml" for i in (11, 12, 13)]
            import_voc(project, files, folder="test")
            _save_random(project, "x", 0)
            _save_random(project, "y", 1)
            expected = compare_models(project, "x", "y", folder="test")
        path = tmp_path / "proj"
        code, out, err = run(capsys, "compare", path, "--models", "x", "y", "--folder", "test")
        assert (code, err) == (0, "")
        assert out.strip() == expected.table()

        args = ("compare", path, "--models", "x", "y", "--folder", "test", "--json")
        code, out, _ = run(capsys, *args)
        assert code == 0
        assert json.loads(out) == json.loads(json.dumps(expected.to_dict()))

        code, _, err = run(capsys, "compare", path, "--models", "x", "nope", "--folder", "test")
        assert code == 1
        assert err.startswith("annowidget compare: error: unknown model 'nope'")
        code, _, err = run(capsys, "compare", path, "--models", "x", "y", "--folder", "train")
        assert code == 1
        assert "folder 'train' has no reviewed images" in err
    finally:
        torch.set_num_threads(threads)


def test_delete_then_draw_counts_a_deletion_and_a_miss(tmp_path: Path, capsys) -> None:
    # The drawn box must not take the deleted prediction's id (the store's AUTOINCREMENT ids),
    # or the meter would read "delete a false positive, draw the miss" as one adjustment.
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images) as project:
        project.add_category("raccoon")
        project.add_image("a.jpg", width=100, height=100, checksum="0" * 40)
        rows = [{"category_id": RACCOON, "bbox": [0, 0, 20, 20], "score": 0.8}]
        (wrong,) = project.replace_predictions(1, rows, source="model:r1")
        project.delete_annotation(wrong.id, duration=2.0)
        project.add_annotation(1, RACCOON, [50, 50, 20, 20], duration=7.0)
        project.set_status(1, "reviewed")
    _, out, _ = run(capsys, "effort", tmp_path / "proj", "--json")
    (r1,) = json.loads(out)["rounds"]
    assert (r1["adjusted"], r1["deleted_false_positives"], r1["drawn_from_scratch"]) == (0, 1, 1)
