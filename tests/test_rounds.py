"""Round against round: AP and AP50 with a paired bootstrap interval over test images."""

from __future__ import annotations

import contextlib
import io
import random
import time
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annowidget.effort._ap import Box
from annowidget.effort.rounds import Difference, RoundComparison, bootstrap_difference


def _scene(seed: int, images: int, jitter_a: float, jitter_b: float) -> tuple[dict, ...]:
    rng = random.Random(seed)
    truths, a, b = {}, {}, {}
    for i in range(1, images + 1):
        truths[i] = [
            Box(rng.choice([1, 2]), [rng.uniform(0, 500), rng.uniform(0, 350), 60.0, 50.0])
            for _ in range(rng.randint(1, 3))
        ]
        for found, jitter in ((a, jitter_a), (b, jitter_b)):
            boxes = [
                Box(
                    t.category_id,
                    [x + rng.uniform(-jitter, jitter) for x in t.bbox[:2]] + [60, 50],
                    round(rng.random(), 3),
                )
                for t in truths[i]
                if rng.random() < 0.85
            ]
            boxes.append(Box(1, [rng.uniform(0, 500), rng.uniform(0, 350), 40, 40], rng.random()))
            found[i] = boxes
    return truths, a, b


def _coco(truths: dict, detections: dict) -> tuple[float, float]:
    dataset = {
        "images": [{"id": i, "width": 640, "height": 480} for i in truths],
        "categories": [{"id": 1, "name": "raccoon"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {
                "id": n,
                "image_id": i,
                "category_id": t.category_id,
                "bbox": list(t.bbox),
                "area": t.bbox[2] * t.bbox[3],
                "iscrowd": 0,
            }
            for n, (i, t) in enumerate(((i, t) for i, ts in truths.items() for t in ts), start=1)
        ],
    }
    results = [
        {"image_id": i, "category_id": d.category_id, "bbox": list(d.bbox), "score": d.score}
        for i, ds in detections.items()
        for d in ds
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


def test_the_observed_ap_and_ap50_are_cocoevals() -> None:
    truths, a, b = _scene(3, 12, jitter_a=25.0, jitter_b=8.0)
    ap, ap50 = bootstrap_difference(a, b, truths, resamples=50)
    assert (ap.a, ap50.a) == pytest.approx(_coco(truths, a), abs=1e-9)
    assert (ap.b, ap50.b) == pytest.approx(_coco(truths, b), abs=1e-9)


def test_six_images_are_within_noise_and_the_verdict_is_printed() -> None:
    truths, a, b = _scene(0, 6, jitter_a=10.0, jitter_b=10.0)  # alike models
    ap, ap50 = bootstrap_difference(a, b, truths)
    assert ap.low < ap.delta < ap.high
    assert ap.within_noise
    assert ap50.within_noise
    report = RoundComparison("model-1", "model-2", "test", 6, 9, ap, ap50)
    text = report.text()
    assert "model-1 -> model-2 on folder 'test' (6 images, 9 boxes):" in text
    assert "AP    " in text
    assert "AP50  " in text
    assert "95% interval" in text
    assert "within noise" in text
    assert "6 test images" in text


def test_a_clear_gain_on_many_images_is_beyond_noise() -> None:
    truths, a, b = _scene(7, 60, jitter_a=40.0, jitter_b=3.0)
    ap, _ = bootstrap_difference(a, b, truths, resamples=300)
    assert ap.delta > 0.2
    assert ap.low > 0
    assert not ap.within_noise
    assert "beyond noise" in ap.line(0.95)


def test_the_interval_is_seeded_and_fast() -> None:
    truths, a, b = _scene(11, 40, jitter_a=20.0, jitter_b=10.0)
    start = time.perf_counter()
    first = bootstrap_difference(a, b, truths, seed=4)
    seconds = time.perf_counter() - start
    assert bootstrap_difference(a, b, truths, seed=4) == first
    assert bootstrap_difference(a, b, truths, seed=5) != first
    assert seconds < 10.0  # about 1 s for 1000 draws of 40 images on a loaded 2-core machine


def test_nothing_to_score_and_bad_arguments() -> None:
    assert bootstrap_difference({}, {}, {}) == (
        Difference("AP", None, None),
        Difference("AP50", None, None),
    )
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_difference({}, {}, {1: []}, resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_difference({}, {}, {1: []}, confidence=1.0)


# ------------------------------------------------------------- real models, real images
DATA = Path(__file__).parents[1].parent / "shared" / "data" / "raccoon"


@pytest.mark.skipif(not DATA.is_dir(), reason=f"dataset missing: {DATA}")
def test_compare_rounds_scores_registry_models_on_the_test_folder(tmp_path: Path) -> None:
    import torch

    from annowidget.effort import compare_rounds
    from annowidget.formats import import_voc
    from annowidget.store import Project
    from annowidget.train import Hyperparameters, Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Project.create(tmp_path / "proj", images_root=DATA / "images") as project:
            annotations = DATA / "annotations"
            import_voc(
                project, [annotations / f"raccoon-{i}.xml" for i in (1, 2, 3, 4)], folder="train"
            )
            import_voc(
                project, [annotations / f"raccoon-{i}.xml" for i in (7, 8, 9)], folder="test"
            )
            hp = Hyperparameters(
                epochs=1,
                batch_size=2,
                image_size=64,
                rois_per_image=32,
                eval_period=1,
                seed=0,
                num_threads=1,
                device="cpu",
                augment=False,
            )
            card = Trainer(project, "m", hyperparameters=hp, pretrained=False).run()
            assert card.status == "finished", card.status_reason

            report = compare_rounds(project, "m", "m", folder="test", resamples=200)
            # Scored through the training run's own evaluation pipeline: its card's numbers.
            final = card.metrics[-1]
            assert report.ap.a == pytest.approx(final["AP"], abs=1e-6)
            assert report.ap50.a == pytest.approx(final["AP50"], abs=1e-6)
            assert (report.images, report.boxes) == (3, project.snapshot("test").num_annotations)
            # The same model on the same images: no difference, and no noise in it either.
            for difference in (report.ap, report.ap50):
                assert difference.a == difference.b
                assert (difference.low, difference.high) == (0.0, 0.0)
            assert "m -> m on folder 'test' (3 images" in report.text()
            with pytest.raises(ValueError, match="no reviewed images"):
                compare_rounds(project, "m", "m", folder="unlabeled")
    finally:
        torch.set_num_threads(threads)
