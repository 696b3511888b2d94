"""COCO import/export: the coco128 round trip, keypoints and RLE, and every bad input."""

from __future__ import annotations

import copy
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from annowidget.formats import FormatError, export_coco, import_coco
from annowidget.store import Project

DATA = Path(__file__).parents[1].parent / "shared" / "data"
COCO128 = DATA / "coco128"
COCO_JSON = COCO128 / "annotations" / "instances_train2017_first128.json"
COCO_IMAGES = COCO128 / "images" / "train2017"
needs_coco128 = pytest.mark.skipif(
    not COCO_JSON.is_file(), reason=f"coco128 not found at {COCO128} (../shared/data)"
)
# Three coco128 images and their sizes, for small hand-made files.
SMALL = {
    "000000000009.jpg": (640, 480),
    "000000000025.jpg": (640, 426),
    "000000000030.jpg": (640, 428),
}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder with copies of three coco128 images."""
    if not COCO_IMAGES.is_dir():
        pytest.skip(f"coco128 images not found at {COCO_IMAGES}")
    folder = tmp_path / "images"
    folder.mkdir()
    for name in SMALL:
        shutil.copy(COCO_IMAGES / name, folder / name)
    return folder


@pytest.fixture
def project(tmp_path: Path, images: Path) -> Project:
    with Project.create(tmp_path / "project", images_root=images) as project:
        yield project


def small_coco() -> dict[str, Any]:
    """A valid COCO dict on the three images: 4 boxes, one per image plus a second."""
    return {
        "images": [
            {"id": 10 + i, "file_name": name, "width": w, "height": h}
            for i, (name, (w, h)) in enumerate(SMALL.items())
        ],
        "categories": [
            {"id": 7, "name": "cat", "supercategory": "animal"},
            {"id": 9, "name": "dog", "supercategory": "animal"},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 20, 100, 50], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 9, "bbox": [200.5, 30, 40, 40]},
            {"id": 3, "image_id": 11, "category_id": 7, "bbox": [5, 5, 60, 60]},
            {"id": 4, "image_id": 12, "category_id": 9, "bbox": [100, 100, 10, 20]},
        ],
    }


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def by_file(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Annotations grouped by image file name, with category names, sorted."""
    files = {image["id"]: image["file_name"] for image in data["images"]}
    names = {category["id"]: category["name"] for category in data["categories"]}
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ann in data["annotations"]:
        grouped[files[ann["image_id"]]].append(dict(ann, category=names[ann["category_id"]]))
    for anns in grouped.values():
        anns.sort(key=lambda a: (a["category"], a["bbox"]))
    return grouped


# ---------------------------------------------------------------- round trips


@needs_coco128
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools
def test_coco128_round_trip_keeps_every_box_polygon_rle_and_category(tmp_path: Path) -> None:
    original = json.loads(COCO_JSON.read_text())
    with Project.create(tmp_path / "p", images_root=COCO_IMAGES) as project:
        report = import_coco(project, COCO_JSON)
        assert report.skipped == []
        assert report.clipped == []
        assert (report.images_added, report.annotations_added, report.categories_added) == (
            128,
            939,
            80,
        )
        counts = export_coco(project, tmp_path / "out.json")
    assert counts == {"images": 128, "annotations": 939, "categories": 80}
    exported = json.loads((tmp_path / "out.json").read_text())

    def categories(data: dict[str, Any]) -> set[tuple[str, str]]:
        return {(c["name"], c["supercategory"]) for c in data["categories"]}

    assert categories(exported) == categories(original)
    sizes = {i["file_name"]: (i["width"], i["height"]) for i in exported["images"]}
    assert sizes == {i["file_name"]: (i["width"], i["height"]) for i in original["images"]}
    before, after = by_file(original), by_file(exported)
    assert before.keys() == after.keys()
    crowd = 0
    for name, anns in before.items():
        assert len(after[name]) == len(anns), name
        for old, new in zip(anns, after[name], strict=True):
            assert new["category"] == old["category"]
            assert new["bbox"] == pytest.approx(old["bbox"], abs=1e-9)
            assert new["area"] == pytest.approx(old["area"], rel=1e-9)
            assert new["iscrowd"] == old["iscrowd"]
            assert new["segmentation"] == old["segmentation"]  # polygons and RLE, as stored
            crowd += old["iscrowd"]
    assert crowd == 10

    # The export is a file pycocotools reads, and its masks decode to the original pixels.
    coco, source = COCO(str(tmp_path / "out.json")), COCO(str(COCO_JSON))
    for name, anns in before.items():
        for old, new in zip(anns, after[name], strict=True):
            if old["iscrowd"]:
                assert np.array_equal(coco.annToMask(new), source.annToMask(old))


