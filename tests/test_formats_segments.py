"""Masks and keypoints through the formats: coco128's YOLO segment polygons against its COCO
masks, and what the Annotator stores (polygons, RLE, keypoints) through COCO exactly."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from annowidget.formats import export_coco, import_coco, import_yolo
from annowidget.store import Annotation, Project

DATA = Path(__file__).parents[1].parent / "shared" / "data"
COCO128 = DATA / "coco128"
IMAGES = COCO128 / "images" / "train2017"
SEGMENTS = COCO128 / "instance_segmentation" / "labels" / "train2017"
SEGMENTS_YAML = COCO128 / "instance_segmentation" / "config.yaml"
DETECTION_YAML = COCO128 / "object_detection" / "config.yaml"
COCO_JSON = COCO128 / "annotations" / "instances_train2017_first128.json"
needs_coco128 = pytest.mark.skipif(
    not SEGMENTS.is_dir() or not COCO_JSON.is_file(),
    reason=f"coco128 segments not found at {COCO128} (../shared/data)",
)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _rle(a: Annotation, height: int, width: int) -> Any:
    seg = a.segmentation
    if isinstance(seg, dict):
        if isinstance(seg["counts"], list):
            return mask_utils.frPyObjects(seg, height, width)
        return {**seg, "counts": seg["counts"].encode()}
    return mask_utils.merge(mask_utils.frPyObjects(seg, height, width))


@needs_coco128
def test_coco128_yolo_segments_import_with_panoptic_ids_and_match_the_coco_masks(
    tmp_path: Path,
) -> None:
    """The YOLO-seg labels number classes by COCO *panoptic* id (1..90 with gaps), named by
    instance_segmentation/config.yaml. Imported with that list, each polygon lands on the
    COCO instance it outlines, with the same class."""
    with Project.create(tmp_path / "yolo", images_root=IMAGES) as project:
        report = import_yolo(project, SEGMENTS, images_dir=IMAGES, classes=SEGMENTS_YAML)
        assert report.skipped == []
        assert (report.images_added, report.annotations_added) == (128, 746)
        statuses = Counter(image.status for image in project.images())
        assert statuses == {"reviewed": 100, "unlabeled": 28}  # 100 label files upstream
        names = {c.id: c.name for c in project.categories()}
        segments = {
            image.path: (image, project.annotations(image.id))
            for image in project.images(status="reviewed")
        }
    with Project.create(tmp_path / "coco", images_root=IMAGES) as project:
        import_coco(project, COCO_JSON)
        coco_names = {c.id: c.name for c in project.categories()}
        coco = {image.path: project.annotations(image.id) for image in project.images()}

    agree, ious = 0, []
    for path, (image, anns) in segments.items():
        assert all(a.segmentation and len(a.segmentation) == 1 for a in anns)  # one polygon
        truth = [_rle(b, image.height, image.width) for b in coco[path]]
        for a in anns:
            crowd = [0] * len(truth)
            overlap = mask_utils.iou([_rle(a, image.height, image.width)], truth, crowd)[0]
            best = int(np.argmax(overlap))
            ious.append(overlap[best])
            agree += coco_names[coco[path][best].category_id] == names[a.category_id]
    # Upstream drew these from COCO's panoptic masks (no overlaps, crowds as objects), so
    # shapes differ a little from the instance masks; classes agree but for one couch.
    assert agree >= len(ious) - 1
    assert np.median(ious) > 0.85
    assert np.mean(np.array(ious) > 0.5) > 0.97


@needs_coco128
def test_the_detection_class_list_does_not_fit_the_segment_labels(tmp_path: Path) -> None:
    """With the contiguous 0-79 list the panoptic ids above 79 name no class: those rows
    are skipped and named, not silently given a wrong class."""
    with Project.create(tmp_path / "p", images_root=IMAGES) as project:
        report = import_yolo(project, SEGMENTS, images_dir=IMAGES, classes=DETECTION_YAML)
    assert report.skipped
    assert all("is not in the class list (80 classes)" in reason for _, reason in report.skipped)


def _annotator_project(tmp_path: Path) -> Project:
    """What the Annotator's tools store: a float polygon with a hole-free ring and a second
    part, a compressed RLE (brush), an uncompressed RLE, person keypoints with v=0/1/2."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(IMAGES / "000000000009.jpg", images / "a.jpg")  # 640x480
    project = Project.create(tmp_path / "project", images_root=images)
    image = project.add_image(images / "a.jpg", folder="train")
    person = project.add_category(
        "person",
        keypoints=["nose", "left_eye", "right_eye", "left_ear"],
        skeleton=[[1, 2], [1, 3], [2, 4]],
    )
    blob = project.add_category("blob")
    polygon = [
        [10.25, 20.5, 110.125, 22.0, 95.75, 140.375, 12.0, 130.0],
        [300.5, 300.5, 340.0, 301.0, 320.25, 350.75],
    ]
    project.add_annotation(image.id, blob.id, [10.25, 20.5, 330.0, 330.25], segmentation=polygon)
    brush = np.zeros((480, 640), dtype=np.uint8)
    brush[200:260, 400:470] = 1
    brush[230:240, 420:430] = 0
    rle = mask_utils.encode(np.asfortranarray(brush))
    compressed = {"size": [480, 640], "counts": rle["counts"].decode()}
    project.add_annotation(image.id, blob.id, [400, 200, 70, 60], segmentation=compressed)
    uncompressed = {"size": [480, 640], "counts": [640 * 100 + 5, 20, 640 * 380 - 25]}
    project.add_annotation(
        image.id, blob.id, [156, 100, 1, 20], segmentation=uncompressed, iscrowd=1
    )
    keypoints = [320.5, 100.25, 2, 330.0, 120.0, 1, 0, 0, 0, 341.75, 118.5, 2]
    project.add_annotation(
        image.id, person.id, [300, 80, 60, 90], keypoints=keypoints, segmentation=compressed
    )
    return project


