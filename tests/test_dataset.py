"""The snapshot dataset: resized images and targets (boxes, masks, keypoints), augmentation,
negatives, data errors that name the file, a frozen copy of the project's annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

from annowidget.models.catalog import max_size_for
from annowidget.store import Project
from annowidget.train.dataset import (
    DataError,
    SnapshotDataset,
    collate,
    decode_image,
    split_items,
)
from annowidget.train.transforms import (
    IGNORE_INDEX,
    DetectionAugment,
    flip_permutation,
    resized_shape,
)

KEYPOINTS = ["nose", "left_eye", "right_eye"]


def _image(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    array[...] = color
    array[size[1] // 4 : size[1] // 2, size[0] // 4 : size[0] // 2] = (255, 255, 255)
    PILImage.fromarray(array).save(path)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """Three real PNG images: two labelled 200x100, one 100x100 negative (reviewed)."""
    images = tmp_path / "images"
    images.mkdir()
    project = Project.create(tmp_path / "project", images_root=images)
    cat = project.add_category("cat")
    dog = project.add_category("dog", keypoints=KEYPOINTS)
    a = project.add_image(_image(images / "a.png", (200, 100), (200, 0, 0)), folder="train")
    b = project.add_image(_image(images / "b.png", (200, 100), (0, 200, 0)), folder="train")
    c = project.add_image(_image(images / "c.png", (100, 100), (0, 0, 200)), folder="train")
    project.add_annotation(
        a.id, cat.id, [20, 10, 100, 50], segmentation=[[20, 10, 120, 10, 120, 60, 20, 60]]
    )
    project.add_annotation(
        a.id,
        dog.id,
        [100, 20, 80, 60],
        keypoints=[110, 30, 2, 120, 30, 2, 150, 30, 1],
    )
    project.add_annotation(b.id, cat.id, [150, 50, 100, 100])  # spills over the right edge
    project.add_annotation(b.id, cat.id, [10, 10, 0, 5])  # degenerate
    project.add_annotation(b.id, dog.id, [0, 0, 200, 100], iscrowd=1)
    project.set_status(c.id, "reviewed")  # a negative: reviewed, nothing on it
    return project


def _dataset(project: Project, **kwargs: object) -> SnapshotDataset:
    kwargs.setdefault("image_size", 50)
    kwargs.setdefault("max_size", 100)
    return SnapshotDataset.from_snapshot(project, project.snapshot("train"), **kwargs)


def test_resize_helpers() -> None:
    assert resized_shape(100, 150, 50, max_size_for(50)) == (50, 75)
    assert resized_shape(100, 200, 50, max_size_for(50)) == (42, 83)  # 83 = 50 * 1333 / 800
    assert resized_shape(100, 1000, 50, 200) == (20, 200)  # the long side caps the scale
    assert flip_permutation(KEYPOINTS) == [0, 2, 1]
    assert flip_permutation(["l_hand", "r_hand", "tail"]) == [1, 0, 2]
    assert flip_permutation(["head", "tail"]) is None


def test_detection_targets_are_scaled_clamped_and_cleaned(project: Project) -> None:
    ds = _dataset(project)
    assert len(ds) == 3
    image, target = ds[0]
    assert image.dtype == torch.float32
    assert tuple(image.shape) == (3, 50, 100)
    assert float(image.min()) >= 0.0
    assert float(image.max()) <= 1.0
    assert target["scale"] == (0.5, 0.5)
    assert target["labels"].tolist() == [1, 2]
    assert target["boxes"].tolist() == [[10.0, 5.0, 60.0, 30.0], [50.0, 10.0, 90.0, 40.0]]
    assert type(target["boxes"]) is torch.Tensor  # plain tensors for the model

    _, spill = ds[1]
    # degenerate box and crowd region dropped; the box spilling out is clamped to the image
    assert spill["boxes"].tolist() == [[75.0, 25.0, 100.0, 50.0]]
    assert spill["labels"].tolist() == [1]

    image, negative = ds[2]
    assert tuple(image.shape) == (3, 50, 50)
    assert negative["boxes"].shape == (0, 4)
    assert negative["labels"].shape == (0,)


def test_instance_masks_from_polygons_rle_and_boxes(project: Project, tmp_path: Path) -> None:
    image = project.images(folder="train")[1]
    pixels = np.zeros((100, 200), dtype=np.uint8)
    pixels[20:60, 20:80] = 1
    rle = mask_utils.encode(np.asfortranarray(pixels))
    rle_counts = {"size": rle["size"], "counts": rle["counts"].decode()}
    dog = project.category("dog").id
    project.add_annotation(image.id, dog, [20, 20, 60, 40], segmentation=rle_counts)
    ds = _dataset(project, task="instance_segmentation")
    _, first = ds[0]
    masks = first["masks"]
    assert masks.dtype == torch.uint8
    assert tuple(masks.shape) == (2, 50, 100)
    assert int(masks[0].sum()) == pytest.approx(50 * 25, rel=0.1)  # the polygon, rasterised
    assert int(masks[1].sum()) == pytest.approx(40 * 30, rel=0.1)  # no polygon: its box
    _, second = ds[1]
    assert second["masks"].shape[0] == second["boxes"].shape[0] == 2
    assert int(second["masks"][1].sum()) == pytest.approx(30 * 20, rel=0.1)  # RLE resized
    _, negative = ds[2]
    assert tuple(negative["masks"].shape) == (0, 50, 50)


def test_keypoints_scale_and_flip_swaps_left_and_right(project: Project) -> None:
    ds = _dataset(project, task="keypoints")
    _, target = ds[0]
    points = target["keypoints"]
    assert tuple(points.shape) == (2, 3, 3)
    assert points[1].tolist() == [[55.0, 15.0, 2.0], [60.0, 15.0, 2.0], [75.0, 15.0, 1.0]]
    assert points[0, :, 2].tolist() == [0.0, 0.0, 0.0]  # the cat has no keypoints
    flipped = _dataset(project, task="keypoints", train=True)
    flipped.augment = DetectionAugment(flip_p=1.0, photometric_p=0.0, flip_index=[0, 2, 1])
    _, target = flipped[0]
    width = 100
    nose, left, right = target["keypoints"][1].tolist()
    assert nose[0] == pytest.approx(width - 1 - 55.0)
    # the old right eye (x=75, visibility 1) is the new left eye, mirrored
    assert left == [pytest.approx(width - 1 - 75.0), 15.0, 1.0]
    assert right[2] == 2.0
    assert target["boxes"][1].tolist() == [10.0, 10.0, 50.0, 40.0]


def test_keypoints_task_needs_keypoint_names(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    project = Project.create(tmp_path / "p", images_root=images)
    project.add_category("cat")
    with pytest.raises(ValueError, match="keypoint names"):
        _dataset(project, task="keypoints")


def test_semantic_mask_uses_labels_and_ignores_crowds(project: Project) -> None:
    ds = _dataset(project, task="semantic_segmentation")
    _, target = ds[0]
    mask = target["mask"]
    assert tuple(mask.shape) == (50, 100)
    assert set(mask.unique().tolist()) == {0, 1, 2}
    assert int(mask[20, 30]) == 1  # inside the cat polygon only
    _, crowd = ds[1]
    assert int(crowd["mask"][2, 2]) == IGNORE_INDEX  # under the crowd region only
    train = _dataset(project, task="semantic_segmentation", train=True)
    images, targets = collate([train[i] for i in range(3)])
    assert {tuple(i.shape) for i in images} == {(3, 50, 50)}  # cropped to one size
    assert {tuple(t["mask"].shape) for t in targets} == {(50, 50)}


def test_augmentation_keeps_every_box_inside_the_image(project: Project) -> None:
    torch.manual_seed(0)
    ds = _dataset(project, train=True)
    seen = set()
    for _ in range(12):
        image, target = ds[0]
        boxes = target["boxes"]
        assert boxes.shape == (2, 4)
        assert float(boxes[:, 0].min()) >= 0
        assert float(boxes[:, 2].max()) <= image.shape[-1]
        seen.add(round(float(boxes[0, 0])))
    assert seen == {10, 40}  # flipped and not flipped (100 - 60 = 40)


def test_dataset_is_a_frozen_copy_of_the_snapshot(project: Project) -> None:
    ds = _dataset(project)
    before = ds[0][1]["boxes"].clone()
    for annotation in project.annotations():
        project.delete_annotation(annotation.id)
    project.add_image(_image(project.images_root / "d.png", (64, 64), (1, 2, 3)), folder="train")
    assert len(ds) == 3
    assert torch.equal(ds[0][1]["boxes"], before)
    fresh = _dataset(project)
    assert fresh[0][1]["boxes"].shape == (0, 4)


def test_decoded_images_are_cached(project: Project) -> None:
    calls: list[Path] = []

    def counting_decoder(path: Path) -> torch.Tensor:
        calls.append(path)
        return decode_image(path)

    ds = _dataset(project, decoder=counting_decoder)
    for _ in range(3):
        ds[0]
    assert len(calls) == 1
    small = _dataset(project, decoder=counting_decoder, cache_bytes=0)
    small[0]
    small[0]
    assert len(calls) == 3


def test_an_image_that_does_not_decode_names_the_file(project: Project) -> None:
    broken = project.images_root / "b.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    ds = _dataset(project)
    ds[0]
    with pytest.raises(DataError, match=r"cannot decode image .*b\.png"):
        ds[1]


def test_missing_files_and_size_changes_are_reported(project: Project) -> None:
    (project.images_root / "a.png").unlink()
    with pytest.raises(DataError, match=r"not found: .*a\.png"):
        _dataset(project)
    _image(project.images_root / "a.png", (120, 100), (1, 1, 1))
    with pytest.raises(DataError, match=r"a\.png is 120x100 pixels on disk but the project"):
        _dataset(project)[0]


def test_split_is_reproducible_and_disjoint() -> None:
    items = [(i, []) for i in range(10)]
    train, test = split_items(items, 0.8, seed=3)
    assert (len(train), len(test)) == (8, 2)
    assert sorted(train + test) == items
    assert split_items(items, 0.8, seed=3) == (train, test)
    assert split_items(items, 0.8, seed=4) != (train, test)
    assert [len(part) for part in split_items(items[:2], 0.99, seed=0)] == [1, 1]