def test_keypoints_and_both_rle_kinds_round_trip_exactly(project: Project, tmp_path: Path) -> None:
    mask = np.zeros((480, 640), dtype=np.uint8, order="F")
    mask[100:150, 200:260] = 1
    compressed = mask_utils.encode(mask)
    compressed = {"size": compressed["size"], "counts": compressed["counts"].decode()}
    uncompressed = {"size": [426, 640], "counts": [1000, 300, 640 * 426 - 1300]}
    keypoints = [320.5, 100.25, 2, 330.0, 120.0, 1, 0, 0, 0]
    data = {
        "images": [
            {"id": 1, "file_name": "000000000009.jpg", "width": 640, "height": 480},
            {"id": 2, "file_name": "000000000025.jpg", "width": 640, "height": 426},
        ],
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": ["nose", "left_eye", "right_eye"],
                "skeleton": [[1, 2], [1, 3]],
            },
            {"id": 2, "name": "blob", "supercategory": ""},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [300, 90, 50.5, 40],
                "keypoints": keypoints,
                "num_keypoints": 2,
                "segmentation": [[300, 90, 350.5, 90, 350.5, 130, 300, 130]],
                "area": 2020.0,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 2,
                "bbox": [200, 100, 60, 50],
                "segmentation": compressed,
                "iscrowd": 1,
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 2,
                "bbox": [2, 0, 1, 300],
                "segmentation": uncompressed,
                "iscrowd": 1,
                "area": 300,
            },
        ],
    }
    report = import_coco(project, write(tmp_path / "kp.json", data))
    assert report.skipped == []
    person = project.category("person")
    assert person.keypoints == ["nose", "left_eye", "right_eye"]
    assert person.skeleton == [[1, 2], [1, 3]]

    export_coco(project, tmp_path / "out.json")
    out = json.loads((tmp_path / "out.json").read_text())
    exported = {a["bbox"][0]: a for a in out["annotations"]}
    assert exported[300]["keypoints"] == keypoints
    assert exported[300]["num_keypoints"] == 2
    assert exported[300]["segmentation"] == data["annotations"][0]["segmentation"]
    assert exported[200]["segmentation"] == compressed
    assert exported[200]["area"] == 3000  # computed from the RLE, as COCO does
    assert exported[2]["segmentation"] == uncompressed
    category = next(c for c in out["categories"] if c["name"] == "person")
    assert category["keypoints"] == ["nose", "left_eye", "right_eye"]
    assert category["skeleton"] == [[1, 2], [1, 3]]
    assert "keypoints" not in next(c for c in out["categories"] if c["name"] == "blob")


def test_categories_are_matched_by_name_across_imports(project: Project, tmp_path: Path) -> None:
    first = small_coco()
    second = small_coco()
    # The same classes under other ids, plus a new one; one image only.
    second["categories"] = [
        {"id": 1, "name": "dog"},
        {"id": 2, "name": "cat"},
        {"id": 3, "name": "bird"},
    ]
    second["images"] = second["images"][2:]
    second["annotations"] = [
        {"id": 1, "image_id": 12, "category_id": 2, "bbox": [300, 300, 20, 20]},
        {"id": 2, "image_id": 12, "category_id": 3, "bbox": [1, 1, 5, 5]},
    ]
    assert import_coco(project, write(tmp_path / "a.json", first)).categories_added == 2
    report = import_coco(project, write(tmp_path / "b.json", second))
    assert report.categories_added == 1
    assert (report.images_added, report.images_existing) == (0, 1)
    assert [c.name for c in project.categories()] == ["cat", "dog", "bird"]
    image = project.image_by_path("000000000030.jpg")
    names = sorted(project.category(a.category_id).name for a in project.annotations(image.id))
    assert names == ["bird", "cat", "dog"]


