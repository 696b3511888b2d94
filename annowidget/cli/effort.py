"""CLI commands on what labeling cost and what models bought: ``compare`` and ``effort``.

``compare`` scores two models on the same folder (:mod:`annowidget.effort.compare`);
``effort`` prints the effort meter's per-round table with each round's model scored on the
images people corrected (:mod:`annowidget.effort`), and below it, when more than one person
labeled (a shared project), a table per annotator; one person's table would repeat the
totals line. Both print a text table, or JSON with ``--json`` (``annotators`` is always in
it); errors become one line through ``annowidget.cli.main``.

Example:
    $ annowidget compare raccoons --models round-1 round-2 --folder test
    $ annowidget effort raccoons --json
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from annowidget.store import Project


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``compare`` and ``effort`` to the ``annowidget`` parser."""
    compare = subparsers.add_parser(
        "compare", help="COCO AP of two models on the same folder, side by side"
    )
    compare.add_argument("project")
    compare.add_argument(
        "--models",
        nargs=2,
        required=True,
        metavar=("A", "B"),
        help="two model names (trained or base); differences are B - A",
    )
    compare.add_argument(
        "--folder",
        required=True,
        action="append",
        metavar="NAME",
        help="the folder whose reviewed images score both models (repeatable)",
    )
    compare.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default cpu)")
    compare.add_argument("--json", action="store_true", help="print JSON")
    compare.set_defaults(handler=_compare)

    effort = subparsers.add_parser(
        "effort", help="seconds per image and box corrections per model round"
    )
    effort.add_argument("project")
    effort.add_argument(
        "--idle-gap",
        type=float,
        default=None,
        metavar="SECONDS",
        help="a pause longer than this is not work (default: the meter's, 30 s)",
    )
    effort.add_argument(
        "--all-images",
        action="store_true",
        help="count images not reviewed yet too (default: reviewed images only)",
    )
    effort.add_argument("--json", action="store_true", help="print JSON")
    effort.set_defaults(handler=_effort)


def _compare(args: argparse.Namespace) -> int:
    from annowidget.effort.compare import compare_models

    model_a, model_b = args.models
    with Project.open(args.project) as project:
        folders = args.folder[0] if len(args.folder) == 1 else args.folder
        report = compare_models(project, model_a, model_b, folder=folders, device=args.device)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0


def _effort(args: argparse.Namespace) -> int:
    from annowidget.effort import effort_per_annotator, effort_per_round, ongoing_evaluation
    from annowidget.effort.meter import DEFAULT_IDLE_GAP

    idle_gap = DEFAULT_IDLE_GAP if args.idle_gap is None else args.idle_gap
    if not idle_gap > 0:
        raise ValueError(f"--idle-gap must be a positive number of seconds, got {idle_gap}")
    with Project.open(args.project) as project:
        reviewed_only = not args.all_images
        rounds = effort_per_round(project, idle_gap=idle_gap, reviewed_only=reviewed_only)
        scores = ongoing_evaluation(project)
        people = effort_per_annotator(project, idle_gap=idle_gap, reviewed_only=reviewed_only)
    rows = [round_dict(r, scores.get(r.model) if r.model else None) for r in rounds]
    annotators = [annotator_dict(name, row) for name, row in people.items()]
    if args.json:
        print(
            json.dumps({"idle_gap": idle_gap, "rounds": rows, "annotators": annotators}, indent=2)
        )
    else:
        print(effort_table(rows))
        if len(annotators) > 1:
            print()
            print(annotator_table(annotators))
    return 0


def annotator_dict(author: str, row: dict[str, float | None]) -> dict[str, Any]:
    """One annotator's line of :func:`~annowidget.effort.effort_per_annotator`, JSON-ready.

    Example:
        >>> annotator_dict("ana", {"images": 2, "seconds": 30.0, "seconds_per_image": 15.0,
        ...     "predictions_reviewed": 0, "accepted_unchanged": 0,
        ...     "share_accepted_unchanged": None})["seconds_per_image"]
        15.0
    """
    return {
        "annotator": author,
        "images": row["images"],
        "seconds": round(float(row["seconds"] or 0.0), 3),
        "seconds_per_image": round(float(row["seconds_per_image"] or 0.0), 3),
        "predictions_reviewed": row["predictions_reviewed"],
        "accepted_unchanged": row["accepted_unchanged"],
        "share_accepted_unchanged": _rounded(row["share_accepted_unchanged"]),
    }


