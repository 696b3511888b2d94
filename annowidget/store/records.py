"""The rows of a project as immutable values: what readers get back from the store."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("unlabeled", "predicted", "reviewed")

Segmentation = list[list[float]] | dict[str, Any] | None


@dataclass(frozen=True)
class Category:
    """A class of object, matched by ``name`` across imports.

    Example:
        >>> Category(1, "raccoon").name
        'raccoon'
    """

    id: int
    name: str
    supercategory: str = ""
    keypoints: list[str] = field(default_factory=list)
    skeleton: list[list[int]] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Category:
        return cls(
            id=row["id"],
            name=row["name"],
            supercategory=row["supercategory"],
            keypoints=json.loads(row["keypoints"]),
            skeleton=json.loads(row["skeleton"]),
        )


@dataclass(frozen=True)
class Image:
    """An image of the project; ``path`` is relative to the project's images root (posix).

    Example:
        >>> Image(1, "a.jpg", 640, 480, "", "train", "reviewed").folder
        'train'
    """

    id: int
    path: str
    width: int
    height: int
    checksum: str
    folder: str
    status: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Image:
        return cls(
            row["id"],
            row["path"],
            row["width"],
            row["height"],
            row["checksum"],
            row["folder"],
            row["status"],
        )


@dataclass(frozen=True)
class Annotation:
    """One object on an image: a box, optionally a mask (polygons or RLE) and keypoints.

    ``bbox`` is ``(x, y, w, h)`` in original image pixels (COCO's convention). A prediction
    has a ``score`` and ``is_prediction`` set until a person accepts or edits it.

    Example:
        >>> a = Annotation(1, 1, 1, (0.0, 0.0, 10.0, 5.0), area=50.0)
        >>> a.bbox_xyxy
        (0.0, 0.0, 10.0, 5.0)
    """

    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    segmentation: Segmentation = None
    keypoints: list[float] | None = None
    num_keypoints: int = 0
    iscrowd: int = 0
    area: float = 0.0
    score: float | None = None
    source: str = "human"
    is_prediction: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)

    def to_dict(self) -> dict[str, Any]:
        """The annotation as plain JSON-ready values (used by the action log and widgets)."""
        return {
            "id": self.id,
            "image_id": self.image_id,
            "category_id": self.category_id,
            "bbox": list(self.bbox),
            "segmentation": self.segmentation,
            "keypoints": self.keypoints,
            "num_keypoints": self.num_keypoints,
            "iscrowd": self.iscrowd,
            "area": self.area,
            "score": self.score,
            "source": self.source,
            "is_prediction": self.is_prediction,
        }

    @classmethod
    def from_row(cls, row: sqlite3.Row | tuple[Any, ...]) -> Annotation:
        (
            id_,
            image_id,
            category_id,
            x,
            y,
            w,
            h,
            segmentation,
            keypoints,
            num_keypoints,
            iscrowd,
            area,
            score,
            source,
            is_prediction,
            created_at,
            updated_at,
        ) = tuple(row)
        return cls(
            id=id_,
            image_id=image_id,
            category_id=category_id,
            bbox=(x, y, w, h),
            segmentation=json.loads(segmentation) if segmentation else None,
            keypoints=json.loads(keypoints) if keypoints else None,
            num_keypoints=num_keypoints,
            iscrowd=iscrowd,
            area=area,
            score=score,
            source=source,
            is_prediction=bool(is_prediction),
            created_at=created_at,
            updated_at=updated_at,
        )


ANNOTATION_COLUMNS = (
    "id, image_id, category_id, x, y, w, h, segmentation, keypoints, num_keypoints, iscrowd, "
    "area, score, source, is_prediction, created_at, updated_at"
)


@dataclass(frozen=True)
class Action:
    """One entry of the append-only action log (what, on which image, when, how long).

    Example:
        >>> Action(1, 0.0, "add", 3, 7, 1.5, {}).action
        'add'
    """

    id: int
    ts: float
    action: str
    image_id: int | None
    annotation_id: int | None
    duration: float | None
    payload: dict[str, Any]
    author: str = ""
    """Who made the edit (:attr:`Project.user` then); ``""`` in logs older than authorship."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Action:
        return cls(
            row["id"],
            row["ts"],
            row["action"],
            row["image_id"],
            row["annotation_id"],
            row["duration"],
            json.loads(row["payload"]),
            row["author"] if "author" in row.keys() else "",  # noqa: SIM118 (Row: `in` sees values)
        )


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of the reviewed annotations of some folders, taken in one read.

    Training reads a snapshot so that edits made while it runs never change a running epoch.

    Example:
        >>> Snapshot([], []).num_annotations
        0
    """

    categories: list[Category]
    items: list[tuple[Image, list[Annotation]]]

    @property
    def num_annotations(self) -> int:
        return sum(len(annotations) for _, annotations in self.items)