def test_reimporting_the_same_file_adds_nothing(project: Project, tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", small_coco())
    import_coco(project, path)
    again = import_coco(project, path)
    assert (again.images_added, again.images_existing) == (0, 3)
    assert (again.annotations_added, again.annotations_existing) == (0, 4)
    assert len(project.annotations()) == 4


def test_export_filters_folders_status_and_predictions(
    project: Project, tmp_path: Path, images: Path
) -> None:
    import_coco(project, write(tmp_path / "a.json", small_coco()), folder="train")
    image = project.image_by_path("000000000030.jpg")
    project.move_images([image.id], "test")
    project.add_annotation(image.id, project.category("cat").id, [1, 2, 3, 4], score=0.75)

    counts = export_coco(project, tmp_path / "train.json", folders="train")
    assert counts["images"] == 2
    assert counts["annotations"] == 3
    export_coco(project, tmp_path / "test.json", folders=["test"])
    out = json.loads((tmp_path / "test.json").read_text())
    assert [a.get("score") for a in out["annotations"]] == [None]
    export_coco(project, tmp_path / "test.json", folders=["test"], include_predictions=True)
    out = json.loads((tmp_path / "test.json").read_text())
    assert sorted(a.get("score") or 0 for a in out["annotations"]) == [0, 0.75]
    assert export_coco(project, tmp_path / "none.json", status="unlabeled")["images"] == 0
    # Images nobody has reviewed, with nothing to export, are not written as "no objects".
    shutil.copy(images / "000000000009.jpg", images / "new.jpg")
    fresh = project.add_image("new.jpg")
    assert export_coco(project, tmp_path / "all.json")["images"] == 3
    project.add_annotation(fresh.id, project.category("dog").id, [1, 1, 9, 9], score=0.5)
    assert export_coco(project, tmp_path / "all.json")["images"] == 3
    assert export_coco(project, tmp_path / "all.json", include_predictions=True)["images"] == 4
    assert [p.name for p in tmp_path.glob(".*.tmp")] == []  # no temporary file left behind


# ----------------------------------------------------------------- bad input


def test_malformed_json_names_the_file_line_and_column(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"images": [\n  {"id": 1,\n  "file_name": }\n]}')
    with pytest.raises(FormatError, match=r"broken\.json: not valid JSON.*line 3, column 16"):
        import_coco(project, path)
    assert project.images() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("images"), "missing 'images'"),
        (lambda d: d.update(annotations={"id": 1}), "'annotations' must be a list, got dict"),
        (lambda d: d.update(categories=None), "'categories' must be a list, got null"),
    ],
)
def test_a_file_missing_its_lists_is_refused(
    project: Project, tmp_path: Path, change: Any, message: str
) -> None:
    data = small_coco()
    change(data)
    with pytest.raises(FormatError, match=message):
        import_coco(project, write(tmp_path / "a.json", data))
    assert project.images() == []


def _break_annotation(index: int, **fields: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        ann = data["annotations"][index]
        for key, value in fields.items():
            if value is KeyError:
                del ann[key]
            else:
                ann[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "item", "reason"),
    [
        (_break_annotation(3, bbox=KeyError), "annotations[3]", "missing 'bbox'"),
        (_break_annotation(1, bbox="10 20 30 40"), "annotations[1]", "'bbox' must be four"),
        (_break_annotation(1, bbox=[1, 2, 3]), "annotations[1]", "'bbox' must be four"),
        (_break_annotation(2, category_id="7"), "annotations[2]", "'category_id' must be an int"),
        (_break_annotation(2, id=1), "annotations[2]", "duplicate annotation id 1"),
        (_break_annotation(0, image_id=99), "annotations[0]", "image_id 99 is not an image"),
        (_break_annotation(0, category_id=5), "annotations[0]", "unknown category id 5"),
        (_break_annotation(1, bbox=[10, 10, -5, 20]), "annotations[1]", "negative width"),
        (_break_annotation(1, iscrowd=2), "annotations[1]", "'iscrowd' must be 0 or 1"),
        (_break_annotation(1, segmentation=[[1, 2, 3]]), "annotations[1]", "at least 3"),
        (
            _break_annotation(1, segmentation={"size": [480, 640], "counts": [5, 5]}),
            "annotations[1]",
            "cover 10 pixels",
        ),
        (
            _break_annotation(1, segmentation={"size": [480, 640], "counts": "~~~"}),
            "annotations[1]",
            "not a valid compressed RLE",
        ),
        (
            _break_annotation(1, segmentation={"size": [10, 10], "counts": [100]}),
            "annotations[1]",
            "RLE size [10, 10] is not the image's",
        ),
        (_break_annotation(1, keypoints=[1, 2]), "annotations[1]", "not a multiple of 3"),
        (_break_annotation(1, area=-1), "annotations[1]", "'area' must be a non-negative"),
    ],
)
def test_a_bad_annotation_is_skipped_named_and_the_rest_lands(
    project: Project, tmp_path: Path, change: Any, item: str, reason: str
) -> None:
    data = small_coco()
    change(data)
    report = import_coco(project, write(tmp_path / "a.json", data))
    assert len(report.skipped) == 1, report.skipped
    assert report.skipped[0][0] == item
    assert reason in report.skipped[0][1]
    assert report.images_added == 3
    assert report.annotations_added == 3
    assert len(project.annotations()) == 3


