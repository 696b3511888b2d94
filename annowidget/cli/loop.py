"""CLI command ``loop``: continuous mode, headless (:mod:`annowidget.train.continuous`).

It watches the project and, whenever ``--every`` images have been reviewed since the last
model, fine-tunes the latest model for ``--budget`` image-steps and re-predicts the images
nobody has touched. It runs until Ctrl-C or SIGTERM (the running fine-tune keeps its last
completed epoch) or until ``--rounds`` rounds ran. Scripts and the simulated annotator
label through the store meanwhile; each round prints one line (JSON with ``--json``).

Example:
    $ annowidget loop raccoons --every 10 --budget 200
    $ annowidget loop raccoons --every 10 --rounds 1 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from annowidget.cli.errors import CommandError
from annowidget.cli.models import (
    _graceful_signals,
    add_hyperparameter_flags,
    hyperparameters_from_args,
)
from annowidget.models.tasks import TASKS
from annowidget.store import Project


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``loop`` to the ``annowidget`` parser."""
    loop = subparsers.add_parser(
        "loop", help="retrain and re-predict whenever N more images are reviewed"
    )
    loop.add_argument("project")
    loop.add_argument(
        "--every", type=int, default=10, metavar="N", help="reviews between rounds (10)"
    )
    loop.add_argument(
        "--budget", type=int, default=None, metavar="N", help="image-steps per fine-tune (240)"
    )
    loop.add_argument("--rounds", type=int, metavar="R", help="exit after R rounds")
    loop.add_argument("--task", default="detection", choices=TASKS)
    loop.add_argument(
        "--base", help="the first round's base model when the project has no trained one"
    )
    loop.add_argument(
        "--test-folder", action="append", metavar="F", help="test folder (repeatable; test)"
    )
    loop.add_argument("--threshold", type=float, default=0.5, help="minimum score (0.5)")
    loop.add_argument("--prefix", default="auto", help="model names: PREFIX-ROUND (auto)")
    loop.add_argument(
        "--scratch", action="store_true", help="first round from random weights (no pretraining)"
    )
    add_hyperparameter_flags(loop)  # --epochs and --eval-period: set from --budget
    loop.add_argument("--poll", type=float, default=1.0, metavar="S", help="seconds between looks")
    loop.add_argument("--json", action="store_true", help="one JSON line per round")
    loop.set_defaults(handler=_loop)


def _loop(args: argparse.Namespace) -> int:
    from annowidget.train.continuous import DEFAULT_BUDGET, ContinuousTrainer

    for name, flag in (("epochs", "--epochs"), ("eval_period", "--eval-period")):
        if hasattr(args, name):
            raise CommandError(f"{flag}: a round's epochs follow from --budget (image-steps)")
    if args.rounds is not None and args.rounds <= 0:
        raise ValueError(f"--rounds must be a positive integer, got {args.rounds}")
    with Project.open(args.project) as project:
        loop = ContinuousTrainer(
            project,
            every=args.every,
            budget=args.budget or DEFAULT_BUDGET,
            task=args.task,
            base_model=args.base,
            hyperparameters=hyperparameters_from_args(args),
            test_folders=args.test_folder or ("test",),
            threshold=args.threshold,
            prefix=args.prefix,
            pretrained=not args.scratch,
            poll_seconds=args.poll,
        )
        loop.on_round(lambda report: _print_round(report, as_json=args.json))
        loop.on_state(_Watching())
        with _graceful_signals():  # Ctrl-C, SIGTERM: stop like the Stop button
            reports = loop.run(rounds=args.rounds)
    if loop.interrupted:
        print("annowidget loop: stopped", file=sys.stderr)
        return 130
    return 1 if any(r.status == "failed" for r in reports) else 0


def _print_round(report: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict()), flush=True)
        return
    ap50 = "n/a" if report.ap50 is None else f"{report.ap50:.3f}"
    line = (
        f"round {report.round}: {report.model} from {report.base} {report.status} "
        f"({report.images} images, {report.epochs} epochs, {report.train_seconds:.1f} s), "
        f"AP50 {ap50}, re-predicted {report.predicted} images"
    )
    if report.kept:
        line += f", left {len(report.kept)} being edited alone"
    if report.status != "finished":
        line += f": {report.reason}"
    print(line, flush=True)


class _Watching:
    """Say on stderr how many reviews the next round waits for, when that changes."""

    def __init__(self) -> None:
        self.last: tuple[str, int] | None = None

    def __call__(self, state: Any) -> None:
        if state.phase != "watching" or (state.phase, state.until_next) == self.last:
            return
        self.last = (state.phase, state.until_next)
        print(f"watching: {state.until_next} reviews until the next round", file=sys.stderr)
