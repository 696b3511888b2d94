"""The setup commands behind `make quickstart`: seeding offline weights, the sample project."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from annowidget.cli import main


def test_weights_seed_fills_the_hub_cache_and_reports_offline_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    seeded = tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    assert main(["weights", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["fasterrcnn_resnet50_fpn_v2"] is False  # COCO weights: not on this machine
    assert not seeded.exists()

    assert main(["weights", "--seed", "--json"]) == 0
    out = capsys.readouterr().out
    after = json.loads(out[out.index("{") :])
    assert after["fasterrcnn_mobilenet_v2_fpn"] is True
    assert after["maskrcnn_mobilenet_v2_fpn"] is True
    # torchvision checks the same prefix of the file's sha256 against its name.
    assert hashlib.sha256(seeded.read_bytes()).hexdigest().startswith("b0353104")


def test_sample_command_creates_a_project_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sample", str(tmp_path / "s"), "--labeled", "10"]) == 0
    assert "40 images" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "s"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"]["reviewed"] == 10
    assert main(["sample", str(tmp_path / "s")]) == 0  # reopens, changes nothing
    capsys.readouterr()
    assert main(["info", str(tmp_path / "s"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"]["reviewed"] == 10
