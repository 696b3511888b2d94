"""Rounds that compound (issue 11 item 1): a trained model of the project is the base of the
next run. Categories and keypoints are matched by name; the child begins where its parent
ended (same weights, same AP on the test folder, loss near the parent's last epoch)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

import annowidget
from annowidget.cli import main
from annowidget.models import ModelRegistry, build_model, load_state_dict
from annowidget.models.warm_start import class_layers, keypoint_layers, transfer_weights
from annowidget.store import Project
from annowidget.train import Hyperparameters, Trainer, engine
from annowidget.train.dataset import SnapshotDataset
from annowidget.train.events import EpochEvent, StepEvent, TrainingEvent

RCNN = "fasterrcnn_mobilenet_v3_large_320_fpn"
CPU = torch.device("cpu")


def _hp(**changes: object) -> Hyperparameters:
    values: dict[str, object] = {
        "epochs": 3,
        "batch_size": 8,
        "image_size": 64,
        "rois_per_image": 32,
        "eval_period": 1,
        "learning_rate": 0.02,
        "num_threads": 1,
        "device": "cpu",
    }
    values.update(changes)
    return Hyperparameters(**values)  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """24 train and 6 test photos of raccoons with their boxes (the bundled sample)."""
    return annowidget.sample_project(tmp_path / "sample")


def _run(trainer: Trainer) -> list[TrainingEvent]:
    events: list[TrainingEvent] = []
    trainer.subscribe(events.append)
    trainer.run()
    assert trainer.status == "finished", trainer.reason
    return events


def _epoch_losses(events: list[TrainingEvent]) -> list[float]:
    return [e.loss for e in events if isinstance(e, EpochEvent)]


def _initial_child(registry: ModelRegistry, parent: str, categories: list[str]) -> torch.nn.Module:
    """What a run from ``parent`` starts with: its architecture, the parent's weights."""
    card = registry.card(parent)
    kwargs = registry.build_kwargs(card)
    model = build_model(card.base_model, len(categories) + 1, pretrained=False, **kwargs)
    transfer_weights(model, load_state_dict(registry.weights_file(parent)), card.categories,
                     categories)  # fmt: skip
    return model


# ------------------------------------------------------------------ the mapping, unit level
def test_categories_and_keypoints_are_matched_by_name() -> None:
    torch.manual_seed(0)
    build = {"pretrained": False, "min_size": 64, "num_keypoints": 3}
    parent = build_model("keypointrcnn_mobilenet_v2_fpn", 3, **build)  # cat, dog
    child = build_model("keypointrcnn_mobilenet_v2_fpn", 3, **build)  # dog, fox
    fresh = {k: v.clone() for k, v in child.state_dict().items()}
    state = parent.state_dict()
    report = transfer_weights(
        child, state, ["cat", "dog"], ["dog", "fox"],
        parent_keypoints=["nose", "left_eye", "right_eye"],
        keypoints=["left_eye", "nose", "ear"],
    )  # fmt: skip
    assert (report.kept, report.new, report.dropped) == (["dog"], ["fox"], ["cat"])
    assert (report.keypoints_new, report.keypoints_dropped) == (["ear"], ["right_eye"])
    assert report.describe() == (
        "kept 1 category (dog); new: fox; dropped: cat; new keypoints: ear; "
        "dropped keypoints: right_eye"
    )
    got = child.state_dict()
    scores = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(got[scores][0], state[scores][0])  # background
    assert torch.equal(got[scores][1], state[scores][2])  # dog: the parent's row 2
    assert got[scores][2].std() < 0.02  # fox: a fresh, small row (softmax head)
    deltas = "roi_heads.box_predictor.bbox_pred.weight"
    assert torch.equal(got[deltas][4:8], state[deltas][8:12])  # dog's 4 box deltas
    heat = "roi_heads.keypoint_predictor.kps_score_lowres.weight"  # (in, keypoints, k, k)
    assert torch.equal(got[heat][:, 0], state[heat][:, 1])  # left_eye
    assert torch.equal(got[heat][:, 1], state[heat][:, 0])  # nose
    assert torch.equal(got[heat][:, 2], fresh[heat][:, 2])  # ear: fresh
    shared = set(got) - set(class_layers(child)) - set(keypoint_layers(child))
    assert shared
    assert all(torch.equal(got[k], state[k]) for k in shared)


