"""The model comparison report on two small models trained on real raccoon images.

The models are real torchvision Faster R-CNNs (random init, one epoch at 64 px) trained by
the real Trainer, which evaluates each on the test folder and writes COCOeval's numbers into
its model card. The report loads them back from disk and must reproduce those numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from annowidget.effort.compare import Comparison, Delta, compare_models, relabel
from annowidget.formats import import_voc
from annowidget.models.card import ModelCard
from annowidget.models.registry import ModelRegistry
from annowidget.models.zoo import build_model
from annowidget.store import Project
from annowidget.train import Hyperparameters, Trainer

DATA = Path(__file__).parents[1].parent / "shared" / "data" / "raccoon"
BASE = "fasterrcnn_mobilenet_v2_fpn"
SIZE = 64
TRAIN = [f"raccoon-{i}.xml" for i in (1, 2, 3, 4, 5, 6)]
TEST = [f"raccoon-{i}.xml" for i in (7, 8, 9, 10)]

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"dataset missing: {DATA}")


def _train(project: Project, name: str, seed: int) -> ModelCard:
    hp = Hyperparameters(
        epochs=1,
        batch_size=2,
        image_size=SIZE,
        rois_per_image=32,
        eval_period=1,
        seed=seed,
        num_threads=1,
        device="cpu",
        augment=False,
    )
    trainer = Trainer(project, name, hyperparameters=hp, pretrained=False)
    card = trainer.run()
    assert card.status == "finished", card.status_reason
    return card


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, dict]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("compare")
    with Project.create(root / "proj", images_root=DATA / "images") as project:
        annotations = DATA / "annotations"
        import_voc(project, [annotations / f for f in TRAIN], folder="train")
        import_voc(project, [annotations / f for f in TEST], folder="test")
        cards = {name: _train(project, name, seed) for name, seed in (("a", 0), ("b", 1))}
        yield project, cards
    torch.set_num_threads(threads)


def test_report_reproduces_the_training_runs_coco_numbers(trained) -> None:
    project, cards = trained
    report = compare_models(project, "a", "b", folder="test")

    assert (report.model_a, report.model_b, report.folder) == ("a", "b", "test")
    assert report.images == len(TEST)
    assert report.boxes == sum(len(a) for _, a in project.snapshot("test").items)
    final_a, final_b = cards["a"].metrics[-1], cards["b"].metrics[-1]
    for metric in ("AP", "AP50", "AP75"):
        assert report.overall[metric].a == final_a[metric]
        assert report.overall[metric].b == final_b[metric]
    (row,) = report.per_class
    assert row.name == "raccoon"
    assert row.ap.a == final_a["per_class"]["raccoon"]
    assert row.ap.b == final_b["per_class"]["raccoon"]
    assert (row.ap50.a, row.ap50.b) == (
        final_a["per_class_AP50"]["raccoon"],
        final_b["per_class_AP50"]["raccoon"],
    )
    ap = report.overall["AP"]
    assert ap.points == pytest.approx((final_b["AP"] - final_a["AP"]) * 100)


def test_report_views_table_json_and_figure(trained) -> None:
    project, _ = trained
    report = compare_models(project, "a", "b", folder="test")

    text = report.table()
    assert "A = a" in text
    assert "B = b" in text
    assert f"{report.overall['AP50'].a * 100:.1f}" in text
    assert "raccoon AP50" in text

    data = json.loads(json.dumps(report.to_dict()))
    assert data["overall"]["AP"]["a"] == report.overall["AP"].a
    assert set(data["per_class"]) == {"raccoon"}

    figure = report.figure("AP50")
    bars_a, bars_b = figure.data
    assert list(bars_a.x) == ["all classes", "raccoon"]
    assert bars_b.y[1] == pytest.approx(report.per_class[0].ap50.b * 100)
    assert len(figure.layout.annotations) == 2  # one delta above each group


def _save_random(project: Project, name: str, categories: list[str]) -> None:
    torch.manual_seed(3)
    model = build_model(BASE, len(categories) + 1, pretrained=False, min_size=SIZE, max_size=SIZE)
    card = ModelCard(
        name=name,
        task="detection",
        base_model=BASE,
        categories=categories,
        status="finished",
        model_config={"num_classes": len(categories) + 1, "min_size": SIZE, "max_size": SIZE},
    )
    registry = ModelRegistry(project)
    registry.reserve(name, card)
    registry.save_weights(name, model.state_dict())


def test_classes_map_by_name_and_unknown_classes_score_zero(trained) -> None:
    project, _ = trained
    # Like a COCO base: its own label order, other classes, "N/A" gaps, other letter case.
    _save_random(project, "coco-like", ["N/A", "dog", "Raccoon"])
    _save_random(project, "dogs-only", ["dog"])

    knows = compare_models(project, "a", "coco-like", folder="test")
    (row,) = knows.per_class
    assert row.known_by_b
    assert knows.metrics_b["per_class"]["raccoon"] is not None

    blind = compare_models(project, "a", "dogs-only", folder="test")
    (row,) = blind.per_class
    assert not row.known_by_b
    assert row.ap.b == 0.0  # boxes of it exist; it found none
    assert row.ap50.b == 0.0
    assert "(unknown to B)" in blind.table()


def test_relabel_maps_and_drops_detections() -> None:
    output = {
        "boxes": torch.tensor([[0.0, 0, 5, 5], [1, 1, 4, 4], [2, 2, 3, 3]]),
        "scores": torch.tensor([0.9, 0.8, 0.7]),
        "labels": torch.tensor([18, 1, 3]),
    }
    result = relabel(output, {18: 2, 3: 1})
    assert result["labels"].tolist() == [2, 1]
    assert result["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert result["boxes"][1].tolist() == [2.0, 2.0, 3.0, 3.0]


def test_bad_inputs_name_what_is_wrong(trained) -> None:
    project, _ = trained
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        compare_models(project, "a", "nope", folder="test")
    with pytest.raises(ValueError, match="folder 'holdout' has no reviewed images"):
        compare_models(project, "a", "b", folder="holdout")


def test_deltas_in_points_and_percent_with_known_answers() -> None:
    metrics_a = {
        "images": 5,
        "AP": 0.40,
        "AP50": 0.50,
        "AP75": 0.0,
        "per_class": {"person": 0.40, "dog": None},
        "per_class_AP50": {"person": 0.50, "dog": None},
    }
    metrics_b = {
        "images": 5,
        "AP": 0.45,
        "AP50": 0.565,
        "AP75": 0.1,
        "per_class": {"person": 0.45, "dog": None},
        "per_class_AP50": {"person": 0.565, "dog": None},
    }
    report = Comparison.from_metrics("base", "tuned", "test", metrics_a, metrics_b, boxes=9)
    assert report.overall["AP50"].points == pytest.approx(6.5)
    assert report.overall["AP50"].relative_percent == pytest.approx(13.0)
    assert report.overall["AP75"].relative_percent is None  # from 0: no ratio
    assert [r.name for r in report.per_class] == ["person"]  # dog: no boxes in the folder
    assert "+13.0%" in report.table()
    assert report.figure().layout.annotations[0].text == "+5.0 pts (+12%)"
    assert Delta(None, 0.3).points is None
