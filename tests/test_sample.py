"""The bundled sample project: real images, real boxes, a reproducible split."""

from __future__ import annotations

from pathlib import Path

import pytest

import annowidget
from annowidget.sample import SAMPLE_DIR, sample_annotations


def test_sample_ships_its_license_and_attribution() -> None:
    assert "MIT License" in (SAMPLE_DIR / "LICENSE").read_text()
    assert "Dat Tran" in (SAMPLE_DIR / "ATTRIBUTION.md").read_text()
    files = {p.name for p in (SAMPLE_DIR / "images").iterdir()}
    assert files == {entry["file_name"] for entry in sample_annotations()["images"]}


def test_sample_project_labels_the_first_images_and_leaves_the_rest(tmp_path: Path) -> None:
    project = annowidget.sample_project(tmp_path / "sample", labeled=30)
    info = project.info()
    assert info["images"] == 40
    assert info["folders"] == {"train": 24, "test": 6, "unlabeled": 10}
    assert info["status"]["reviewed"] == 30
    assert info["status"]["unlabeled"] == 10
    expected = sum(
        1
        for a in sample_annotations()["annotations"]
        if a["image_id"] in {e["id"] for e in sample_annotations()["images"][:30]}
    )
    assert info["annotations"] == expected
    assert all(project.image_path(image).is_file() for image in project.images())


def test_sample_project_reopens_with_edits_kept(tmp_path: Path) -> None:
    project = annowidget.sample_project(tmp_path / "sample")
    image = project.images(folder="unlabeled")[0]
    project.add_annotation(image.id, project.category("raccoon").id, [1, 2, 30, 40])
    project.close()
    again = annowidget.sample_project(tmp_path / "sample")
    assert len(again.annotations(image.id)) == 1


def test_sample_project_refuses_an_impossible_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labeled"):
        annowidget.sample_project(tmp_path / "s", labeled=41)
