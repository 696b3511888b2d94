"""CLI commands on a project's data: ``init``, ``migrate``, ``import``, ``export``,
``split``, ``relocate`` and ``info``.

Each handler calls the same functions a notebook calls (``annowidget.formats``,
``annowidget.store``) and prints what it did; errors become one line through
``annowidget.cli.main``.

Example:
    $ annowidget init raccoons --images data/raccoon
    $ annowidget init /shared/raccoons --images /shared/raccoon --db postgresql://ann@db/raccoons
    $ annowidget import raccoons --format voc data/raccoon/annotations --images data/raccoon/images
    $ annowidget split raccoons --ratio 0.8 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from annowidget.cli.errors import CommandError, check_folders
from annowidget.store import Project, describe_database

# annowidget.formats (pycocotools, PIL) is imported inside the handlers that need it, so
# building the parser for `annowidget --help` stays quick.

_IMPORT_FORMATS = ("coco", "voc", "yolo", "masks", "images")
_EXPORT_FORMATS = ("coco", "voc", "yolo", "masks")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``init``, ``import``, ``export``, ``split``, ``relocate`` and ``info``."""
    init = subparsers.add_parser("init", help="create a project whose images live under DIR")
    init.add_argument("project", help="directory of the new project")
    init.add_argument("--images", required=True, metavar="DIR", help="the images root")
    init.add_argument(
        "--db",
        metavar="DSN",
        default=None,
        help="postgresql://user@host/database: a shared project on a PostgreSQL server "
        "(default: $ANNOWIDGET_DB, else one SQLite file in the project folder)",
    )
    init.set_defaults(handler=_init)
    migrate = subparsers.add_parser(
        "migrate", help="move a project's data to PostgreSQL or back to SQLite, exactly"
    )
    migrate.add_argument("project", help="project directory")
    migrate.add_argument(
        "--to",
        required=True,
        metavar="TARGET",
        help="'sqlite', or postgresql://user@host/database (an empty database)",
    )
    migrate.set_defaults(handler=_migrate)

    imp = subparsers.add_parser("import", help="import a dataset or a folder of images")
    imp.add_argument("project")
    imp.add_argument(
        "path", help="COCO JSON, VOC XML dir/file, YOLO labels or label maps dir, or image dir"
    )
    imp.add_argument("--format", required=True, choices=_IMPORT_FORMATS)
    imp.add_argument(
        "--images", metavar="DIR", help="where the dataset's images are (YOLO, masks: required)"
    )
    imp.add_argument(
        "--folder",
        metavar="NAME",
        help="project folder for the images (default: train; images: unlabeled)",
    )
    imp.add_argument(
        "--classes",
        metavar="FILE",
        help="YOLO / label map class names: classes.txt or a data YAML "
        "(default: classes.txt beside PATH)",
    )
    imp.add_argument(
        "--void-category",
        metavar="NAME",
        help="masks: keep void pixels (255) as a crowd mask of this category (default: unlabeled)",
    )
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(handler=_import)

    exp = subparsers.add_parser(
        "export", help="export annotations as COCO, VOC, YOLO or PNG label maps (masks)"
    )
    exp.add_argument("project")
    exp.add_argument("out", help="COCO: the JSON file; VOC, YOLO and masks: a directory")
    exp.add_argument("--format", required=True, choices=_EXPORT_FORMATS)
    exp.add_argument(
        "--folder", action="append", metavar="NAME", help="only this folder (repeatable)"
    )
    exp.add_argument("--status", action="append", help="only images with this status")
    exp.add_argument("--predictions", action="store_true", help="COCO: include pending predictions")
    exp.add_argument("--segments", action="store_true", help="YOLO: write polygons")
    exp.add_argument(
        "--overwrite",
        action="store_true",
        help="VOC, YOLO, masks: replace a folder that has files, whole (default: refuse)",
    )
    exp.set_defaults(handler=_export)

    split = subparsers.add_parser("split", help="split reviewed images into train/test")
    split.add_argument("project")
    split.add_argument("--ratio", type=float, default=0.8, help="share of train (default 0.8)")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument(
        "--reshuffle",
        action="store_true",
        help="re-split every image afresh (default: images already in train/test stay)",
    )
    split.set_defaults(handler=_split)

    relocate = subparsers.add_parser(
        "relocate", help="point the project at its images' new folder after a move"
    )
    relocate.add_argument("project")
    relocate.add_argument("--images", required=True, metavar="DIR", help="the new images root")
    relocate.set_defaults(handler=_relocate)

    info = subparsers.add_parser("info", help="counts per folder, status and category")
    info.add_argument("project")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_info)


