"""Pascal VOC import/export on the raccoon set (checked against its CSV), and bad XML."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from annowidget.formats import export_voc, import_voc
from annowidget.store import Project

DATA = Path(__file__).parents[1].parent / "shared" / "data"
RACCOON = DATA / "raccoon"
pytestmark = pytest.mark.skipif(
    not (RACCOON / "annotations").is_dir(), reason=f"raccoon not found at {RACCOON}"
)

XML = """<annotation>
  <folder>images</folder>
  <filename>{name}</filename>
  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>
  {objects}
</annotation>
"""
OBJECT = (
    "<object><name>{name}</name><bndbox><xmin>{0}</xmin><ymin>{1}</ymin>"
    "<xmax>{2}</xmax><ymax>{3}</ymax></bndbox></object>"
)


def boxes_by_file(project: Project) -> Counter[tuple[str, str, float, float, float, float]]:
    names = {category.id: category.name for category in project.categories()}
    paths = {image.id: Path(image.path).name for image in project.images()}
    return Counter(
        (paths[a.image_id], names[a.category_id], *a.bbox_xyxy) for a in project.annotations()
    )


def test_raccoon_import_agrees_with_its_csv(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p", images_root=RACCOON / "images") as project:
        report = import_voc(project, RACCOON / "annotations")
        assert report.skipped == []
        assert report.clipped == []
        assert (report.images_added, report.annotations_added) == (200, 217)
        assert report.categories_added == 1
        stored = boxes_by_file(project)
        sizes = {Path(i.path).name: (i.width, i.height) for i in project.images()}
        assert {i.status for i in project.images()} == {"reviewed"}
    with (RACCOON / "data" / "raccoon_labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = Counter(
        (
            row["filename"],
            row["class"],
            *(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")),
        )
        for row in rows
    )
    assert len(rows) == 217
    assert stored == expected
    for row in rows:
        assert sizes[row["filename"]] == (int(row["width"]), int(row["height"]))


def test_export_then_import_gives_the_same_boxes(tmp_path: Path) -> None:
    with Project.create(tmp_path / "a", images_root=RACCOON / "images") as project:
        import_voc(project, RACCOON / "annotations")
        project.split(0.8, seed=3)
        counts = export_voc(project, tmp_path / "voc", folders="test")
        original = boxes_by_file(project)
        test_files = {Path(i.path).name for i in project.images(folder="test")}
    assert counts["images"] == 40
    assert len(list((tmp_path / "voc").glob("*.xml"))) == 40
    with Project.create(tmp_path / "b", images_root=RACCOON / "images") as project:
        report = import_voc(project, tmp_path / "voc", folder="val")
        assert report.skipped == []
        again = boxes_by_file(project)
    assert again == Counter({k: v for k, v in original.items() if k[0] in test_files})
    assert sum(again.values()) == counts["annotations"]


@pytest.fixture
def small(tmp_path: Path) -> tuple[Project, Path, Path]:
    """A project over three raccoon images and a folder of their (good) VOC files."""
    images, xml = tmp_path / "images", tmp_path / "xml"
    images.mkdir()
    xml.mkdir()
    for n in (1, 2, 3):
        shutil.copy(RACCOON / "images" / f"raccoon-{n}.jpg", images)
        shutil.copy(RACCOON / "annotations" / f"raccoon-{n}.xml", xml)
    with Project.create(tmp_path / "p", images_root=images) as project:
        yield project, images, xml


def test_xml_that_does_not_parse_is_skipped_and_the_rest_lands(
    small: tuple[Project, Path, Path],
) -> None:
    project, _, xml = small
    (xml / "broken.xml").write_text("<annotation><filename>raccoon-1.jpg</filename>\n<object>")
    (xml / "other.xml").write_text("<html><body/></html>")
    report = import_voc(project, xml)
    skipped = dict(report.skipped)
    assert skipped["broken.xml"].startswith("XML does not parse (line 2, column")
    assert skipped["other.xml"] == "root element is <html>, not <annotation>"
    assert len(report.skipped) == 2
    assert (report.images_added, report.annotations_added) == (3, 3)


def test_bad_objects_are_skipped_and_named(small: tuple[Project, Path, Path]) -> None:
    project, images, xml = small
    shutil.copy(RACCOON / "images" / "raccoon-4.jpg", images)  # 275x183
    objects = [
        OBJECT.format(1, 2, 30, 40, name="raccoon"),
        OBJECT.format("a", 2, 30, 40, name="raccoon"),
        OBJECT.format(50, 2, 30, 40, name="raccoon"),  # xmax < xmin
        "<object><name>raccoon</name></object>",
        OBJECT.format(1, 2, 30, 40, name=""),
        OBJECT.format(200, 150, 300, 200, name="dog"),  # overflows the image
        OBJECT.format(300, 10, 310, 20, name="dog"),  # outside it
    ]
    (xml / "raccoon-4.xml").write_text(
        XML.format(name="raccoon-4.jpg", width=275, height=183, objects="\n".join(objects))
    )
    report = import_voc(project, xml)
    skipped = dict(report.skipped)
    assert "numeric xmin" in skipped["raccoon-4.xml object[1]"]
    assert "xmax < xmin" in skipped["raccoon-4.xml object[2]"]
    assert skipped["raccoon-4.xml object[3]"] == "missing <bndbox>"
    assert skipped["raccoon-4.xml object[4]"] == "missing <name>"
    assert "outside the image" in skipped["raccoon-4.xml object[6]"]
    assert report.clipped == [
        (
            "raccoon-4.xml object[5]",
            "box [200, 150, 100, 50] clipped to [200, 150, 75, 33] (image 275x183)",
        )
    ]
    assert (report.images_added, report.annotations_added) == (4, 5)
    assert sorted(c.name for c in project.categories()) == ["dog", "raccoon"]


def test_a_missing_or_corrupt_image_skips_its_file(small: tuple[Project, Path, Path]) -> None:
    project, images, xml = small
    (images / "raccoon-2.jpg").write_bytes(b"")
    (images / "raccoon-3.jpg").unlink()
    report = import_voc(project, xml)
    skipped = dict(report.skipped)
    assert skipped["raccoon-2.xml (raccoon-2.jpg)"].startswith("raccoon-2.jpg: ")
    assert skipped["raccoon-3.xml (raccoon-3.jpg)"].startswith("raccoon-3.jpg: ")
    assert (
        skipped["raccoon-2.xml object[0]"]
        == "its image (raccoon-2.xml (raccoon-2.jpg)) was skipped"
    )
    assert (report.images_added, report.annotations_added) == (1, 1)


def test_export_leaves_out_unlabeled_images_and_predictions(
    small: tuple[Project, Path, Path], tmp_path: Path
) -> None:
    project, images, xml = small
    import_voc(project, xml)
    shutil.copy(RACCOON / "images" / "raccoon-5.jpg", images)
    new = project.add_image("raccoon-5.jpg")
    project.add_annotation(new.id, project.category("raccoon").id, [1, 2, 3, 4], score=0.5)
    counts = export_voc(project, tmp_path / "out")
    assert counts == {"images": 3, "annotations": 3}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "raccoon-1.xml",
        "raccoon-2.xml",
        "raccoon-3.xml",
    ]


@pytest.mark.parametrize("width", ["inf", "-inf", "nan", "1e400", "-5", "wide"])
def test_a_declared_size_that_is_not_a_size_skips_that_file_only(
    small: tuple[Project, Path, Path], width: str
) -> None:
    project, images, xml = small
    shutil.copy(RACCOON / "images" / "raccoon-4.jpg", images)
    objects = OBJECT.format(1, 2, 30, 40, name="raccoon")
    (xml / "raccoon-4.xml").write_text(
        XML.format(name="raccoon-4.jpg", width=width, height=183, objects=objects)
    )
    report = import_voc(project, xml)
    assert report.skipped == [
        ("raccoon-4.xml", f"<size><width> must be a number of pixels, got {width!r}")
    ]
    assert (report.images_added, report.annotations_added) == (3, 3)


def test_a_declared_size_of_zero_means_unknown(small: tuple[Project, Path, Path]) -> None:
    project, images, xml = small
    shutil.copy(RACCOON / "images" / "raccoon-4.jpg", images)
    objects = OBJECT.format(1, 2, 30, 40, name="raccoon")
    (xml / "raccoon-4.xml").write_text(
        XML.format(name="raccoon-4.jpg", width=0, height=0, objects=objects)
    )
    report = import_voc(project, xml)
    assert (report.skipped, report.warnings) == ([], [])
    assert (report.images_added, report.annotations_added) == (4, 4)


@pytest.mark.parametrize("corner", ["nan", "inf", "-inf"])
def test_non_finite_box_corners_skip_the_object(
    small: tuple[Project, Path, Path], corner: str
) -> None:
    project, images, xml = small
    shutil.copy(RACCOON / "images" / "raccoon-4.jpg", images)
    objects = "\n".join(
        [OBJECT.format(corner, 2, 30, 40, name="raccoon"), OBJECT.format(1, 2, 30, 40, name="a")]
    )
    (xml / "raccoon-4.xml").write_text(
        XML.format(name="raccoon-4.jpg", width=275, height=183, objects=objects)
    )
    report = import_voc(project, xml)
    assert report.skipped == [
        (
            "raccoon-4.xml object[0]",
            f"<bndbox> needs numeric xmin, ymin, xmax, ymax; got {[corner, '2', '30', '40']}",
        )
    ]
    assert report.annotations_added == 4
    assert all(np.isfinite(a.bbox).all() for a in project.annotations())
