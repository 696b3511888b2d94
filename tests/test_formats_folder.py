"""Importing a folder of plain images: suffixes, sub-folders, broken files, re-imports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from annowidget.formats import import_images
from annowidget.store import Project, ProjectError

DATA = Path(__file__).parents[1].parent / "shared" / "data"
RACCOON_IMAGES = DATA / "raccoon" / "images"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Real photos in a folder tree, plus the files an import must skip or ignore."""
    if not RACCOON_IMAGES.is_dir():
        pytest.skip(f"raccoon images not found at {RACCOON_IMAGES}")
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    (root / ".ipynb_checkpoints").mkdir()
    shutil.copy(RACCOON_IMAGES / "raccoon-1.jpg", root / "a.jpg")
    shutil.copy(RACCOON_IMAGES / "raccoon-2.jpg", root / "trip" / "B.JPG")
    shutil.copy(RACCOON_IMAGES / "raccoon-3.jpg", root / "trip" / "day2" / "c.jpeg")
    shutil.copy(RACCOON_IMAGES / "raccoon-4.jpg", root / ".ipynb_checkpoints" / "a.jpg")
    Image.new("RGB", (32, 24), "red").save(root / "trip" / "d.png")
    Image.new("L", (10, 10)).save(root / "e.webp")
    jpeg = (RACCOON_IMAGES / "raccoon-5.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("not an image, just a name\n")
    (root / "readme.txt").write_text("ignored: not an image suffix\n")
    return root


def test_a_folder_tree_is_imported_and_broken_files_are_reported(
    tmp_path: Path, photos: Path
) -> None:
    with Project.create(tmp_path / "p", images_root=photos) as project:
        report = import_images(project, photos)
        assert sorted(image.path for image in project.images()) == [
            "a.jpg",
            "e.webp",
            "trip/B.JPG",
            "trip/d.png",
            "trip/day2/c.jpeg",
        ]
        assert report.images_added == 5
        skipped = dict(report.skipped)
        assert sorted(skipped) == ["empty.png", "notes.jpg", "truncated.jpg"]
        assert skipped["empty.png"].startswith("empty.png: ")
        assert skipped["truncated.jpg"].startswith("truncated.jpg: ")
        assert {image.folder for image in project.images()} == {"unlabeled"}
        assert {image.status for image in project.images()} == {"unlabeled"}
        png = project.image_by_path("trip/d.png")
        assert (png.width, png.height) == (32, 24)
        assert len(png.checksum) == 40

        again = import_images(project, photos / "trip", folder="other")
        assert (again.images_added, again.images_existing) == (0, 3)
        assert project.image_by_path("trip/d.png").folder == "unlabeled"  # not moved


def test_non_recursive_import_takes_the_top_folder_only(tmp_path: Path, photos: Path) -> None:
    with Project.create(tmp_path / "p", images_root=photos) as project:
        report = import_images(project, photos / "trip", recursive=False, folder="batch1")
        assert report.images_added == 2
        assert sorted(i.path for i in project.images(folder="batch1")) == [
            "trip/B.JPG",
            "trip/d.png",
        ]


def test_a_folder_outside_the_images_root_is_refused(tmp_path: Path, photos: Path) -> None:
    with Project.create(tmp_path / "p", images_root=photos / "trip") as project:
        with pytest.raises(ProjectError, match="outside the project's images root"):
            import_images(project, photos)
        assert project.images() == []
