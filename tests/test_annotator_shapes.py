"""The Annotator's kernel side for polygons, masks and keypoints, without a browser.

Commands shaped like the front end's (js/src/tool_*.js) go through the widget's real
message handler into a real SQLite project; what goes back on the comm (the ``_boxes``
echo and the binary "masks" messages) is read off it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

from annowidget.store import Project, ProjectError
from annowidget.widgets._masks import MaskFeed, mask_key, wire_form
from annowidget.widgets.annotator import Annotator

SAMPLE = Path(__file__).parents[1] / "annowidget" / "sample" / "raccoon" / "images"
W, H = 650, 417  # raccoon-1.jpg
SKELETON = [[1, 2], [1, 3], [2, 4]]
NAMES = ["nose", "left_eye", "right_eye", "left_ear"]


@pytest.fixture
def project(tmp_path) -> Project:
    project = Project.create(tmp_path / "p", images_root=SAMPLE)
    project.add_category("raccoon")
    project.add_category("person", keypoints=NAMES, skeleton=SKELETON)
    for name in ("raccoon-1.jpg", "raccoon-10.jpg"):
        project.add_image(SAMPLE / name)
    yield project
    project.close()


class Wire:
    """The widget's comm, recorded: trait updates and custom messages with their buffers."""

    def __init__(self, widget: Annotator) -> None:
        self.messages: list[tuple[dict, list]] = []
        widget.comm.send = lambda data=None, metadata=None, buffers=None: self.messages.append(
            (data, [bytes(b) for b in buffers or []])
        )

    def masks(self) -> list[tuple[dict, bytes]]:
        return [
            (data["content"], buffers[0])
            for data, buffers in self.messages
            if data.get("method") == "custom" and data["content"].get("type") == "masks"
        ]


class Browser:
    def __init__(self, widget: Annotator) -> None:
        self.widget = widget
        self.seq = 0

    def __call__(self, **content) -> None:
        self.seq += 1
        self.widget._handle_custom_msg({**content, "seq": self.seq}, [])

    def ready(self) -> None:
        self.widget._handle_custom_msg({"type": "ready"}, [])


