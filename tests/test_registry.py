"""Model cards, pickle-free weight files and the per-project model registry."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from annowidget.models.card import (
    CheckpointError,
    ModelCard,
    checkpoint_filename,
    load_state_dict,
    save_state_dict,
)
from annowidget.models.registry import ModelRegistry, base_model_card, validate_model_name
from annowidget.models.zoo import build_model

SIZE = 64


# an empty hub cache, offline, one thread, a fixed seed (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("isolated_hub")


def _card(name: str = "raccoons-v1", **fields) -> ModelCard:
    values = {
        "task": "detection",
        "base_model": "fasterrcnn_mobilenet_v2_fpn",
        "categories": ["raccoon", "dog"],
        "model_config": {"num_classes": 3, "min_size": SIZE, "max_size": SIZE},
        **fields,
    }
    return ModelCard(name=name, **values)


class Payload:
    """Not a tensor: a pickle holding it must not be loaded."""

    def __init__(self) -> None:
        self.value = 1


class Exploit:
    """Unpickling this would run a shell command (it must never run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- model card --------------------------------------------------------------------------


def test_card_round_trips_through_json_and_disk(tmp_path: Path) -> None:
    card = _card(
        hyperparameters={"lr": 0.01, "epochs": 3},
        train_folders=["train"],
        test_folders=["test"],
    )
    card.add_metrics(1, {"AP": 0.25, "AP50": 0.5, "per_class": {"raccoon": 0.3}})
    card.add_checkpoint(1)
    card.status = "finished"
    assert ModelCard.from_json(card.to_json()) == card
    path = card.save(tmp_path)
    assert path == tmp_path / "card.json"
    data = json.loads(path.read_text())
    assert data["format_version"] == 1
    assert data["checkpoints"] == [{"epoch": 1, "file": "checkpoints/epoch_0001.safetensors"}]
    loaded = ModelCard.load(tmp_path)
    assert loaded == card
    assert loaded.num_classes == 3
    assert loaded.label_to_category(1) == "raccoon"
    assert loaded.label_to_category(0) is None
    assert loaded.latest_metrics["AP"] == 0.25
    assert checkpoint_filename(12) == "checkpoints/epoch_0012.safetensors"


def test_card_errors_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'status'"):
        _card(status="done")
    with pytest.raises(ValueError, match="unknown task"):
        _card(task="panoptic")
    (tmp_path / "card.json").write_text('{"name": "x", "task": "detection"}')
    with pytest.raises(ValueError, match=r"card\.json: missing field\(s\) base_model, categories"):
        ModelCard.load(tmp_path)
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"card\.json: not valid JSON"):
        ModelCard.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="model card not found"):
        ModelCard.load(tmp_path / "missing")
    # a newer writer's extra keys are ignored, not fatal
    data = {**_card().to_dict(), "future_field": 1}
    assert ModelCard.from_dict(data).name == "raccoons-v1"


# -- weight files --------------------------------------------------------------------------