@pytest.mark.parametrize(
    ("change", "item", "reason"),
    [
        (lambda d: d["images"][1].pop("file_name"), "images[1]", "missing 'file_name'"),
        (lambda d: d["images"][1].update(id="11"), "images[1]", "'id' must be an integer"),
        (lambda d: d["images"][1].update(width=-3), "images[1]", "'width' must be a positive"),
        (lambda d: d["images"].__setitem__(1, "x.jpg"), "images[1]", "must be an object"),
    ],
)
def test_a_bad_image_entry_is_skipped_with_its_annotations(
    project: Project, tmp_path: Path, change: Any, item: str, reason: str
) -> None:
    data = small_coco()
    change(data)
    report = import_coco(project, write(tmp_path / "a.json", data))
    assert report.skipped[0][0].startswith(item)
    assert reason in report.skipped[0][1]
    # Its one annotation points to an image the file no longer has.
    assert report.skipped[1] == ("annotations[2]", "image_id 11 is not an image of the file")
    assert (report.images_added, report.annotations_added) == (2, 3)


def test_duplicate_image_and_category_ids_keep_the_first(project: Project, tmp_path: Path) -> None:
    data = small_coco()
    data["images"].append({"id": 10, "file_name": "000000000025.jpg"})
    data["categories"].append({"id": 7, "name": "horse"})
    report = import_coco(project, write(tmp_path / "a.json", data))
    assert ("images[3] (000000000025.jpg)", "duplicate image id 10 (first at images[0])") in (
        report.skipped
    )
    assert ("categories[2]", "duplicate category id 7 (first at categories[0])") in report.skipped
    assert report.annotations_added == 4
    assert [c.name for c in project.categories()] == ["cat", "dog"]


def test_boxes_outside_the_image_are_clipped_and_reported(project: Project, tmp_path: Path) -> None:
    data = small_coco()
    data["annotations"][0]["bbox"] = [-10, 400, 100, 100]  # image 640x480
    data["annotations"][1]["bbox"] = [700, 10, 20, 20]  # wholly outside
    report = import_coco(project, write(tmp_path / "a.json", data))
    assert report.clipped == [
        ("annotations[0]", "box [-10, 400, 100, 100] clipped to [0, 400, 90, 80] (image 640x480)")
    ]
    assert report.skipped == [
        ("annotations[1]", "'bbox' [700, 10, 20, 20] lies outside the image 640x480")
    ]
    image = project.image_by_path("000000000009.jpg")
    (stored,) = project.annotations(image.id)
    assert stored.bbox == (0.0, 400.0, 90.0, 80.0)
    assert stored.area == 90 * 80
    assert report.annotations_added == 3


def test_file_names_escaping_the_images_root_are_refused(
    project: Project, tmp_path: Path, images: Path
) -> None:
    outside = tmp_path / "outside.jpg"
    shutil.copy(images / "000000000009.jpg", outside)
    data = small_coco()
    data["images"][0]["file_name"] = "../outside.jpg"
    data["images"][1]["file_name"] = str(outside)
    data["images"].append({"id": 13, "file_name": str(images / "000000000009.jpg")})
    data["annotations"].append({"id": 5, "image_id": 13, "category_id": 7, "bbox": [1, 1, 2, 2]})
    report = import_coco(project, write(tmp_path / "a.json", data))
    skipped = dict(report.skipped)
    assert "outside the project's images root" in skipped["images[0] (../outside.jpg)"]
    assert "outside the project's images root" in skipped[f"images[1] ({outside})"]
    assert skipped["annotations[0]"] == "its image (images[0] (../outside.jpg)) was skipped"
    assert len(skipped) == 5  # two images and their three annotations
    # An absolute path inside the root is fine.
    assert [image.path for image in project.images()] == ["000000000030.jpg", "000000000009.jpg"]
    assert report.annotations_added == 2