def rle_of(mask: np.ndarray) -> dict:
    """What the front end's encodeMask sends (the same text as pycocotools, see mask.test.js)."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


def disc(cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)


def received(message: dict, buffer: bytes) -> dict[str, tuple[str, np.ndarray]]:
    """The masks of one "masks" message as the page reads them: key -> (format, pixels)."""
    out, start = {}, 0
    for key, size_index, end, *box in message["masks"]:
        size = message["sizes"][size_index]
        out[key] = ("png" if box else "rle", decode_sent(size, box, buffer[start:end]))
        start = end
    return out


def decode_sent(size: list[int], box: list[int], data: bytes) -> np.ndarray:
    """A mask as the page gets it: RLE text, or a PNG of its box placed back in the image."""
    h, w = size
    if not box:
        return mask_utils.decode({"size": [h, w], "counts": data})
    x, y, bw, bh = box
    crop = np.asarray(PILImage.open(io.BytesIO(data)).convert("L")) > 127
    out = np.zeros((h, w), np.uint8)
    out[y : y + bh, x : x + bw] = crop
    return out


# -------------------------------------------------------------------- polygons


def test_a_polygon_is_stored_as_coco_rings_with_the_box_and_area_coco_gives_it(project):
    widget = Annotator(project, tool="polygon")
    ring = [100.5, 50.0, 300.0, 60.25, 250.0, 200.0, 120.0, 180.0]
    Browser(widget)(
        type="add",
        client_id="c-1",
        category_id=1,
        bbox=[0, 0, 10, 10],  # the kernel derives the box from the vertices, not from this
        polygon=[ring],
        duration=4.5,
    )
    [ann] = project.annotations(1)
    assert ann.segmentation == [ring]
    assert ann.bbox == (100.5, 50.0, 199.5, 150.0)
    coco = mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([ring], H, W)))
    assert ann.area == float(coco)
    assert widget.message == ""
    [shown] = widget._boxes
    assert shown["polygon"] == [ring]
    assert shown["client_id"] == "c-1"
    [add] = [a for a in project.actions(image_id=1) if a.action == "add"]
    assert add.duration == 4.5


def test_a_vertex_move_updates_the_polygon_and_undo_puts_it_back(project):
    widget = Annotator(project)
    square = [100.0, 100.0, 200.0, 100.0, 200.0, 200.0, 100.0, 200.0]
    browser = Browser(widget)
    browser(type="add", client_id="c-1", category_id=1, bbox=[100, 100, 100, 100], polygon=[square])
    ann_id = project.annotations(1)[0].id
    moved = [100.0, 100.0, 200.0, 100.0, 260.0, 240.0, 100.0, 200.0]
    browser(type="update", id=ann_id, bbox=[100, 100, 160, 140], polygon=[moved], duration=1.0)
    ann = project.annotation(ann_id)
    assert ann.segmentation == [moved]
    assert ann.bbox == (100.0, 100.0, 160.0, 140.0)
    browser(type="undo")
    ann = project.annotation(ann_id)
    assert ann.segmentation == [square]
    assert ann.bbox == (100.0, 100.0, 100.0, 100.0)
    assert ann.area == 10000.0
    browser(type="redo")
    assert project.annotation(ann_id).segmentation == [moved]


@pytest.mark.parametrize(
    ("polygon", "error"),
    [
        ([[10, 10, 20, 20]], "at least 3"),
        ([[10, 10, 20, 20, 5000, 30]], "outside image"),
        ([[10, 10, 20, 10, 30, 10]], "no area"),
        ("10,10", "list of"),
        ([[10, 10, 20, "x", 30, 40]], "finite number"),
    ],
)
def test_a_bad_polygon_is_refused_with_the_reason_and_nothing_is_stored(project, polygon, error):
    widget = Annotator(project)
    Browser(widget)(type="add", client_id="c-1", category_id=1, bbox=[1, 1, 5, 5], polygon=polygon)
    assert project.annotations(1) == []
    assert widget.message.startswith("not saved:")
    assert error in widget.message


# ----------------------------------------------------------------------- masks


def test_a_painted_mask_is_stored_as_pycocotools_rle_with_its_box_and_area(project):
    widget = Annotator(project, tool="brush")
    wire = Wire(widget)
    browser = Browser(widget)
    browser.ready()
    painted = disc(200, 150, 40)
    rle = rle_of(painted)
    browser(type="add", client_id="c-1", category_id=1, bbox=[0, 0, 1, 1], mask=rle, duration=2.0)
    [ann] = project.annotations(1)
    assert ann.segmentation == rle
    assert ann.area == float(painted.sum())
    assert ann.bbox == (160.0, 110.0, 81.0, 81.0)
    np.testing.assert_array_equal(mask_utils.decode({**rle, "counts": rle["counts"]}), painted)
    # the echo names the mask by the page's key and does not send the page's own mask back
    [shown] = widget._boxes
    assert shown["mask"] == {"key": mask_key(rle["size"], rle["counts"]), "size": [H, W]}
    assert "polygon" not in shown
    assert wire.masks() == []


def test_painting_over_a_polygon_replaces_it_by_the_mask(project):
    widget = Annotator(project)
    browser = Browser(widget)
    square = [100.0, 100.0, 200.0, 100.0, 200.0, 200.0, 100.0, 200.0]
    browser(type="add", client_id="c-1", category_id=1, bbox=[100, 100, 100, 100], polygon=[square])
    ann_id = project.annotations(1)[0].id
    pixels = np.zeros((H, W), np.uint8)
    pixels[100:200, 100:230] = 1
    browser(type="update", id=ann_id, bbox=[100, 100, 130, 100], mask=rle_of(pixels), polygon=None)
    ann = project.annotation(ann_id)
    assert isinstance(ann.segmentation, dict)
    assert ann.bbox == (100.0, 100.0, 130.0, 100.0)
    assert ann.area == 13000.0
    browser(type="undo")
    assert project.annotation(ann_id).segmentation == [square]


@pytest.mark.parametrize(
    ("mask", "error"),
    [
        ({"size": [10, 10], "counts": "0T3"}, "not the image's"),
        ({"size": [H, W], "counts": "0"}, "cover"),
        ({"size": [H, W], "counts": "\x7f"}, "not a valid"),
        ([1, 2, 3], "mask must be"),
    ],
)
def test_a_bad_mask_is_refused(project, mask, error):
    widget = Annotator(project)
    Browser(widget)(type="add", client_id="c-1", category_id=1, bbox=[1, 1, 5, 5], mask=mask)
    assert project.annotations(1) == []
    assert error in widget.message


def test_an_empty_mask_is_refused_and_a_box_only_move_of_a_mask_too(project):
    widget = Annotator(project)
    browser = Browser(widget)
    browser(
        type="add", client_id="c", category_id=1, bbox=[1, 1, 5, 5], mask=rle_of(disc(0, 0, 0) * 0)
    )
    assert "empty" in widget.message
    browser(
        type="add", client_id="c-2", category_id=1, bbox=[1, 1, 5, 5], mask=rle_of(disc(50, 50, 9))
    )
    ann_id = project.annotations(1)[0].id
    browser(type="update", id=ann_id, bbox=[300, 300, 19, 19])
    assert "follows its mask" in widget.message
    assert project.annotation(ann_id).bbox == (41.0, 41.0, 19.0, 19.0)


def test_predicted_masks_reach_the_page_once_in_a_binary_buffer_pixel_exact(project):
    striped = np.zeros((H, W), np.uint8)
    striped[100:300:4, 50:600] = 1  # rows of stripes: the PNG of its box beats the RLE text
    round_one = disc(400, 200, 90)
    project.replace_predictions(
        1,
        [
            {
                "category_id": 1,
                "bbox": [50, 100, 550, 197],
                "score": 0.9,
                "segmentation": rle_of(striped),
            },
            {
                "category_id": 1,
                "bbox": [310, 110, 181, 181],
                "score": 0.4,
                "segmentation": rle_of(round_one),
            },
        ],
        source="model:test",
    )
    widget = Annotator(project)
    wire = Wire(widget)
    Browser(widget).ready()
    [(message, buffer)] = wire.masks()
    assert message["sizes"] == [[H, W]]
    by_key = received(message, buffer)
    assert sorted(fmt for fmt, _ in by_key.values()) == ["png", "rle"]
    for pixels in (striped, round_one):
        rle = rle_of(pixels)
        np.testing.assert_array_equal(by_key[mask_key(rle["size"], rle["counts"])][1], pixels)
    # predictions show with their score; JSON carries no pixels
    assert sorted(b["score"] for b in widget._boxes) == [0.4, 0.9]
    assert len(json.dumps(widget._boxes)) < 600
    # a republish (another edit, a threshold change) sends nothing again
    widget.reload()
    assert len(wire.masks()) == 1
    # the page dropped one: it asks, it gets that one again
    key = next(iter(by_key))
    widget._handle_custom_msg({"type": "need_masks", "keys": [key]}, [])
    assert [entry[0] for entry in wire.masks()[-1][0]["masks"]] == [key]
    # accepting a predicted mask keeps its pixels
    pred = next(b for b in widget._boxes if b["score"] == 0.9)
    Browser(widget)(type="accept", id=pred["id"])
    assert project.annotation(pred["id"]).segmentation == rle_of(striped)


def test_mask_bytes_sent_stay_within_10_percent_of_png_per_image(project):
    """The issue's budget: bytes on the wire / PNG-encoded masks <= 1.1, per image."""
    rng = np.random.default_rng(0)
    masks = [disc(int(x), int(y), int(r)) for x, y, r in rng.uniform(40, 360, size=(6, 3))]
    stripes = np.zeros((H, W), np.uint8)
    stripes[10:400:3, 20:630] = 1
    masks.append(stripes)
    sent = []
    feed = MaskFeed(lambda message, buffers: sent.append(1))
    feed.forget()
    feed.ensure(rle_of(m) for m in masks)
    png = 0
    for m in masks:
        buffer = io.BytesIO()
        PILImage.fromarray(m.astype(bool)).save(buffer, "PNG", optimize=True)
        png += len(buffer.getvalue())
    assert sent == [1]
    assert feed.bytes_sent / png <= 1.1