def annotator_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`annotator_dict` as a text table, most images first.

    Example:
        >>> print(annotator_table([{"annotator": "ana", "images": 2, "seconds": 30.0,
        ...     "seconds_per_image": 15.0, "predictions_reviewed": 4, "accepted_unchanged": 3,
        ...     "share_accepted_unchanged": 0.75}]))
        annotator  images  s/image  decided  accepted%
        ana             2     15.0        4        75%
    """
    from annowidget.effort.summary import annotator_label

    cells = [["annotator", "images", "s/image", "decided", "accepted%"]]
    for row in rows:
        share = row["share_accepted_unchanged"]
        cells.append(
            [
                annotator_label(row["annotator"]),
                str(row["images"]),
                f"{row['seconds_per_image']:.1f}",
                str(row["predictions_reviewed"]),
                "-" if share is None else f"{share * 100:.0f}%",
            ]
        )
    return "\n".join(_aligned(cells))


def _aligned(cells: list[list[str]]) -> list[str]:
    """Text table lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]


def round_dict(effort: Any, score: Any = None) -> dict[str, Any]:
    """One round of the effort meter (and its model's ongoing score) as JSON-ready values.

    Example:
        >>> from annowidget.effort import RoundEffort
        >>> round_dict(RoundEffort(model=None, images=2, seconds=60.0))["seconds_per_image"]
        30.0
    """
    share = effort.share_accepted_unchanged
    return {
        "model": effort.model,
        "images": effort.images,
        "seconds": round(effort.seconds, 3),
        "seconds_per_image": round(effort.seconds_per_image, 3),
        "predictions": effort.predictions,
        "accepted_unchanged": effort.accepted_unchanged,
        "adjusted": effort.adjusted,
        "relabeled": effort.relabeled,
        "deleted_false_positives": effort.deleted_false_positives,
        "drawn_from_scratch": effort.drawn_from_scratch,
        "share_accepted_unchanged": None if share is None else round(share, 4),
        "mean_adjusted_iou": _rounded(effort.mean_adjusted_iou),
        "ongoing": None
        if score is None
        else {
            "images": score.images,
            "precision": _rounded(score.precision),
            "recall": _rounded(score.recall),
            "ap50": _rounded(score.ap50),
        },
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


_COLUMNS = (
    ("round", "model"),
    ("images", "images"),
    ("s/image", "seconds_per_image"),
    ("predicted", "predictions"),
    ("accepted", "accepted_unchanged"),
    ("adjusted", "adjusted"),
    ("relabeled", "relabeled"),
    ("deleted", "deleted_false_positives"),
    ("drawn", "drawn_from_scratch"),
    ("accepted%", "share_accepted_unchanged"),
    ("adj.IoU", "mean_adjusted_iou"),
    ("P", "precision"),
    ("R", "recall"),
    ("AP50", "ap50"),
)


def _cell(row: dict[str, Any], key: str) -> str:
    ongoing = row["ongoing"] or {}
    value = ongoing.get(key) if key in ("precision", "recall", "ap50") else row[key]
    if key == "model":
        return "(from scratch)" if value is None else str(value)
    if value is None:
        return "-"
    if key == "share_accepted_unchanged":
        return f"{value * 100:.0f}%"
    if key == "seconds_per_image":
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def effort_table(rows: list[dict[str, Any]]) -> str:
    """The per-round rows of :func:`round_dict` as a text table (P/R/AP50: ongoing score).

    Example:
        >>> effort_table([])
        'no reviewed work in the action log yet'
    """
    if not rows:
        return "no reviewed work in the action log yet"
    cells = [[title for title, _ in _COLUMNS]]
    cells += [[_cell(row, key) for _, key in _COLUMNS] for row in rows]
    lines = _aligned(cells)
    total_images = sum(row["images"] for row in rows)
    total_seconds = sum(row["seconds"] for row in rows)
    lines.append(
        f"{total_images} images, {total_seconds:.0f} s of work in all; "
        "P/R/AP50: each round's model scored on the images people corrected"
    )
    return "\n".join(lines)