def test_dense_heads_keep_each_anchors_class_columns() -> None:
    """SSD's (and RetinaNet's) class layer is anchors x classes: the mapping is per anchor."""
    torch.manual_seed(0)
    parent = build_model("ssdlite320_mobilenet_v3_large", 3, pretrained=False, min_size=64)
    child = build_model("ssdlite320_mobilenet_v3_large", 2, pretrained=False, min_size=64)
    state = parent.state_dict()
    report = transfer_weights(child, state, ["cat", "dog"], ["dog"])
    assert (report.kept, report.dropped) == (["dog"], ["cat"])
    key = next(k for k in class_layers(child) if k.endswith("bias"))
    anchors = state[key].shape[0] // 3
    parent_rows = state[key].view(anchors, 3)
    assert torch.equal(child.state_dict()[key].view(anchors, 2), parent_rows[:, [0, 2]])


# ------------------------------------------------------------------ runs from a trained model
def test_a_child_begins_where_its_parent_ended(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    parent_events = _run(
        Trainer(project, "round-1", base_model=RCNN, pretrained=False, hyperparameters=_hp())
    )
    registry = ModelRegistry(project)
    parent = registry.card("round-1")
    assert parent.parent is None

    # same categories: the child's starting weights are the parent's, so is its AP
    initial = _initial_child(registry, "round-1", ["raccoon"])
    assert all(
        torch.equal(v, load_state_dict(registry.weights_file("round-1"))[k])
        for k, v in initial.state_dict().items()
    )
    test_set = SnapshotDataset.from_snapshot(project, project.snapshot("test"), image_size=64)
    start = engine.evaluate(initial, test_set, CPU)
    assert start["AP"] == pytest.approx(parent.metrics[-1]["AP"], abs=1e-6)
    assert start["AP50"] == pytest.approx(parent.metrics[-1]["AP50"], abs=1e-6)

    # the default base of the next run is the project's newest finished model of the task
    child = Trainer(project, "round-2", hyperparameters=_hp(epochs=1))
    assert child.parent is not None
    assert (child.parent.name, child.base_model, child.image_size) == ("round-1", RCNN, 64)
    first_steps: list[float] = []
    child.subscribe(lambda e: first_steps.append(e.loss) if isinstance(e, StepEvent) else None)
    child_events = _run(child)
    card = registry.card("round-2")
    assert (card.parent, card.base_model) == ("round-1", RCNN)
    assert card.notes == ["started from model round-1: kept 1 category (raccoon)"]
    parent_losses = _epoch_losses(parent_events)
    child_loss = _epoch_losses(child_events)[0]
    # the child's first epoch is where the parent ended, below where the parent began
    assert abs(child_loss - parent_losses[-1]) < 0.1 * parent_losses[-1]
    assert child_loss < parent_losses[0]
    assert first_steps[0] < parent_losses[0]
    print(f"parent epoch losses {parent_losses}; child first epoch {child_loss}")

    # lineage: the card, the registry, the CLI
    assert registry.lineage("round-2") == ["round-2", "round-1", RCNN]
    assert main(["models", str(project.root)]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if "round-2" in row)
    assert f"base round-1 <- {RCNN}" in line


def test_a_new_category_gets_fresh_rows_and_the_known_one_keeps_its_ap(project: Project) -> None:
    Trainer(project, "raccoons", base_model=RCNN, pretrained=False, hyperparameters=_hp()).run()
    registry = ModelRegistry(project)
    parent_state = load_state_dict(registry.weights_file("raccoons"))
    # a new category, labeled on two train images (the boxes of real objects: their heads)
    badger = project.add_category("badger")
    for image in project.images(folder="train")[:2]:
        box = project.annotations(image_id=image.id)[0].bbox
        project.add_annotation(image.id, badger.id, [box[0], box[1], box[2] / 2, box[3] / 2])
    initial = _initial_child(registry, "raccoons", ["raccoon", "badger"])
    got = initial.state_dict()
    scores = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(got[scores][:2], parent_state[scores])
    assert got[scores].shape[0] == 3
    test_set = SnapshotDataset.from_snapshot(project, project.snapshot("test"), image_size=64)
    start = engine.evaluate(initial, test_set, CPU)
    parent_ap = registry.card("raccoons").metrics[-1]["per_class"]["raccoon"]
    assert start["per_class"]["raccoon"] == pytest.approx(parent_ap, abs=0.05)

    child = Trainer(project, "with-badger", base_model="raccoons", hyperparameters=_hp(epochs=1))
    events = _run(child)
    card = registry.card("with-badger")
    assert card.categories == ["raccoon", "badger"]
    assert card.notes == ["started from model raccoons: kept 1 category (raccoon); new: badger"]
    assert any(e.kind == "warning" and "new: badger" in e.message for e in events)  # type: ignore[attr-defined]
    model, _ = registry.load("with-badger")  # strict load: 3 outputs
    assert model.roi_heads.box_predictor.cls_score.out_features == 3


def test_what_cannot_be_a_base_is_refused_with_the_reason(project: Project) -> None:
    Trainer(project, "det", base_model=RCNN, pretrained=False, hyperparameters=_hp(epochs=1)).run()
    with pytest.raises(ValueError, match="'det' is a detection model, not keypoints"):
        Trainer(project, "k", task="keypoints", base_model="det")
    with pytest.raises(
        ValueError, match=r"unknown base model 'nope'.*trained detection model .*det"
    ):
        Trainer(project, "k", base_model="nope")
    with pytest.raises(ValueError, match="pretrained=False"):
        Trainer(project, "k", base_model="det", pretrained=False)
    stopped = Trainer(
        project, "cut", base_model=RCNN, pretrained=False, hyperparameters=_hp(epochs=1)
    )
    stopped.subscribe(lambda e: stopped.stop())
    stopped.run()  # stopped before its first epoch: no model, not a base
    with pytest.raises(ValueError, match="unknown base model 'cut'"):
        Trainer(project, "k", base_model="cut")
    # a run with random weights never warm-starts by default
    assert Trainer(project, "s", pretrained=False).parent is None


# ------------------------------------------------------------------ real data, real scores
DATA = Path(__file__).parents[1].parent / "shared" / "data"


def _real_project(root: Path, raccoons: tuple[int, int], people: tuple[int, int]) -> Project:
    """Raccoon photos (their own train/test split) and, when ``people`` asks for some, COCO
    photos with people (COCO's train/val) as the new category, all with human boxes."""
    project = Project.create(root, images_root=DATA)
    raccoon = project.add_category("raccoon")
    for folder, limit in zip(("train", "test"), raccoons, strict=True):
        rows: dict[str, list[list[float]]] = {}
        sizes: dict[str, tuple[int, int]] = {}
        with open(DATA / "raccoon" / "data" / f"{folder}_labels.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["filename"] not in rows and len(rows) == limit:
                    continue
                x0, y0, x1, y1 = (float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
                rows.setdefault(row["filename"], []).append([x0, y0, x1 - x0, y1 - y0])
                sizes[row["filename"]] = (int(row["width"]), int(row["height"]))
        for name, boxes in rows.items():
            w, h = sizes[name]
            image = project.add_image(f"raccoon/images/{name}", folder=folder, width=w, height=h)
            for box in boxes:
                project.add_annotation(image.id, raccoon.id, box)
    if not any(people):
        return project
    person = project.add_category("person")
    for folder, split, limit in (("train", "train2017", people[0]), ("test", "val2017", people[1])):
        labels = sorted((DATA / "coco128" / "object_detection" / "labels" / split).glob("*.txt"))
        added = 0
        for label in labels:
            rows = [r.split() for r in label.read_text().splitlines() if r.startswith("0 ")]
            if not rows or added == limit:
                continue
            relative = f"coco128/images/{split}/{label.stem}.jpg"
            with PILImage.open(DATA / relative) as handle:
                w, h = handle.size
            image = project.add_image(relative, folder=folder, width=w, height=h)
            for _, cx, cy, bw, bh in rows:
                x, y = (float(cx) - float(bw) / 2) * w, (float(cy) - float(bh) / 2) * h
                project.add_annotation(image.id, person.id, [x, y, float(bw) * w, float(bh) * h])
            added += 1
    return project


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "coco128").is_dir(), reason=f"no real data in {DATA}")
def test_on_real_photos_a_child_starts_at_its_parents_ap_and_learns_a_new_category(
    tmp_path: Path,
) -> None:
    """The offline Faster R-CNN (ImageNet backbone) on 64 raccoon photos; then a same-category
    child, and a child that adds COCO's people. Figures are printed for the closing note."""
    from annowidget.models.weights import seed_offline_weights

    seed_offline_weights()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hp = Hyperparameters(
        epochs=3, image_size=192, rois_per_image=64, eval_period=3, num_threads=2, device=device
    )
    base = "fasterrcnn_mobilenet_v2_fpn"
    project = _real_project(tmp_path / "raccoons", (64, 20), (0, 0))
    parent_events = _run(Trainer(project, "r1", base_model=base, hyperparameters=hp))
    registry = ModelRegistry(project)
    parent = registry.card("r1").metrics[-1]
    initial = _initial_child(registry, "r1", ["raccoon"]).to(device)
    test_set = SnapshotDataset.from_snapshot(project, project.snapshot("test"), image_size=192)
    start = engine.evaluate(initial, test_set, torch.device(device))
    child_events = _run(Trainer(project, "r2", hyperparameters=hp.replace(epochs=1)))
    parent_losses, child_losses = _epoch_losses(parent_events), _epoch_losses(child_events)
    print(
        f"\nparent AP {parent['AP']:.3f} AP50 {parent['AP50']:.3f}; child at step 0 AP "
        f"{start['AP']:.3f} AP50 {start['AP50']:.3f}; parent epoch losses "
        f"{[round(x, 3) for x in parent_losses]}; child epoch losses "
        f"{[round(x, 3) for x in child_losses]}; child AP50 after 1 epoch "
        f"{registry.card('r2').metrics[-1]['AP50']:.3f}"
    )
    assert parent["AP50"] > 0.3
    assert start["AP50"] == pytest.approx(parent["AP50"], abs=1e-3)
    assert abs(child_losses[0] - parent_losses[-1]) < 0.15 * parent_losses[-1]

    # a new category: COCO photos of people join the project
    mixed = _real_project(tmp_path / "mixed", (64, 20), (40, 12))
    mixed_registry = ModelRegistry(mixed)
    # the parent is the raccoon-only model of the first project, copied in
    shutil.copytree(project.models_dir / "r1", mixed.models_dir / "r1")
    # what the child starts from: the raccoon rows kept, a fresh (untrained) person row
    mixed_test = SnapshotDataset.from_snapshot(mixed, mixed.snapshot("test"), image_size=192)
    initial = _initial_child(mixed_registry, "r1", ["raccoon", "person"]).to(device)
    person_at_start = engine.evaluate(initial, mixed_test, torch.device(device))["per_class"]
    child = Trainer(mixed, "people", base_model="r1", hyperparameters=hp)
    _run(child)
    after = mixed_registry.card("people").metrics[-1]["per_class"]
    before = parent["per_class"]["raccoon"]
    print(
        f"with people: raccoon AP {after['raccoon']:.3f} (parent {before:.3f}), "
        f"person AP {after['person']:.3f} (at step 0 {person_at_start['person']:.3f})"
    )
    assert after["raccoon"] > parent["per_class"]["raccoon"] - 0.1
    # learned: 3 epochs at 192 px on 40 crowded COCO photos is a weak person detector
    # (AP ~0.02), but it starts from an untrained row that finds nothing (AP ~0.000)
    assert after["person"] > person_at_start["person"] + 0.01
