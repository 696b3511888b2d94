"""YOLO import/export: coco128 YOLO agrees with coco128 COCO, class lists, bad rows."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from annowidget.formats import (
    FormatError,
    export_yolo,
    import_coco,
    import_yolo,
    load_classes,
)
from annowidget.formats._classes import parse_yaml_names
from annowidget.store import Project, ProjectError

DATA = Path(__file__).parents[1].parent / "shared" / "data"
COCO128 = DATA / "coco128"
IMAGES = COCO128 / "images" / "train2017"
LABELS = COCO128 / "object_detection" / "labels" / "train2017"
CONFIG = COCO128 / "object_detection" / "config.yaml"
COCO_JSON = COCO128 / "annotations" / "instances_train2017_first128.json"
needs_coco128 = pytest.mark.skipif(
    not LABELS.is_dir(), reason=f"coco128 not found at {COCO128} (../shared/data)"
)


def boxes(project: Project, *, crowd: bool = True) -> dict[str, list[tuple[str, tuple]]]:
    names = {category.id: category.name for category in project.categories()}
    images = {image.id: image for image in project.images()}
    found: dict[str, list[tuple[str, tuple]]] = defaultdict(list)
    for a in project.annotations():
        if crowd or not a.iscrowd:
            image = images[a.image_id]
            found[image.path].append((names[a.category_id], a.bbox, image.width, image.height))
    return found


def assert_same_boxes(found: list[tuple], expected: list[tuple], *, rel: float) -> None:
    """Each found box matches one expected box of the same class, coordinates within
    ``rel`` of the image size, and none is left over."""
    unmatched = list(expected)
    for name, bbox, width, height in found:
        scale = (width, height, width, height)
        match = next(
            (
                other
                for other in unmatched
                if other[0] == name
                and all(
                    abs(a - b) <= rel * s for a, b, s in zip(bbox, other[1], scale, strict=True)
                )
            ),
            None,
        )
        assert match is not None, (name, bbox)
        unmatched.remove(match)
    assert unmatched == []


@needs_coco128
def test_a_yolo_and_a_coco_import_of_coco128_agree(tmp_path: Path) -> None:
    with Project.create(tmp_path / "coco", images_root=IMAGES) as project:
        import_coco(project, COCO_JSON)
        from_coco = boxes(project, crowd=False)
    with Project.create(tmp_path / "yolo", images_root=IMAGES) as project:
        report = import_yolo(project, LABELS, images_dir=IMAGES, classes=CONFIG)
        assert report.skipped == []
        assert report.clipped == []  # overflows of a rounding error are not reported
        assert (report.images_added, report.annotations_added) == (128, 929)
        from_yolo = boxes(project)
        statuses = {image.path: image.status for image in project.images()}
        used = {c.name for c in project.categories()}
    # The two images without a label file wait to be labeled.
    assert [p for p, s in statuses.items() if s == "unlabeled"] == [
        "000000000250.jpg",
        "000000000508.jpg",
    ]
    assert sum(map(len, from_coco.values())) == 929  # 939 minus the 10 crowd annotations
    assert used == {name for anns in from_coco.values() for name, *_ in anns}
    assert from_yolo.keys() == from_coco.keys()
    for path, anns in from_yolo.items():
        assert_same_boxes(anns, from_coco[path], rel=2e-3)


@needs_coco128
def test_export_then_import_gives_the_same_boxes(tmp_path: Path) -> None:
    with Project.create(tmp_path / "a", images_root=IMAGES) as project:
        import_yolo(project, LABELS, images_dir=IMAGES, classes=CONFIG)
        counts = export_yolo(project, tmp_path / "out")
        before = boxes(project)
        names = [c.name for c in project.categories()]
    assert counts == {"images": 126, "annotations": 929, "classes": 71}
    assert (tmp_path / "out" / "classes.txt").read_text().splitlines() == names
    with Project.create(tmp_path / "b", images_root=IMAGES) as project:
        report = import_yolo(
            project,
            tmp_path / "out" / "labels",
            images_dir=IMAGES,
            classes=tmp_path / "out" / "classes.txt",
        )
        assert report.skipped == []
        after = boxes(project)
    assert after.keys() == before.keys()
    for path, anns in before.items():
        assert_same_boxes(after[path], anns, rel=1e-5)


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def small(tmp_path: Path) -> tuple[Project, Path, Path]:
    """A project over three coco128 images, with an empty labels folder beside them."""
    if not IMAGES.is_dir():
        pytest.skip(f"coco128 images not found at {IMAGES}")
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for name in ("000000000009.jpg", "000000000025.jpg", "000000000030.jpg"):
        shutil.copy(IMAGES / name, images / name)  # 640x480, 640x426, 640x428
    with Project.create(tmp_path / "p", images_root=images) as project:
        yield project, images, labels


def test_rows_with_the_wrong_number_of_values_are_skipped_by_file_and_line(
    small: tuple[Project, Path, Path],
) -> None:
    project, images, labels = small
    (labels / "000000000009.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n"
        "1 0.5 0.5 0.2\n"  # 4 values
        "\n"
        "0 0.5 0.5 0.2 0.2 0.9\n"  # 6 values (a score?)
        "1 0.1 0.1 0.3 0.1 0.3 0.3 0.1\n"  # 8 values: an odd number of coordinates
        "7 0.5 0.5 0.2 0.2\n"  # unknown class
        "x 0.5 0.5 0.2 0.2\n"
        "0 0.5 abc 0.2 0.2\n"
        "0 0.5 0.5 -0.2 0.2\n"
        "1 0.1 0.1 0.3 0.1 0.3 0.3\n"  # a triangle
    )
    (labels / "000000000025.txt").write_text("1 0.25 0.25 0.5 0.5\n")
    report = import_yolo(project, labels, images_dir=images, classes=["cat", "dog"])
    skipped = dict(report.skipped)
    assert skipped["000000000009.txt:2"].startswith("4 values; expected 5 (class cx cy w h)")
    assert skipped["000000000009.txt:4"].startswith("6 values")
    assert skipped["000000000009.txt:5"].startswith("8 values")
    assert skipped["000000000009.txt:6"] == "class 7 is not in the class list (2 classes)"
    assert skipped["000000000009.txt:7"] == "class 'x' is not an integer"
    assert skipped["000000000009.txt:8"] == "coordinates must be numbers"
    assert "negative width" in skipped["000000000009.txt:9"]
    assert len(report.skipped) == 7
    assert report.annotations_added == 3
    image = project.image_by_path("000000000009.jpg")
    box, triangle = project.annotations(image.id)
    assert box.bbox == pytest.approx((256, 192, 128, 96))
    assert triangle.segmentation == [pytest.approx([64, 48, 192, 48, 192, 144])]
    assert triangle.bbox == pytest.approx((64, 48, 128, 96))
    assert triangle.area == pytest.approx(128 * 96 / 2, rel=0.05)
    # The image with no label file is there, unlabeled.
    assert project.image_by_path("000000000030.jpg").status == "unlabeled"
    assert project.image_by_path("000000000025.jpg").status == "reviewed"


def test_boxes_past_the_edge_are_clipped_and_reported(small: tuple[Project, Path, Path]) -> None:
    project, images, labels = small
    (labels / "000000000009.txt").write_text("0 0.95 0.5 0.2 0.1\n0 1.5 0.5 0.2 0.2\n")
    report = import_yolo(project, labels, images_dir=images, classes=["cat"])
    assert report.clipped == [
        (
            "000000000009.txt:1",
            "box [544, 216, 128, 48] clipped to [544, 216, 96, 48] (image 640x480)",
        )
    ]
    assert report.skipped[0][0] == "000000000009.txt:2"
    assert "outside the image" in report.skipped[0][1]
    assert report.annotations_added == 1


def test_a_label_file_without_image_and_a_corrupt_image_are_reported(
    small: tuple[Project, Path, Path],
) -> None:
    project, images, labels = small
    (images / "000000000025.jpg").write_bytes((images / "000000000025.jpg").read_bytes()[:2000])
    (labels / "000000000025.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (labels / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (labels / "000000000009.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = import_yolo(project, labels, images_dir=images, classes=["cat"])
    skipped = dict(report.skipped)
    assert skipped["orphan.txt"].startswith("no image with this name under")
    assert skipped["000000000025.txt (000000000025.jpg)"].startswith("000000000025.jpg: ")
    assert skipped["000000000025.txt:1"].endswith("was skipped")
    assert (report.images_added, report.annotations_added) == (2, 1)


def test_segments_export_writes_polygons(small: tuple[Project, Path, Path], tmp_path: Path) -> None:
    project, images, labels = small
    (labels / "000000000009.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n0 0.5 0.5 0.25 0.25\n")
    import_yolo(project, labels, images_dir=images, classes=["cat"])
    export_yolo(project, tmp_path / "out", segments=True)
    rows = (tmp_path / "out" / "labels" / "000000000009.txt").read_text().splitlines()
    assert rows == [
        "0 0.100000 0.100000 0.500000 0.100000 0.500000 0.500000",
        "0 0.375000 0.375000 0.625000 0.375000 0.625000 0.625000 0.375000 0.625000",
    ]
    export_yolo(project, tmp_path / "boxes")
    rows = (tmp_path / "boxes" / "labels" / "000000000009.txt").read_text().splitlines()
    assert rows == [
        "0 0.300000 0.300000 0.400000 0.400000",
        "0 0.500000 0.500000 0.250000 0.250000",
    ]
    # The unlabeled images get no label file.
    assert sorted(p.name for p in (tmp_path / "boxes" / "labels").iterdir()) == ["000000000009.txt"]


def test_an_images_dir_outside_the_root_is_refused_at_once(
    small: tuple[Project, Path, Path], tmp_path: Path
) -> None:
    project, _, labels = small
    with pytest.raises(ProjectError, match="outside the project's images root"):
        import_yolo(project, labels, images_dir=tmp_path, classes=["cat"])
    with pytest.raises(FormatError, match="the labels directory does not exist"):
        import_yolo(project, tmp_path / "nope", images_dir=tmp_path, classes=["cat"])


# --------------------------------------------------------------- class lists


def test_class_lists_from_names_text_and_yaml(tmp_path: Path) -> None:
    assert load_classes(["cat", "dog"]) == {0: "cat", 1: "dog"}
    text = tmp_path / "classes.txt"
    text.write_text("cat\ndog\n\n")
    assert load_classes(text) == {0: "cat", 1: "dog"}
    text.write_text("cat\n\ndog\n")
    with pytest.raises(FormatError, match=r"classes\.txt:2: empty line"):
        load_classes(text)
    assert parse_yaml_names("names:\n  - cat\n  - 'hot dog'  # food\nnc: 2\n") == {
        0: "cat",
        1: "hot dog",
    }
    assert parse_yaml_names("names: [cat, 'dog, big', \"x\"]  # three\n") == {
        0: "cat",
        1: "dog, big",
        2: "x",
    }
    assert parse_yaml_names("path: .\nnames:\n  1: person\n  3: car\ntrain: x\n") == {
        1: "person",
        3: "car",
    }
    assert parse_yaml_names("names: {0: a, 1: b}") == {0: "a", 1: "b"}
    with pytest.raises(FormatError, match="no 'names:' entry"):
        parse_yaml_names("nc: 3\n")
    with pytest.raises(FormatError, match="class id 'person' is not an integer"):
        parse_yaml_names("names:\n  person: 0\n")


def test_yaml_class_names_stay_text_and_bad_yaml_names_the_file(tmp_path: Path) -> None:
    # PyYAML would read these as a boolean, a float and None: they are class names here
    assert parse_yaml_names("names: [no, 1e3, null]\n") == {0: "no", 1: "1e3", 2: "null"}
    config = tmp_path / "data.yaml"
    config.write_text("names: [cat, dog\n")
    with pytest.raises(FormatError, match=r"data\.yaml: not valid YAML"):
        load_classes(config)
    with pytest.raises(FormatError, match="the name of class 0 is not text"):
        parse_yaml_names("names:\n  - [a, b]\n")


@needs_coco128
def test_coco128_config_yaml_has_the_80_coco_names() -> None:
    names = load_classes(CONFIG)
    assert len(names) == 80
    assert (names[0], names[9], names[79]) == ("person", "traffic light", "toothbrush")
    segmentation = load_classes(COCO128 / "instance_segmentation" / "config.yaml")
    assert segmentation[1] == "person"
    assert 12 not in segmentation  # panoptic ids have gaps
