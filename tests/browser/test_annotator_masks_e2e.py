"""Polygons, masks and keypoints in a real JupyterLab, drawn with a real mouse in Chromium.

Draw a polygon and drag one of its vertices, paint a mask and erase a strip of it, place a
person's keypoints (one skipped, one marked occluded), accept a predicted mask and reject
another; then read the project's SQLite file from this process and check the geometry:
polygon vertices within 1 px of the clicks (in image pixels), the mask's box and area as
painted, the keypoints' coordinates and COCO visibility.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
from _lab import ANNOTATOR, drag, open_and_run, to_image, to_page, view, wait_until, write_notebook
from pycocotools import mask as mask_utils

from annowidget.store import Project

pytestmark = pytest.mark.browser

_wait = functools.partial(wait_until, timeout=20.0)  # the editor answers within seconds

SAMPLE = Path(__file__).parents[2] / "annowidget" / "sample" / "raccoon" / "images"
W, H = 650, 417  # raccoon-1.jpg
NAMES = ["nose", "left_eye", "right_eye", "left_ear"]


def _rle(pixels: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(pixels.astype(np.uint8)))
    return {"size": [H, W], "counts": encoded["counts"].decode()}


def _decode(segmentation: dict) -> np.ndarray:
    return mask_utils.decode({**segmentation, "counts": segmentation["counts"].encode()})


@pytest.fixture
def project_dir(tmp_path) -> Path:
    if not (SAMPLE / "raccoon-1.jpg").is_file():
        pytest.skip(f"the bundled sample is missing under {SAMPLE}")
    yy, xx = np.mgrid[:H, :W]
    round_one = (xx - 520) ** 2 + (yy - 100) ** 2 <= 50**2
    striped = np.zeros((H, W), bool)
    striped[250:400:4, 420:640] = True  # its PNG is smaller than its RLE: the PNG path
    path = tmp_path / "project"
    with Project.create(path, images_root=SAMPLE) as project:
        project.add_category("raccoon")
        project.add_category("person", keypoints=NAMES, skeleton=[[1, 2], [1, 3], [2, 4]])
        image = project.add_image(SAMPLE / "raccoon-1.jpg")
        project.replace_predictions(
            image.id,
            [
                {
                    "category_id": 1,
                    "bbox": [470, 50, 101, 101],
                    "score": 0.9,
                    "segmentation": _rle(round_one),
                },
                {
                    "category_id": 1,
                    "bbox": [420, 250, 220, 149],
                    "score": 0.8,
                    "segmentation": _rle(striped),
                },
            ],
            source="model:test",
        )
    return path


def _editor(page, expr: str):
    return page.evaluate(
        f"() => {{ const a = document.querySelector('.aw-annotator').__annotator; return {expr}; }}"
    )


def test_polygon_mask_and_keypoints_land_in_the_sqlite_file(lab, page, project_dir, screenshots):
    write_notebook(
        lab.root / "shapes.ipynb",
        [
            "from annowidget.store import Project\n"
            "from annowidget.widgets.annotator import Annotator\n"
            f"annotator = Annotator(Project.open({str(project_dir)!r}), height=480)\n"
            "annotator",
        ],
    )
    open_and_run(page, lab, "shapes.ipynb")
    project = Project.open(project_dir)
    [round_pred, striped_pred] = project.annotations(1, predictions=True)

    # the predicted masks arrived as bytes (RLE and PNG) and were decoded on the page
    decoded = _wait(
        lambda: (
            _editor(
                page,
                "a.editor.boxes.filter(b => b.mask && a.masks.get(b.mask.key))"
                ".map(b => [b.id, a.masks.get(b.mask.key).w, a.masks.get(b.mask.key).h])",
            )
            if _editor(page, "a.editor.boxes.every(b => !b.mask || a.masks.get(b.mask.key))")
            else None
        ),
        what="the predicted masks decoded",
    )
    assert sorted(decoded) == sorted([[round_pred.id, 101, 101], [striped_pred.id, 220, 149]])
    screenshots(page, "0-predicted-masks")
    v = view(page)

    # ---- polygon: four clicks, a click on the first vertex closes it
    page.locator(ANNOTATOR).focus()
    page.keyboard.press("p")
    clicks = [to_page(v, x, y) for x, y in [(60, 60), (220, 70), (200, 200), (80, 180)]]
    for point in [*clicks, clicks[0]]:
        page.mouse.click(*point)
    [polygon] = _wait(lambda: project.annotations(1, predictions=False), what="the polygon")
    expected = [c for point in clicks for c in to_image(v, *point)]
    assert len(polygon.segmentation) == 1
    assert polygon.segmentation[0] == pytest.approx(expected, abs=1.0)
    assert polygon.category_id == 1
    screenshots(page, "1-polygon")

    # drag its third vertex
    target = to_page(v, 230, 235)
    drag(page, clicks[2], target)
    moved = _wait(
        lambda: (a := project.annotation(polygon.id)).segmentation != polygon.segmentation and a,
        what="the vertex drag",
    )
    expected[4:6] = to_image(v, *target)
    assert moved.segmentation[0] == pytest.approx(expected, abs=1.0)
    xs, ys = expected[::2], expected[1::2]
    assert moved.bbox == pytest.approx(
        (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)), abs=1.0
    )

    # ---- mask: a brush stroke, then an eraser strip across it
    page.keyboard.press("m")
    page.keyboard.press("Escape")  # nothing selected: the brush paints a new mask
    radius_css = _editor(page, "a.editor.brushPx")
    r = radius_css / v["scale"]  # the brush radius in image pixels
    drag(page, to_page(v, 80, 300), to_page(v, 300, 300), steps=25)
    mask_ann = _wait(
        lambda: next(
            (
                a
                for a in project.annotations(1, predictions=False)
                if isinstance(a.segmentation, dict)
            ),
            None,
        ),
        what="the painted mask",
    )
    (x0, y0), (x1, _) = to_image(v, *to_page(v, 80, 300)), to_image(v, *to_page(v, 300, 300))
    bx, by, bw, bh = mask_ann.bbox
    assert bx == pytest.approx(x0 - r, abs=1.5)
    assert by == pytest.approx(y0 - r, abs=1.5)
    assert bw == pytest.approx(x1 - x0 + 2 * r, abs=2.5)
    assert bh == pytest.approx(2 * r, abs=2.5)
    painted_area = (x1 - x0) * 2 * r + math.pi * r * r
    assert mask_ann.area == pytest.approx(painted_area, rel=0.06)
    pixels = _decode(mask_ann.segmentation)
    assert pixels.sum() == mask_ann.area
    assert pixels[300, 190] == 1
    screenshots(page, "2-painted")

    page.keyboard.press("e")  # the eraser works on the selected mask (the one just painted)
    drag(page, to_page(v, 190, 270), to_page(v, 190, 330), steps=10)
    erased = _wait(
        lambda: (a := project.annotation(mask_ann.id)).area < mask_ann.area and a,
        what="the erase",
    )
    pixels = _decode(erased.segmentation)
    assert pixels[300, 190] == 0
    assert pixels[300, 120] == 1
    assert pixels[300, 260] == 1
    strip = 2 * r * 2 * r  # about a 2r x 2r square went
    assert mask_ann.area - erased.area == pytest.approx(strip, rel=0.25)
    assert erased.bbox == pytest.approx(mask_ann.bbox, abs=0.01)  # the ends stay
    screenshots(page, "3-erased")

    # ---- keypoints: nose, left eye, skip the right eye, left ear marked occluded
    page.keyboard.press("k")
    page.keyboard.press("Escape")
    page.keyboard.press("2")  # the person class (nothing selected: no relabel)
    hint = page.locator(f"{ANNOTATOR} .aw-hint")
    assert '"nose" (1/4)' in hint.inner_text()
    spots = [to_page(v, 300, 120), to_page(v, 320, 110), None, to_page(v, 340, 115)]
    for spot in spots:
        if spot is None:
            page.keyboard.press("s")
        else:
            page.mouse.click(*spot)
    page.keyboard.press("v")  # the last placed point: visible -> occluded
    person = _wait(
        lambda: next(
            (
                a
                for a in project.annotations(1, predictions=False)
                if a.keypoints and a.keypoints[11] == 1
            ),
            None,
        ),
        what="the keypoints",
    )
    assert person.category_id == 2
    kps = person.keypoints
    for i, spot in enumerate(spots):
        if spot is None:
            assert kps[3 * i : 3 * i + 3] == [0, 0, 0]
        else:
            assert kps[3 * i : 3 * i + 2] == pytest.approx(to_image(v, *spot), abs=1.0)
    assert [kps[2], kps[5], kps[8], kps[11]] == [2, 2, 0, 1]
    assert person.num_keypoints == 3
    screenshots(page, "4-keypoints")

    # ---- predictions: a second click on the round mask accepts it, Delete rejects the striped
    page.keyboard.press("b")
    round_centre = to_page(v, 520, 100)
    page.mouse.click(*round_centre)
    page.mouse.click(*round_centre)
    _wait(lambda: not project.annotation(round_pred.id).is_prediction, what="the accept")
    page.mouse.click(*to_page(v, 500, 250.5))  # on a stripe of the striped mask
    assert _editor(page, "a.editor.selectedId") == striped_pred.id
    page.keyboard.press("Delete")
    _wait(lambda: len(project.annotations(1, predictions=True)) == 0, what="the reject")
    accepted = project.annotation(round_pred.id)
    assert accepted.segmentation == round_pred.segmentation
    assert not accepted.is_prediction
    screenshots(page, "5-reviewed")

    # undo brings the rejected prediction back, mask and score included
    page.keyboard.press("Control+z")
    _wait(lambda: len(project.annotations(1, predictions=True)) == 1, what="the undo")
    back = project.annotation(striped_pred.id)
    assert back.segmentation == striped_pred.segmentation
    assert back.score == 0.8

    # the help overlay lists the new tools
    page.keyboard.press("?")
    text = page.locator(f"{ANNOTATOR} .aw-help").inner_text()
    for tool in ("polygon", "eraser", "keypoint"):
        assert tool in text
    page.keyboard.press("Escape")
    assert page.locator(".jp-MarkdownCell").count() == 0  # no key reached the notebook
    project.close()