def test_state_dict_round_trip_with_shared_and_strided_tensors(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    state = {
        "a": base,
        "tied": base,  # same storage, like tied embeddings
        "view": base[:, 1],  # strided view into it
        "count": torch.tensor(7),
    }
    path = save_state_dict(tmp_path / "w.safetensors", state)
    loaded = load_state_dict(path)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # temp file renamed away


def test_plain_pth_state_dicts_load_with_weights_only(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pth")
    assert load_state_dict(tmp_path / "w.pth")["w"].tolist() == [1.0, 1.0]


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        load_state_dict(path)


def test_pickle_payload_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "exploit.pth"
    path.write_bytes(pickle.dumps({"w": Exploit(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match=r"exploit\.pth"):
        load_state_dict(path)
    assert not marker.exists()


def test_unknown_or_broken_weight_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"w\.npz: unknown weights format"):
        load_state_dict(tmp_path / "w.npz")
    (tmp_path / "w.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"w\.safetensors is not a valid safetensors"):
        load_state_dict(tmp_path / "w.safetensors")
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_state_dict(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "missing.safetensors")


# -- registry ------------------------------------------------------------------------------


def test_names_are_validated_and_unique(tmp_path: Path) -> None:
    registry = ModelRegistry(SimpleNamespace(models_dir=tmp_path / "models"))
    registry.reserve("raccoons-v1", _card())
    assert registry.exists("raccoons-v1")
    with pytest.raises(ValueError, match="model name 'raccoons-v1' already exists in this project"):
        registry.reserve("raccoons-v1", _card())
    for bad in ["", "..", ".hidden", "a/b", "has space", "x" * 101]:
        with pytest.raises(ValueError, match="invalid model name"):
            validate_model_name(bad)
    with pytest.raises(ValueError, match="base model"):
        registry.reserve("fasterrcnn_mobilenet_v2_fpn", _card("fasterrcnn_mobilenet_v2_fpn"))
    with pytest.raises(ValueError, match="card is named"):
        registry.reserve("other", _card("raccoons-v1"))
    assert not registry.exists("other")
    assert registry.exists("fcos_resnet50_fpn")


def test_list_puts_trained_models_first_newest_first(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.reserve("old", _card("old", created="2024-01-01T00:00:00+00:00"))
    registry.reserve("new", _card("new", created="2025-01-01T00:00:00+00:00"))
    (tmp_path / "junk").mkdir()  # a folder without a card is not a model
    entries = registry.list()
    assert [e.name for e in entries[:2]] == ["new", "old"]
    assert all(e.kind == "trained" and not e.ready for e in entries[:2])
    assert entries[0].card.categories == ["raccoon", "dog"]
    bases = entries[2:]
    assert {e.kind for e in bases} == {"base"}
    assert len(bases) == 14
    ready = {e.name for e in bases if e.ready}
    assert "fasterrcnn_resnet50_fpn_v2" not in ready  # empty hub cache, no COCO weights
    assert registry.names("keypoints")[-2:] == [
        "keypointrcnn_resnet50_fpn",
        "keypointrcnn_mobilenet_v2_fpn",
    ]
    assert "junk" not in registry.names()


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    card = _card()
    model = build_model("fasterrcnn_mobilenet_v2_fpn", 3, pretrained=False, min_size=SIZE).eval()
    registry.reserve(card.name, card)
    registry.save_weights(card.name, model.state_dict())
    loaded, loaded_card = registry.load(card.name)
    assert loaded_card == card
    assert not loaded.training
    image = torch.rand(3, SIZE, SIZE)
    with torch.inference_mode():
        (expected,) = model([image])
        (got,) = loaded([image])
    assert len(expected["boxes"]) > 0, "random model predicted nothing: the test would be empty"
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(expected[key], got[key]), key
    assert registry.list()[0].ready


def test_load_falls_back_to_the_latest_checkpoint_while_training(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    card = _card("seg", task="semantic_segmentation", base_model="lraspp_mobilenet_v2")
    registry.reserve("seg", card)
    with pytest.raises(CheckpointError, match="has no weights yet"):
        registry.load("seg")
    model = build_model("lraspp_mobilenet_v2", 3, pretrained=False).eval()
    card.add_checkpoint(2, registry.save_checkpoint("seg", 2, model.state_dict()))
    registry.save_card(card)
    assert (tmp_path / "seg" / "checkpoints" / "epoch_0002.safetensors").is_file()
    loaded, _ = registry.load("seg")
    image = torch.rand(1, 3, SIZE, SIZE)
    with torch.inference_mode():
        assert torch.equal(model(image)["out"], loaded(image)["out"])


def test_weights_that_do_not_fit_the_card_are_reported(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.reserve("m", _card("m", model_config={"num_classes": 5}))
    other = build_model("fasterrcnn_mobilenet_v2_fpn", 3, pretrained=False)
    registry.save_weights("m", other.state_dict())
    with pytest.raises(CheckpointError, match="does not fit fasterrcnn_mobilenet_v2_fpn with 5"):
        registry.load("m")


def test_delete_and_card_lookup(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.reserve("m", _card("m"))
    assert registry.card("m").name == "m"
    registry.delete("m")
    assert not (tmp_path / "m").exists()
    assert not registry.exists("m")
    with pytest.raises(KeyError, match="no trained model 'm'"):
        registry.card("m")
    with pytest.raises(KeyError):
        registry.delete("m")
    with pytest.raises(ValueError, match="cannot be deleted"):
        registry.delete("fcos_resnet50_fpn")
    # the name is free again
    registry.reserve("m", _card("m"))


def test_base_model_card_maps_labels_to_coco_names() -> None:
    card = base_model_card("fasterrcnn_mobilenet_v3_large_fpn")
    assert card.label_to_category(1) == "person"
    assert card.num_classes == 91
    keypoints = base_model_card("keypointrcnn_resnet50_fpn")
    assert keypoints.num_keypoints == 17
    assert keypoints.keypoint_names[0] == "nose"


def test_trained_model_with_broken_card_is_listed_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "card.json").write_text("{")
    entry = ModelRegistry(tmp_path).list()[0]
    assert entry.name == "broken"
    assert not entry.ready
    assert "unreadable" in entry.description


def test_registry_accepts_a_plain_models_folder(tmp_path: Path) -> None:
    registry = ModelRegistry(str(tmp_path))
    assert registry.models_dir == tmp_path
    assert isinstance(build_model("lraspp_mobilenet_v2", 2, pretrained=False), nn.Module)


MALFORMED_CARDS = {
    "deep": "[" * 100_000 + "]" * 100_000,
    "created-number": {"created": 5},
    "categories-text": {"categories": "raccoon"},
    "config-list": {"model_config": [1, 2]},
    "size-text": {"model_config": {"num_classes": 3, "min_size": "big"}},
    "metrics-text": {"metrics": [{"epoch": 1, "AP": "high"}]},
    "checkpoints-bad": {"checkpoints": [{"epoch": "one"}]},
    "status-list": {"status": ["finished"]},
}


def _write_malformed(models_dir: Path) -> None:
    good = _card(name="x").to_dict()
    for name, change in MALFORMED_CARDS.items():
        folder = models_dir / name
        folder.mkdir(parents=True)
        text = change if isinstance(change, str) else json.dumps({**good, "name": name, **change})
        (folder / "card.json").write_text(text)


def test_malformed_cards_are_listed_unreadable_with_the_reason(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.reserve("good", _card("good"))
    _write_malformed(tmp_path / "models")
    entries = {e.name: e for e in registry.list() if e.kind == "trained"}
    assert set(entries) == {"good", *MALFORMED_CARDS}
    assert entries["good"].card is not None
    for name in MALFORMED_CARDS:
        assert entries[name].card is None
        assert not entries[name].ready
        assert entries[name].description.startswith("unreadable: ")
    assert "nested too deeply" in entries["deep"].description
    assert "'created' must be text" in entries["created-number"].description
    assert "model_config.min_size" in entries["size-text"].description
    assert "card.json" in entries["metrics-text"].description  # names the file
    with pytest.raises(ValueError, match="'model_config' must be an object"):
        registry.card("config-list")


def test_cli_models_and_the_app_survive_a_malformed_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from annowidget.cli import main
    from annowidget.store import Project
    from annowidget.widgets import LabelingApp

    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "proj", images_root=images) as project:
        project.add_category("raccoon")
        ModelRegistry(project).reserve("good", _card("good"))
        _write_malformed(project.models_dir)
        app = LabelingApp(project)
        offered = [name for _, name in app.predict.model.options]
        assert "good" in offered
    capsys.readouterr()
    assert main(["models", str(tmp_path / "proj")]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.strip()}
    assert "unreadable" in lines["created-number"]
    assert "finished" in lines["good"] or "training" in lines["good"]


def test_nan_weights_refuse_to_load_and_int8_weights_warn(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    model = build_model("fasterrcnn_mobilenet_v2_fpn", 3, pretrained=False, min_size=SIZE)
    state = model.state_dict()
    key = "roi_heads.box_predictor.cls_score.weight"

    registry.reserve("nan", _card("nan"))
    broken = dict(state)
    broken[key] = state[key].clone()
    broken[key][0, 0] = float("nan")
    registry.save_weights("nan", broken)
    with pytest.raises(CheckpointError, match=rf"weights\.safetensors: tensor '{key}' holds NaN"):
        registry.load("nan")

    registry.reserve("int8", _card("int8"))
    quantized = dict(state)
    quantized[key] = state[key].mul(100).to(torch.int8)
    registry.save_weights("int8", quantized)
    with pytest.warns(UserWarning, match=rf"{key} \(torch.int8, expected torch.float32\)"):
        loaded, _ = registry.load("int8")
    assert loaded.state_dict()[key].dtype == torch.float32