@needs_coco128
def test_what_the_annotator_stores_round_trips_through_coco_exactly(tmp_path: Path) -> None:
    with _annotator_project(tmp_path) as project:
        export_coco(project, tmp_path / "first.json")
        before = {a.id: a.to_dict() for a in project.annotations()}
        images_root = project.images_root
        categories = [(c.name, c.keypoints, c.skeleton) for c in project.categories()]
    with Project.create(tmp_path / "second", images_root=images_root) as second:
        report = import_coco(second, tmp_path / "first.json")
        assert report.skipped == []
        assert report.clipped == []
        export_coco(second, tmp_path / "second.json")
        after = {a.id: a.to_dict() for a in second.annotations()}
        assert [(c.name, c.keypoints, c.skeleton) for c in second.categories()] == categories
    drop = ("id", "image_id", "source")
    assert [{k: v for k, v in a.items() if k not in drop} for a in after.values()] == [
        {k: v for k, v in a.items() if k not in drop} for a in before.values()
    ]
    first, second_json = (
        json.loads((tmp_path / name).read_text()) for name in ("first.json", "second.json")
    )
    assert first["annotations"] == second_json["annotations"]
    assert first["categories"] == second_json["categories"]
    person = next(a for a in first["annotations"] if "keypoints" in a)
    assert person["num_keypoints"] == 3  # v=1 and v=2 count, v=0 does not
    # pycocotools reads the file; every mask decodes to the pixels the Annotator stored.
    coco = COCO(str(tmp_path / "second.json"))
    masks = defaultdict(list)
    for ann in coco.dataset["annotations"]:
        masks[ann["category_id"]].append(coco.annToMask(ann))
    blob = next(c["id"] for c in first["categories"] if c["name"] == "blob")
    assert masks[blob][1][200:260, 400:470].sum() == 60 * 70 - 100
    assert masks[blob][2].sum() == 20