def test_wire_form_picks_the_smaller_encoding():
    header, data = wire_form(rle_of(disc(300, 200, 100)))
    assert header["format"] == "rle"
    stripes = np.zeros((H, W), np.uint8)
    stripes[::2] = 1
    header, data = wire_form(rle_of(stripes))
    assert header["format"] == "png"
    assert header["box"] == [0, 0, W, H]
    assert len(data) < len(rle_of(stripes)["counts"])


def test_a_semantic_stroke_is_one_batch_one_undo_step_and_all_or_nothing(project):
    widget = Annotator(project, mask_mode="semantic")
    browser = Browser(widget)
    raccoon = disc(200, 200, 60)
    browser(type="add", client_id="c-1", category_id=1, bbox=[1, 1, 1, 1], mask=rle_of(raccoon))
    first = project.annotations(1)[0].id
    person = disc(260, 200, 30)
    rest = raccoon * (1 - person)
    edits = [
        {
            "type": "add",
            "client_id": "c-2",
            "category_id": 2,
            "bbox": [1, 1, 1, 1],
            "mask": rle_of(person),
        },
        {"type": "update", "id": first, "bbox": [1, 1, 1, 1], "mask": rle_of(rest)},
    ]
    browser(type="batch", edits=edits, duration=3.0)
    anns = {a.category_id: a for a in project.annotations(1)}
    assert anns[2].area == float(person.sum())
    assert anns[1].area == float(rest.sum())
    logged = [a for a in project.actions(image_id=1) if a.action in ("add", "update")]
    assert [a.duration for a in logged[-2:]] == [3.0, None]  # the stroke's time, counted once
    browser(type="undo")  # one step reverts both
    assert [a.id for a in project.annotations(1)] == [first]
    assert project.annotation(first).area == float(raccoon.sum())
    # a batch with one bad edit changes nothing
    bad = [edits[0], {"type": "update", "id": first, "mask": {"size": [1, 1], "counts": "01"}}]
    browser(type="batch", edits=bad)
    assert "not saved" in widget.message
    assert [a.id for a in project.annotations(1)] == [first]
    browser(type="batch", edits=[{"type": "accept_all"}])
    assert "every edit must be one of" in widget.message