def _init(args: argparse.Namespace) -> int:
    db = args.db or os.environ.get("ANNOWIDGET_DB") or None
    with Project.create(args.project, images_root=args.images, db=db) as project:
        where = "" if project.dsn is None else f", data on {describe_database(project.dsn)}"
        print(f"created project {project.root} (images under {project.images_root}{where})")
    print(f"next: annowidget import {args.project} --format images {args.images}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from annowidget.store.migrate import migrate

    counts = migrate(args.project, args.to)
    target = "SQLite" if args.to == "sqlite" else describe_database(args.to)
    print(f"moved {args.project} to {target}: " + _pairs(counts))
    return 0


def _yolo_classes(args: argparse.Namespace) -> Path:
    if args.classes:
        return Path(args.classes)
    labels = Path(args.path)
    for candidate in (labels / "classes.txt", labels.parent / "classes.txt"):
        if candidate.is_file():
            return candidate
    raise CommandError(f"{labels}: no classes.txt beside the labels; pass --classes FILE")


def _import(args: argparse.Namespace) -> int:
    from annowidget.formats import (
        import_coco,
        import_images,
        import_label_maps,
        import_voc,
        import_yolo,
    )

    progress = not args.no_progress
    folder = args.folder or ("unlabeled" if args.format == "images" else "train")
    with Project.open(args.project) as project:
        if args.format == "coco":
            report = import_coco(
                project, args.path, images_dir=args.images, folder=folder, progress=progress
            )
        elif args.format == "voc":
            report = import_voc(
                project, args.path, images_dir=args.images, folder=folder, progress=progress
            )
        elif args.format == "masks":
            if not args.images:
                raise CommandError("--images DIR is required with --format masks")
            report = import_label_maps(
                project,
                args.path,
                images_dir=args.images,
                classes=_yolo_classes(args),
                folder=folder,
                void_category=args.void_category,
                progress=progress,
            )
        elif args.format == "yolo":
            if not args.images:
                raise CommandError("--images DIR is required with --format yolo")
            report = import_yolo(
                project,
                args.path,
                images_dir=args.images,
                classes=_yolo_classes(args),
                folder=folder,
                progress=progress,
            )
        else:
            report = import_images(project, args.path, folder=folder, progress=progress)
    print(report.summary())
    found = report.images_added + report.images_existing
    if found + report.annotations_added + report.annotations_existing == 0:
        skipped = f" ({report.skipped_count} skipped)" if report.skipped_count else ""
        raise CommandError(f"{args.path}: nothing imported{skipped}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from annowidget.formats import export_coco, export_label_maps, export_voc, export_yolo

    with Project.open(args.project) as project:
        check_folders(project, args.folder)
        if args.format == "coco":
            counts = export_coco(
                project,
                args.out,
                folders=args.folder,
                status=args.status,
                include_predictions=args.predictions,
            )
        elif args.format == "voc":
            counts = export_voc(
                project, args.out, folders=args.folder, status=args.status, overwrite=args.overwrite
            )
        elif args.format == "masks":
            counts = export_label_maps(
                project, args.out, folders=args.folder, status=args.status, overwrite=args.overwrite
            )
        else:
            counts = export_yolo(
                project,
                args.out,
                folders=args.folder,
                status=args.status,
                segments=args.segments,
                overwrite=args.overwrite,
            )
    details = ", ".join(f"{value} {key}" for key, value in counts.items())
    print(f"exported {details} to {args.out}")
    return 0


def _split(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        n_train, n_test = project.split(args.ratio, seed=args.seed, reshuffle=args.reshuffle)
    if n_train + n_test == 0:
        raise CommandError("no reviewed images to split; label or import some first")
    print(f"train: {n_train} images, test: {n_test} images (seed {args.seed})")
    return 0


def _relocate(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        found, total = project.relocate_images(args.images)
        root = project.images_root
    print(f"images root: {root} ({found} of {total} images found there)")
    if found < total:
        print(
            f"annowidget relocate: warning: {total - found} images are not under {root}",
            file=sys.stderr,
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    with Project.open(args.project, readonly=True) as project:
        info = project.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"project      {info['project']}")
    print(f"images root  {info['images_root']}")
    if "db" in info:
        print(f"database     {info['db']}")
    print(
        f"images       {info['images']}  annotations {info['annotations']}  "
        f"predictions {info['predictions']}"
    )
    print("folders      " + _pairs(info["folders"]))
    print("status       " + _pairs(info["status"]))
    print("categories")
    for name, counts in info["categories"].items():
        pending = f" (+{counts['predictions']} predicted)" if counts["predictions"] else ""
        print(f"  {name:<24} {counts['annotations']:>7}{pending}")
    return 0


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "-"
