"""The bundled sample: 40 raccoon images with boxes (MIT, see ``raccoon/ATTRIBUTION.md``).

Example:
    >>> import tempfile
    >>> project = sample_project(tempfile.mkdtemp() + "/sample")
    >>> project.count_images()
    40
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from annowidget.store import Project
from annowidget.store.project import DB_NAME, POINTER_NAME

SAMPLE_DIR = Path(__file__).parent / "raccoon"


def sample_annotations() -> dict:
    """The sample's ground truth as a COCO dict (all 40 images, 43 boxes)."""
    return json.loads((SAMPLE_DIR / "annotations.json").read_text())


def sample_project(
    path: str | os.PathLike[str] | None = None,
    *,
    labeled: int = 30,
    split_ratio: float = 0.8,
    seed: int = 0,
    db: str | None = None,
) -> Project:
    """Create (or reopen) a project on a copy of the bundled raccoon sample.

    The first ``labeled`` images come with their boxes, split into ``train`` and ``test``
    by ``split_ratio``; the others wait in ``unlabeled`` for smart prediction. Calling it
    again on the same path reopens the project as it was, edits included. ``db`` (a
    ``postgresql://`` address of an empty database) puts it on a PostgreSQL server.
    """
    root = Path(path if path is not None else Path.cwd() / "annowidget-sample").absolute()
    if (root / DB_NAME).exists() or (root / POINTER_NAME).exists():
        return Project.open(root)
    if not 0 <= labeled <= 40:
        raise ValueError(f"labeled must be between 0 and 40, got {labeled}")
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    coco = sample_annotations()
    for entry in coco["images"]:
        shutil.copyfile(SAMPLE_DIR / "images" / entry["file_name"], images_dir / entry["file_name"])

    project = Project.create(root, images_root=images_dir, db=db)
    category = project.add_category("raccoon", supercategory="animal")
    ids = project.add_images_bulk(
        {
            "path": entry["file_name"],
            "width": entry["width"],
            "height": entry["height"],
            "folder": "train" if index < labeled else "unlabeled",
        }
        for index, entry in enumerate(coco["images"])
    )
    new_id = {entry["id"]: ids[index] for index, entry in enumerate(coco["images"])}
    labeled_ids = {entry["id"] for entry in coco["images"][:labeled]}
    project.add_annotations_bulk(
        (new_id[a["image_id"]], {"category_id": category.id, "bbox": a["bbox"], "source": "sample"})
        for a in coco["annotations"]
        if a["image_id"] in labeled_ids
    )
    if labeled >= 2:
        project.split(split_ratio, seed=seed, source_folders=["train"])
    return project
