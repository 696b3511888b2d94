"""An image file changed on disk after it was added (resized, or replaced by another of the
same size): the Annotator does not show boxes on the wrong frame, and says which file."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage

from annowidget.store import Project
from annowidget.widgets.annotator import Annotator


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """Two reviewed 64x48 photos, added the usual way (size and checksum recorded)."""
    images = tmp_path / "images"
    images.mkdir()
    with Project.create(tmp_path / "p", images_root=images) as project:
        dog = project.add_category("dog").id
        for name, colour in (("a.jpg", (200, 30, 30)), ("b.jpg", (30, 30, 200))):
            PILImage.new("RGB", (64, 48), colour).save(images / name)
            image = project.add_image(images / name)
            project.add_annotation(image.id, dog, [4, 4, 20, 10])
        yield project


def _open(project: Project, image_id: int) -> tuple[Annotator, list[int]]:
    """An Annotator on ``image_id`` with a view listening; returns it and the ids it sent."""
    widget = Annotator(project)
    sent: list[int] = []

    def record(data=None, metadata=None, buffers=None) -> None:
        content = (data or {}).get("content") or {}
        if data.get("method") == "custom" and content.get("type") == "image":
            sent.append(content["image_id"])

    widget.comm.send = record
    widget._handle_custom_msg({"type": "ready"}, [])
    widget.goto(image_id)
    return widget, sent


def test_an_image_resized_on_disk_is_not_shown_and_the_message_names_it(
    project: Project,
) -> None:
    image = project.images(status="reviewed")[0]
    path = project.image_path(image)
    with PILImage.open(path) as pixels:
        pixels.resize((image.width // 2, image.height // 2)).save(path, format="JPEG")
    widget, sent = _open(project, image.id)
    assert widget.image.id == image.id
    assert image.id not in sent  # its boxes would sit at twice the size on it
    assert widget.message == (
        f"{path}: {image.width // 2}x{image.height // 2} pixels on disk but the project "
        f"recorded {image.width}x{image.height} (the file changed since it was added); "
        "its annotations would be misplaced"
    )


def test_a_same_size_replacement_is_shown_with_a_warning(project: Project) -> None:
    first, second = project.images(status="reviewed")[:2]
    path = project.image_path(first)
    with PILImage.open(project.image_path(second)) as other:
        other.convert("RGB").resize((first.width, first.height)).save(path, format="JPEG")
    widget, sent = _open(project, first.id)
    assert first.id in sent
    assert widget.message == (
        f"{path}: the file changed since it was added (same size); check its boxes"
    )
    widget.goto(second.id)
    assert widget.message == ""  # an untouched file shows without a word