# ------------------------------------------------------------------- keypoints


def test_keypoints_are_placed_one_by_one_and_stored_per_coco(project):
    widget = Annotator(project, tool="keypoints")
    [_, person] = widget.categories
    assert person["keypoints"] == NAMES
    assert person["skeleton"] == SKELETON
    browser = Browser(widget)
    first = [100, 50, 2] + [0, 0, 0] * 3
    browser(type="add", client_id="c-1", category_id=2, bbox=[100, 50, 1, 1], keypoints=first)
    ann_id = project.annotations(1)[0].id
    assert project.annotation(ann_id).num_keypoints == 1
    # second point visible, third skipped (absent), fourth occluded
    points = [100, 50, 2, 110, 40, 2, 0, 0, 0, 90.5, 45.25, 1]
    browser(type="update", id=ann_id, bbox=[90.5, 40, 19.5, 10], keypoints=points)
    ann = project.annotation(ann_id)
    assert ann.keypoints == [100.0, 50.0, 2, 110.0, 40.0, 2, 0.0, 0.0, 0, 90.5, 45.25, 1]
    assert ann.num_keypoints == 3
    assert ann.bbox == (90.5, 40.0, 19.5, 10.0)
    assert widget._boxes[0]["keypoints"] == ann.keypoints
    browser(type="undo")
    assert project.annotation(ann_id).keypoints == [100.0, 50.0, 2] + [0.0, 0.0, 0] * 3