def test_missing_and_corrupt_image_files_are_skipped_and_the_rest_lands(
    project: Project, tmp_path: Path, images: Path
) -> None:
    jpeg = (images / "000000000009.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (images / "empty.jpg").write_bytes(b"")
    (images / "text.jpg").write_text("this is not an image\n")
    data = small_coco()
    for offset, name in enumerate(["truncated.jpg", "empty.jpg", "text.jpg", "gone.jpg"]):
        data["images"].append({"id": 20 + offset, "file_name": name})
        data["annotations"].append(
            {"id": 20 + offset, "image_id": 20 + offset, "category_id": 7, "bbox": [0, 0, 5, 5]}
        )
    report = import_coco(project, write(tmp_path / "a.json", data))
    skipped = dict(report.skipped)
    for index, name in enumerate(["truncated.jpg", "empty.jpg", "text.jpg", "gone.jpg"], 3):
        assert skipped[f"images[{index}] ({name})"].startswith(name + ": ")
        assert skipped[f"annotations[{index + 1}]"].endswith("was skipped")
    assert len(report.skipped) == 8
    assert (report.images_added, report.annotations_added) == (3, 4)
    assert "empty" in skipped["images[4] (empty.jpg)"]


def test_a_declared_size_that_disagrees_with_the_file_is_corrected(
    project: Project, tmp_path: Path
) -> None:
    data = small_coco()
    data["images"][0].update(width=480, height=640)  # the file is 640x480
    report = import_coco(project, write(tmp_path / "a.json", data))
    assert report.warnings == [
        (
            "images[0] (000000000009.jpg)",
            "declared size 480x640 differs from the file's 640x480 (after EXIF orientation); "
            "the file's size is used",
        )
    ]
    image = project.image_by_path("000000000009.jpg")
    assert (image.width, image.height) == (640, 480)


def test_an_exif_rotated_photo_gets_its_displayed_size(
    project: Project, tmp_path: Path, images: Path
) -> None:
    from PIL import Image

    photo = Image.open(images / "000000000009.jpg")  # 640x480 as stored
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the user sees 480x640
    photo.save(images / "rotated.jpg", exif=exif)
    data = small_coco()
    data["images"].append({"id": 40, "file_name": "rotated.jpg", "width": 640, "height": 480})
    data["annotations"].append(
        {"id": 40, "image_id": 40, "category_id": 7, "bbox": [10, 500, 100, 100]}
    )
    report = import_coco(project, write(tmp_path / "a.json", data))
    assert report.warnings[0][0] == "images[3] (rotated.jpg)"
    assert "differs from the file's 480x640 (after EXIF orientation)" in report.warnings[0][1]
    image = project.image_by_path("rotated.jpg")
    assert (image.width, image.height) == (480, 640)
    (box,) = project.annotations(image.id)
    assert box.bbox == (10, 500, 100, 100)  # inside the displayed image: kept as is


def test_images_dir_resolves_file_names(tmp_path: Path, images: Path) -> None:
    nested = images / "sub"
    nested.mkdir()
    shutil.move(images / "000000000009.jpg", nested / "000000000009.jpg")
    data = copy.deepcopy(small_coco())
    data["images"] = data["images"][:1]
    data["annotations"] = data["annotations"][:2]
    with Project.create(tmp_path / "p", images_root=images) as project:
        report = import_coco(project, write(tmp_path / "a.json", data), images_dir=nested)
        assert report.skipped == []
        assert [image.path for image in project.images()] == ["sub/000000000009.jpg"]


def test_a_nul_byte_in_file_name_skips_that_image_not_the_import(
    project: Project, tmp_path: Path
) -> None:
    data = small_coco()
    data["images"][1]["file_name"] = "000000000025\x00.jpg"
    report = import_coco(project, write(tmp_path / "a.json", data))
    assert report.skipped == [
        ("images[1]", "'file_name' '000000000025\\x00.jpg' contains a NUL byte"),
        ("annotations[2]", "image_id 11 is not an image of the file"),
    ]
    assert (report.images_added, report.annotations_added) == (2, 3)


def test_backslashes_in_file_name_are_read_as_slashes(
    project: Project, tmp_path: Path, images: Path
) -> None:
    (images / "sub").mkdir()
    shutil.move(images / "000000000025.jpg", images / "sub" / "000000000025.jpg")
    data = small_coco()
    data["images"][1]["file_name"] = "sub\\000000000025.jpg"  # as Windows tools write it
    report = import_coco(project, write(tmp_path / "a.json", data))
    assert report.skipped == []
    assert project.image_by_path("sub/000000000025.jpg") is not None
    assert report.annotations_added == 4
