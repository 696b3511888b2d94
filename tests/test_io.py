"""The one atomic write: whole files or nothing, with the permissions the umask allows."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from annowidget._io import atomic_write_bytes, atomic_write_json, atomic_writer, current_umask
from annowidget.formats import export_coco
from annowidget.models import ModelCard, ModelRegistry
from annowidget.store import Project


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_are_readable_by_the_team_under_umask_022(
    tmp_path: Path, umask_022: None
) -> None:
    assert current_umask() == 0o022
    assert _mode(atomic_write_bytes(tmp_path / "a.bin", b"x")) == 0o644
    assert _mode(atomic_write_json(tmp_path / "b.json", {})) == 0o644
    registry = ModelRegistry(tmp_path / "models")
    folder = registry.reserve(
        "m", ModelCard("m", "detection", "fasterrcnn_mobilenet_v2_fpn", ["a"])
    )
    assert _mode(folder / "card.json") == 0o644
    weights = registry.save_weights("m", {"w": torch.zeros(2)})
    assert _mode(weights) == 0o644
    project = Project.create(tmp_path / "p", tmp_path)
    export_coco(project, tmp_path / "export" / "coco.json")
    assert _mode(tmp_path / "export" / "coco.json") == 0o644


def test_a_private_umask_keeps_files_private(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        assert _mode(atomic_write_bytes(tmp_path / "a.bin", b"x")) == 0o600
    finally:
        os.umask(previous)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = atomic_write_bytes(tmp_path / "f.txt", b"old")

    def fail_midway() -> None:
        with atomic_writer(target) as out:
            out.write(b"half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    with pytest.raises(ValueError, match="mode 'w' or 'wb'"), atomic_writer(target, "a"):
        pass