def test_keypoints_on_a_masked_person_leave_the_box_to_the_mask(project):
    widget = Annotator(project)
    browser = Browser(widget)
    body = disc(300, 200, 50)
    browser(type="add", client_id="c", category_id=2, bbox=[1, 1, 1, 1], mask=rle_of(body))
    ann_id = project.annotations(1)[0].id
    points = [300, 150, 2] + [0, 0, 0] * 3
    browser(type="update", id=ann_id, bbox=[250, 150, 101, 101], keypoints=points)
    ann = project.annotation(ann_id)
    assert widget.message == ""
    assert ann.keypoints[:3] == [300.0, 150.0, 2]
    assert ann.bbox == (250.0, 150.0, 101.0, 101.0)  # the mask's, as before
    assert ann.area == float(body.sum())


def test_an_absent_keypoint_is_stored_at_zero(project):
    widget = Annotator(project)
    points = [100, 50, 2, 110, 40, 0, 0, 0, 0, 0, 0, 0]
    Browser(widget)(
        type="add", client_id="c", category_id=2, bbox=[100, 50, 1, 1], keypoints=points
    )
    assert project.annotations(1)[0].keypoints[3:6] == [0.0, 0.0, 0]


@pytest.mark.parametrize(
    ("category", "points", "error"),
    [
        (2, [1, 2, 2], "must be 12 numbers"),
        (2, [1, 2, 3] + [0, 0, 0] * 3, "visibility must be 0, 1 or 2"),
        (2, [9000, 2, 2] + [0, 0, 0] * 3, "outside image"),
        (1, [1, 2, 2], "has no keypoints"),
    ],
)
def test_bad_keypoints_are_refused(project, category, points, error):
    widget = Annotator(project)
    Browser(widget)(
        type="add", client_id="c", category_id=category, bbox=[1, 1, 5, 5], keypoints=points
    )
    assert project.annotations(1) == []
    assert error in widget.message


def test_predicted_keypoints_are_accepted_or_rejected_like_boxes(project):
    points = [100.0, 50.0, 2, 110.0, 40.0, 2, 0.0, 0.0, 0, 90.0, 45.0, 2]
    [keep, drop] = project.replace_predictions(
        1,
        [
            {"category_id": 2, "bbox": [80, 30, 40, 30], "score": 0.8, "keypoints": points},
            {"category_id": 2, "bbox": [300, 30, 40, 30], "score": 0.7, "keypoints": points},
        ],
        source="model:test",
    )
    widget = Annotator(project)
    shown = {b["id"]: b for b in widget._boxes}
    assert shown[keep.id]["keypoints"] == points
    assert shown[keep.id]["is_prediction"] is True
    browser = Browser(widget)
    browser(type="accept", id=keep.id)
    browser(type="delete", id=drop.id)
    [ann] = project.annotations(1)
    assert ann.id == keep.id
    assert not ann.is_prediction
    assert ann.keypoints == points


def test_tool_and_mask_mode_are_checked(project):
    with pytest.raises(ProjectError, match="tool must be one of"):
        Annotator(project, tool="lasso")
    with pytest.raises(ProjectError, match="mask_mode"):
        Annotator(project, mask_mode="panoptic")
    widget = Annotator(project, tool="keypoints", mask_mode="semantic")
    assert (widget.tool, widget.mask_mode) == ("keypoints", "semantic")
