"""PNG label maps: import as one RLE per class, export as palette PNGs, exact round trips."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

from annowidget.formats import FormatError, export_label_maps, import_coco, import_label_maps
from annowidget.formats.label_maps import read_label_map
from annowidget.store import Project

DATA = Path(__file__).parents[1].parent / "shared" / "data"
COCO128 = DATA / "coco128"
IMAGES = COCO128 / "images" / "train2017"
COCO_JSON = COCO128 / "annotations" / "instances_train2017_first128.json"
needs_coco128 = pytest.mark.skipif(
    not COCO_JSON.is_file(), reason=f"coco128 not found at {COCO128} (../shared/data)"
)
# Three coco128 photos and their (width, height).
SMALL = {
    "000000000009.jpg": (640, 480),
    "000000000025.jpg": (640, 426),
    "000000000030.jpg": (640, 428),
}
CLASSES = ["background", "sky", "road", "tree"]
# pycocotools' decode trips numpy 2's copy-keyword deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    if not IMAGES.is_dir():
        pytest.skip(f"coco128 images not found at {IMAGES}")
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for name in SMALL:
        target = folder / "sub" / name if name.startswith("000000000030") else folder / name
        shutil.copy(IMAGES / name, target)
    return folder


@pytest.fixture
def project(tmp_path: Path, images: Path) -> Project:
    with Project.create(tmp_path / "project", images_root=images) as project:
        yield project


def _label_map(width: int, height: int, seed: int) -> np.ndarray:
    """Bands of sky and road, a tree disc, void pixels on the tree's rim: like VOC masks."""
    values = np.zeros((height, width), dtype=np.uint8)
    values[: height // 3] = 1
    values[2 * height // 3 :] = 2
    yy, xx = np.mgrid[:height, :width]
    distance = np.hypot(yy - height / 2, xx - (100 + 40 * seed))
    values[distance < 60] = 3
    values[(distance >= 60) & (distance < 63)] = 255
    return values


def _write(path: Path, values: np.ndarray, mode: str = "P") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = PILImage.fromarray(values)
    if mode == "P":
        image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    image.save(path)
    return path


@pytest.fixture
def masks(tmp_path: Path) -> dict[str, np.ndarray]:
    """Label maps for the three photos: palette, grey and 16-bit grey PNGs."""
    folder = tmp_path / "masks"
    written = {}
    for seed, (name, (width, height)) in enumerate(SMALL.items()):
        values = _label_map(width, height, seed)
        stem = f"sub/{name[:-4]}" if name.startswith("000000000030") else name[:-4]
        if seed == 0:
            _write(folder / f"{stem}.png", values, "P")
        elif seed == 1:
            _write(folder / f"{stem}.png", values, "L")
        else:
            _write(folder / f"{stem}.png", values.astype(np.uint16), "I;16")
        written[stem] = values
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return written


def _decode(segmentation: dict) -> np.ndarray:
    return mask_utils.decode({**segmentation, "counts": segmentation["counts"].encode()})


def _stored_maps(project: Project, void: int = 255) -> dict[str, np.ndarray]:
    """Each image's label map rebuilt from the stored RLEs (values are the class list's)."""
    value = {
        c.id: CLASSES.index(c.name) if c.name in CLASSES else void for c in project.categories()
    }
    maps = {}
    for image in project.images():
        values = np.zeros((image.height, image.width), dtype=np.int64)
        for a in project.annotations(image.id):
            mask = _decode(a.segmentation).astype(bool)
            assert not values[mask].any(), "one class per pixel"
            values[mask] = void if a.iscrowd else value[a.category_id]
        maps[image.path[:-4]] = values
    return maps


def test_label_maps_import_as_one_rle_per_class_with_void_as_crowd(
    project: Project, masks: dict[str, np.ndarray], tmp_path: Path, images: Path
) -> None:
    report = import_label_maps(
        project,
        tmp_path / "masks",
        images_dir=images,
        classes=tmp_path / "masks" / "classes.txt",
        void_category="void",
    )
    assert report.skipped == []
    assert report.warnings == []
    assert (report.images_added, report.annotations_added, report.categories_added) == (3, 12, 4)
    assert [c.name for c in project.categories()] == ["sky", "road", "tree", "void"]
    assert {i.status for i in project.images()} == {"reviewed"}
    assert {i.folder for i in project.images()} == {"train"}
    stored = _stored_maps(project)
    assert stored.keys() == masks.keys()
    for stem, values in masks.items():
        assert np.array_equal(stored[stem], values), stem  # every pixel, exactly
    for a in project.annotations():
        assert isinstance(a.segmentation["counts"], str)  # compressed RLE, as the store keeps
        mask = _decode(a.segmentation)
        assert a.area == mask.sum()
        ys, xs = np.nonzero(mask)
        assert a.bbox == (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
        assert a.iscrowd == (project.category(a.category_id).name == "void")

    again = import_label_maps(
        project, tmp_path / "masks", images_dir=images, classes=CLASSES, void_category="void"
    )
    assert (again.images_added, again.images_existing, again.annotations_added) == (0, 3, 0)
    assert again.annotations_existing == 12


def test_without_a_void_category_void_pixels_are_left_out_and_reported(
    project: Project, masks: dict[str, np.ndarray], tmp_path: Path, images: Path
) -> None:
    report = import_label_maps(project, tmp_path / "masks", images_dir=images, classes=CLASSES)
    assert report.annotations_added == 9
    assert [c.name for c in project.categories()] == ["sky", "road", "tree"]
    assert len(report.warnings) == 3
    item, what = report.warnings[0]
    expected = int((masks["000000000009"] == 255).sum())
    assert (item, what.split(" void")[0]) == ("000000000009.png", str(expected))
    assert not any(a.iscrowd for a in project.annotations())


def test_export_writes_palette_pngs_that_import_back_identically(
    project: Project, masks: dict[str, np.ndarray], tmp_path: Path, images: Path
) -> None:
    import_label_maps(
        project, tmp_path / "masks", images_dir=images, classes=CLASSES, void_category="void"
    )
    counts = export_label_maps(project, tmp_path / "out")
    assert counts == {"images": 3, "annotations": 12, "classes": 4}
    lines = (tmp_path / "out" / "classes.txt").read_text().splitlines()
    assert lines == ["background", "sky", "road", "tree", "void"]
    for stem, values in masks.items():
        with PILImage.open(tmp_path / "out" / f"{stem}.png") as png:
            assert (png.mode, png.format) == ("P", "PNG")
            assert png.getpalette()[3:6] == [128, 0, 0]  # VOC's colour for value 1
        assert np.array_equal(read_label_map(tmp_path / "out" / f"{stem}.png"), values), stem

    with Project.create(tmp_path / "second", images_root=images) as second:
        report = import_label_maps(
            second,
            tmp_path / "out",
            images_dir=images,
            classes=tmp_path / "out" / "classes.txt",
            void_category="void",
        )
        assert report.skipped == []
        assert report.annotations_added == 12
        first = {(project.image(a.image_id).path, a.category_id): a for a in project.annotations()}
        for a in second.annotations():
            old = first[(second.image(a.image_id).path, a.category_id)]
            assert (a.segmentation, a.bbox, a.area, a.iscrowd) == (
                old.segmentation,
                old.bbox,
                old.area,
                old.iscrowd,
            )
        assert [c.name for c in second.categories()] == [c.name for c in project.categories()]


def test_bad_label_maps_are_skipped_by_name_and_the_rest_lands(
    project: Project, masks: dict[str, np.ndarray], tmp_path: Path, images: Path
) -> None:
    folder = tmp_path / "masks"
    rgb = np.zeros((480, 640, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(folder / "000000000009.png")  # a colour picture
    _write(folder / "000000000025.png", np.full((10, 10), 1, dtype=np.uint8))  # wrong size
    broken = masks["sub/000000000030"].copy()
    broken[0, 0] = 7
    _write(folder / "sub" / "000000000030.png", broken)
    _write(folder / "nobody.png", np.zeros((4, 4), dtype=np.uint8))
    (folder / "truncated").mkdir()
    (folder / "truncated" / "x.png").write_bytes(b"\x89PNG\r\n")
    report = import_label_maps(project, folder, images_dir=images, classes=CLASSES)
    reasons = dict(report.skipped)
    assert "RGB image is not a label map" in reasons["000000000009.png"]
    assert reasons["000000000025.png"] == (
        "label map is 10x10, its image 640x426 (after EXIF orientation)"
    )
    assert reasons["sub/000000000030.png"] == "value(s) 7 not in the class list (values 1..3)"
    assert reasons["nobody.png"].startswith("no image with this name under")
    assert reasons["truncated/x.png"].startswith("no image with this name")
    assert report.annotations_added == 0
    # The image whose map had the wrong size is in the project, waiting to be labeled.
    assert [(i.path, i.status) for i in project.images()] == [("000000000025.jpg", "unlabeled")]


def test_bad_arguments_raise_naming_what_is_wrong(
    project: Project, tmp_path: Path, images: Path
) -> None:
    with pytest.raises(FormatError, match="masks directory does not exist"):
        import_label_maps(project, tmp_path / "nowhere", images_dir=images, classes=CLASSES)
    yaml = tmp_path / "data.yaml"
    yaml.write_text("names:\n  0: background\n  255: edge\n")
    with pytest.raises(FormatError, match="both a class \\('edge'\\) and ignore_index"):
        import_label_maps(project, images, classes=yaml)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(FormatError, match=r"bad\.png: cannot read the label map"):
        read_label_map(bad)


def test_an_all_background_map_marks_its_image_reviewed_with_nothing_on_it(
    project: Project, tmp_path: Path, images: Path
) -> None:
    _write(tmp_path / "empty" / "000000000009.png", np.zeros((480, 640), dtype=np.uint8))
    report = import_label_maps(project, tmp_path / "empty", images_dir=images, classes=CLASSES)
    assert (report.images_added, report.annotations_added) == (1, 0)
    (image,) = project.images()
    assert image.status == "reviewed"
    export_label_maps(project, tmp_path / "out")
    assert not read_label_map(tmp_path / "out" / "000000000009.png").any()


@needs_coco128
def test_coco_instance_masks_export_as_training_reads_them(tmp_path: Path) -> None:
    """Polygons, crowd RLEs and overlaps of coco128 become label maps painted larger objects
    first, crowds void; importing those maps and exporting again changes no pixel."""
    with Project.create(tmp_path / "coco", images_root=IMAGES) as project:
        import_coco(project, COCO_JSON)
        counts = export_label_maps(project, tmp_path / "maps")
        categories = project.categories()
        first = project.images()[0]
        anns = project.annotations(first.id)
    assert counts == {"images": 128, "annotations": 939, "classes": 80}
    expected = np.zeros((first.height, first.width), dtype=np.uint8)
    value = {c.id: i + 1 for i, c in enumerate(categories)}
    for a in sorted(anns, key=lambda a: -a.area):
        polygons = mask_utils.frPyObjects(a.segmentation, first.height, first.width)
        expected[mask_utils.decode(mask_utils.merge(polygons)).astype(bool)] = value[a.category_id]
    assert np.array_equal(
        read_label_map(tmp_path / "maps" / first.path.replace(".jpg", ".png")), expected
    )

    with Project.create(tmp_path / "maps-project", images_root=IMAGES) as project:
        report = import_label_maps(
            project,
            tmp_path / "maps",
            images_dir=IMAGES,
            classes=tmp_path / "maps" / "classes.txt",
            void_category="crowd",
        )
        assert report.skipped == []
        export_label_maps(project, tmp_path / "again")
    for png in sorted((tmp_path / "maps").glob("*.png")):
        before, after = read_label_map(png), read_label_map(tmp_path / "again" / png.name)
        assert np.array_equal(before, after), png.name


def test_the_cli_imports_and_exports_label_maps(
    masks: dict[str, np.ndarray],
    tmp_path: Path,
    images: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from annowidget.cli import main

    project = str(tmp_path / "cli-project")
    assert main(["init", project, "--images", str(images)]) == 0
    args = ["import", project, str(tmp_path / "masks"), "--format", "masks"]
    assert main([*args, "--images", str(images), "--void-category", "void", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 images added, 0 already in the project, 12 annotations added, 4 categories" in out
    assert main(["export", project, str(tmp_path / "out"), "--format", "masks"]) == 0
    assert "exported 3 images, 12 annotations, 4 classes" in capsys.readouterr().out
    for stem, values in masks.items():
        assert np.array_equal(read_label_map(tmp_path / "out" / f"{stem}.png"), values), stem
    assert main([*args, "--images", str(images)]) == 0  # classes.txt found beside the maps
    assert main(["import", project, str(tmp_path / "masks"), "--format", "masks"]) == 1
    assert "--images DIR is required with --format masks" in capsys.readouterr().err
