"""The Project: images, categories, annotations and an action log in one SQLite file.

Every edit commits before the call returns (autosave): nothing lives only in memory, so a
killed kernel keeps every edit the UI showed as saved.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from annowidget.store import _schema
from annowidget.store.records import (
    ANNOTATION_COLUMNS,
    STATUSES,
    Action,
    Annotation,
    Category,
    Image,
    Snapshot,
)

DB_NAME = "project.sqlite"
_EDITABLE_FIELDS = {"bbox", "category_id", "segmentation", "keypoints", "iscrowd", "area"}


def _stored_images_root(root: Path, images: Path) -> str:
    # Relative when inside the project, so a project that holds its images moves as a whole.
    return os.path.relpath(images, root) if images.is_relative_to(root) else str(images)


class ProjectError(ValueError):
    """A project operation was refused; the message names the path or field at fault."""


def _now() -> float:
    return time.time()


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _check_bbox(bbox: Sequence[float], what: str = "bbox") -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise ProjectError(f"{what} must be four numbers [x, y, w, h], got {bbox!r}") from exc
    if not all(map(_is_finite, (x, y, w, h))):
        raise ProjectError(f"{what} has a non-finite value: {bbox!r}")
    if w < 0 or h < 0:
        raise ProjectError(f"{what} has a negative width or height: {bbox!r}")
    return (x, y, w, h)


def _is_finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


def _num_visible(keypoints: Sequence[float] | None) -> int:
    if not keypoints:
        return 0
    if len(keypoints) % 3:
        raise ProjectError(
            f"keypoints must be a flat list [x, y, v, ...], got {len(keypoints)} values"
        )
    return sum(1 for v in keypoints[2::3] if v > 0)


class Project:
    """A labeling project stored in one directory: ``project.sqlite`` plus ``models/``.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> project = Project.create(root / "proj", images_root=root)
        >>> project.add_category("raccoon").name
        'raccoon'
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.db_path = self.root / DB_NAME
        if not self.db_path.is_file():
            raise ProjectError(f"{self.root}: not an annowidget project (no {DB_NAME})")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        stored_root = self._meta("images_root")
        if stored_root is None:
            raise ProjectError(f"{self.db_path}: the images root is missing from the project")
        self.images_root = (self.root / stored_root).absolute()

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, path: str | os.PathLike[str], images_root: str | os.PathLike[str]) -> Project:
        """Create a new project directory whose images live under ``images_root``.

        The images root is stored relative to the project when it is inside it, absolute
        otherwise, so a project folder that holds its own images can be moved as a whole.
        """
        root = Path(path).absolute()
        if (root / DB_NAME).exists():
            raise ProjectError(f"{root}: a project already exists here")
        images = Path(images_root).absolute()
        if not images.is_dir():
            raise ProjectError(f"{images}: the images root is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        (root / "models").mkdir(exist_ok=True)
        (root / "cache").mkdir(exist_ok=True)
        stored = _stored_images_root(root, images)
        connection = sqlite3.connect(root / DB_NAME, isolation_level=None)
        try:
            _schema.configure(connection)
            connection.executescript(_schema.SCHEMA)
            connection.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(_schema.SCHEMA_VERSION)),
                    ("images_root", stored),
                    ("created", str(_now())),
                ],
            )
        finally:
            connection.close()
        return cls(root)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Project:
        """Open an existing project directory (or its ``project.sqlite`` file)."""
        root = Path(path)
        if root.name == DB_NAME:
            root = root.parent
        return cls(root)

    def relocate_images(self, images_root: str | os.PathLike[str]) -> tuple[int, int]:
        """Point the project at its images' new folder; returns (found there, images).

        Refuses a folder that holds none of the project's images: a typo would orphan them.

        Example:
            >>> # found, total = project.relocate_images("/data/raccoons-moved")
        """
        images = Path(images_root).absolute()
        if not images.is_dir():
            raise ProjectError(f"{images}: the images root is not a directory")
        paths = [image.path for image in self.images()]
        found = sum((images / path).is_file() for path in paths)
        if paths and not found:
            raise ProjectError(f"{images}: none of the project's {len(paths)} images are there")
        with self._write() as connection:
            connection.execute(
                "UPDATE meta SET value = ? WHERE key = 'images_root'",
                (_stored_images_root(self.root, images),),
            )
        self.images_root = images
        return found, len(paths)

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"

    # --------------------------------------------------------------- connections
    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection: SQLite connections must not be shared across threads."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.db_path, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            _schema.configure(connection)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed before the caller gets control back."""
        connection = self._db
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same snapshot of the file."""
        connection = self._db
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            connection.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ action log
    def _log(
        self,
        connection: sqlite3.Connection,
        action: str,
        image_id: int | None = None,
        annotation_id: int | None = None,
        duration: float | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        cursor = connection.execute(
            "INSERT INTO actions (ts, action, image_id, annotation_id, duration, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (_now(), action, image_id, annotation_id, duration, json.dumps(payload or {})),
        )
        return int(cursor.lastrowid)

    def log_action(
        self,
        action: str,
        *,
        image_id: int | None = None,
        annotation_id: int | None = None,
        duration: float | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Append an entry to the action log (e.g. ``"skip"``, ``"view"``) and return its id.

        Edits made through this class are logged automatically; this is for the rest.
        """
        with self._write() as connection:
            return self._log(connection, action, image_id, annotation_id, duration, payload)

    def actions(self, *, image_id: int | None = None, since_id: int = 0) -> list[Action]:
        """The action log in order, optionally for one image or after a known entry."""
        sql = "SELECT * FROM actions WHERE id > ?"
        args: list[Any] = [since_id]
        if image_id is not None:
            sql += " AND image_id = ?"
            args.append(image_id)
        rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [Action.from_row(row) for row in rows]

    # ------------------------------------------------------------------ categories
    def add_category(
        self,
        name: str,
        *,
        supercategory: str = "",
        keypoints: Sequence[str] | None = None,
        skeleton: Sequence[Sequence[int]] | None = None,
    ) -> Category:
        """Return the category called ``name``, creating it if the project has none yet.

        Categories are matched by name, so importing two datasets that both have ``person``
        gives one category.
        """
        name = str(name).strip()
        if not name:
            raise ProjectError("category name must not be empty")
        existing = self._category_by_name(name)
        if existing is not None:
            if keypoints and not existing.keypoints:
                with self._write() as connection:
                    connection.execute(
                        "UPDATE categories SET keypoints = ?, skeleton = ? WHERE id = ?",
                        (json.dumps(list(keypoints)), json.dumps(_skeleton(skeleton)), existing.id),
                    )
                return self.category(existing.id)
            return existing
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO categories (name, supercategory, keypoints, skeleton) "
                "VALUES (?, ?, ?, ?)",
                (
                    name,
                    supercategory,
                    json.dumps(list(keypoints or [])),
                    json.dumps(_skeleton(skeleton)),
                ),
            )
            self._log(connection, "add_category", payload={"name": name})
        return self.category(int(cursor.lastrowid))

    def _category_by_name(self, name: str) -> Category | None:
        row = self._db.execute("SELECT * FROM categories WHERE name = ?", (name,)).fetchone()
        return None if row is None else Category.from_row(row)

    def categories(self) -> list[Category]:
        """All categories, ordered by id."""
        rows = self._db.execute("SELECT * FROM categories ORDER BY id").fetchall()
        return [Category.from_row(row) for row in rows]

    def category(self, id_or_name: int | str) -> Category:
        """One category by id or by name; ``ProjectError`` if there is none."""
        if isinstance(id_or_name, str):
            found = self._category_by_name(id_or_name)
        else:
            row = self._db.execute(
                "SELECT * FROM categories WHERE id = ?", (int(id_or_name),)
            ).fetchone()
            found = None if row is None else Category.from_row(row)
        if found is None:
            raise ProjectError(f"category {id_or_name!r} does not exist in this project")
        return found

    # ---------------------------------------------------------------------- images
    def relative_path(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the images root, as posix text; refuses paths that escape it.

        The check is lexical (``..`` and absolute paths), so a file reached through a
        symbolic link inside the root is allowed, as the user put it there.
        """
        candidate = Path(path)
        absolute = candidate if candidate.is_absolute() else self.images_root / candidate
        normalized = Path(os.path.normpath(absolute))
        root = Path(os.path.normpath(self.images_root))
        if not normalized.is_relative_to(root) or normalized == root:
            raise ProjectError(
                f"{path}: outside the project's images root {root}; images must live under it"
            )
        return normalized.relative_to(root).as_posix()

    def image_path(self, image: Image | int) -> Path:
        """The absolute path of an image's file on disk."""
        if isinstance(image, int):
            image = self.image(image)
        return self.images_root / image.path

    def add_image(
        self,
        path: str | os.PathLike[str],
        *,
        folder: str = "unlabeled",
        width: int | None = None,
        height: int | None = None,
        checksum: str | None = None,
    ) -> Image:
        """Register an image file (absolute or relative to the images root).

        Without ``width``/``height`` the file is probed (and must decode). Adding a path the
        project already has returns the existing image unchanged.
        """
        relative = self.relative_path(path)
        existing = self.image_by_path(relative)
        if existing is not None:
            return existing
        if width is None or height is None or checksum is None:
            from annowidget.store.images import probe_image

            info = probe_image(self.images_root / relative)
            width, height, checksum = info.width, info.height, info.checksum
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO images (path, width, height, checksum, folder, status, added_at) "
                "VALUES (?, ?, ?, ?, ?, 'unlabeled', ?)",
                (relative, int(width), int(height), checksum, _folder(folder), _now()),
            )
            image_id = int(cursor.lastrowid)
            self._log(connection, "add_image", image_id=image_id, payload={"path": relative})
        return self.image(image_id)

    def add_images_bulk(self, rows: Iterable[dict[str, Any]], *, log: str = "import") -> list[int]:
        """Insert many already-probed images in one transaction; returns their ids in order.

        Each row has ``path`` (relative to the images root), ``width``, ``height`` and
        optionally ``checksum``, ``folder`` and ``status``. Paths are still checked.
        """
        now = _now()
        prepared = [
            (
                self.relative_path(row["path"]),
                int(row["width"]),
                int(row["height"]),
                row.get("checksum", ""),
                _folder(row.get("folder", "unlabeled")),
                _status(row.get("status", "unlabeled")),
                now,
            )
            for row in rows
        ]
        with self._write() as connection:
            first = connection.execute("SELECT COALESCE(MAX(id), 0) FROM images").fetchone()[0]
            connection.executemany(
                "INSERT INTO images (path, width, height, checksum, folder, status, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                prepared,
            )
            self._log(connection, log, payload={"images": len(prepared)})
        return list(range(first + 1, first + 1 + len(prepared)))

    def image(self, image_id: int) -> Image:
        """One image by id; ``ProjectError`` if there is none."""
        row = self._db.execute("SELECT * FROM images WHERE id = ?", (int(image_id),)).fetchone()
        if row is None:
            raise ProjectError(f"image {image_id} does not exist in this project")
        return Image.from_row(row)

    def image_by_path(self, path: str | os.PathLike[str]) -> Image | None:
        """The image stored at ``path`` (relative to the images root, or absolute), or None."""
        relative = self.relative_path(path)
        row = self._db.execute("SELECT * FROM images WHERE path = ?", (relative,)).fetchone()
        return None if row is None else Image.from_row(row)

    def images(
        self,
        *,
        folder: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        after_id: int | None = None,
    ) -> list[Image]:
        """Images ordered by id, filtered by folder(s) and status(es), one page at a time.

        ``after_id`` pages by key (the images after that id): unlike ``offset``, its cost
        does not grow with how far into the project the page is.

        Example:
            >>> # page = project.images(limit=100, after_id=previous_page[-1].id)
        """
        where, args = image_filter(folder, status)
        if after_id is not None:
            where = (where + " AND " if where else " WHERE ") + "id > ?"
            args.append(int(after_id))
        sql = f"SELECT * FROM images{where} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [int(limit), int(offset)]
        return [Image.from_row(row) for row in self._db.execute(sql, args).fetchall()]

    def count_images(
        self,
        *,
        folder: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
    ) -> int:
        """How many images match the filter (same filters as :meth:`images`)."""
        where, args = image_filter(folder, status)
        return int(self._db.execute(f"SELECT COUNT(*) FROM images{where}", args).fetchone()[0])

    def folders(self) -> list[str]:
        """The names of the folders that hold at least one image."""
        rows = self._db.execute("SELECT DISTINCT folder FROM images ORDER BY folder").fetchall()
        return [row[0] for row in rows]

    def set_status(self, image_id: int, status: str, *, duration: float | None = None) -> Image:
        """Mark an image unlabeled, predicted or reviewed (e.g. when the user submits it)."""
        status = _status(status)
        with self._write() as connection:
            before = self._image_status(connection, image_id)
            connection.execute("UPDATE images SET status = ? WHERE id = ?", (status, image_id))
            self._log(
                connection,
                "set_status",
                image_id=image_id,
                duration=duration,
                payload={"before": before, "after": status},
            )
        return self.image(image_id)

    def move_images(self, image_ids: Iterable[int], folder: str) -> int:
        """Move images to another folder (e.g. from ``unlabeled`` to ``train``)."""
        ids = [int(i) for i in image_ids]
        folder = _folder(folder)
        with self._write() as connection:
            connection.executemany(
                "UPDATE images SET folder = ? WHERE id = ?", [(folder, i) for i in ids]
            )
            self._log(connection, "move", payload={"images": ids, "folder": folder})
        return len(ids)

    def split(
        self,
        ratio: float = 0.8,
        *,
        seed: int = 0,
        source_folders: Sequence[str] | None = None,
        status: str | Sequence[str] | None = "reviewed",
        train: str = "train",
        test: str = "test",
    ) -> tuple[int, int]:
        """Split images into ``train`` and ``test`` folders by ``ratio``, reproducibly.

        By default the reviewed images of every folder are split. The same seed and the
        same images always give the same split.

        Example:
            >>> # project.split(0.8, seed=1) -> (160, 40) on 200 reviewed images
        """
        if not 0.0 < float(ratio) < 1.0:
            raise ProjectError(f"ratio must be between 0 and 1 (exclusive), got {ratio!r}")
        ids = [image.id for image in self.images(folder=source_folders, status=status)]
        random.Random(seed).shuffle(ids)
        n_train = round(len(ids) * float(ratio))
        if len(ids) >= 2:
            n_train = min(max(n_train, 1), len(ids) - 1)  # both folders get at least one image
        with self._write() as connection:
            connection.executemany(
                "UPDATE images SET folder = ? WHERE id = ?",
                [(train, i) for i in ids[:n_train]] + [(test, i) for i in ids[n_train:]],
            )
            self._log(
                connection,
                "split",
                payload={
                    "ratio": ratio,
                    "seed": seed,
                    "train": n_train,
                    "test": len(ids) - n_train,
                },
            )
        return n_train, len(ids) - n_train

    # ----------------------------------------------------------------- annotations
    def _image_status(self, connection: sqlite3.Connection, image_id: int) -> str:
        row = connection.execute("SELECT status FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise ProjectError(f"image {image_id} does not exist in this project")
        return str(row[0])

    def _refresh_status(self, connection: sqlite3.Connection, image_id: int, human: bool) -> None:
        """Keep an image's status in step with its annotations after an edit.

        Pending predictions make it ``predicted``; a person's edit with none left makes it
        ``reviewed``.
        """
        pending = connection.execute(
            "SELECT COUNT(*) FROM annotations WHERE image_id = ? AND is_prediction = 1",
            (image_id,),
        ).fetchone()[0]
        current = self._image_status(connection, image_id)
        if pending and current != "reviewed":
            new = "predicted"
        elif human and not pending:
            new = "reviewed"
        else:
            return
        if new != current:
            connection.execute("UPDATE images SET status = ? WHERE id = ?", (new, image_id))

    def _insert_annotation(
        self, connection: sqlite3.Connection, image_id: int, values: dict[str, Any]
    ) -> int:
        now = _now()
        x, y, w, h = _check_bbox(values["bbox"])
        keypoints = values.get("keypoints")
        area = values.get("area")
        cursor = connection.execute(
            f"INSERT INTO annotations ({ANNOTATION_COLUMNS.partition(', ')[2]}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image_id,
                int(values["category_id"]),
                x,
                y,
                w,
                h,
                _json_or_none(values.get("segmentation")),
                _json_or_none(keypoints),
                _num_visible(keypoints),
                int(values.get("iscrowd", 0)),
                float(w * h if area is None else area),
                None if values.get("score") is None else float(values["score"]),
                values.get("source", "human"),
                int(values.get("score") is not None),
                now,
                now,
            ),
        )
        return int(cursor.lastrowid)

    def add_annotation(
        self,
        image_id: int,
        category_id: int,
        bbox: Sequence[float],
        *,
        segmentation: Any = None,
        keypoints: Sequence[float] | None = None,
        iscrowd: int = 0,
        score: float | None = None,
        source: str = "human",
        area: float | None = None,
        duration: float | None = None,
    ) -> Annotation:
        """Add an annotation; with a ``score`` it is a prediction waiting for review.

        Example:
            >>> # project.add_annotation(image.id, raccoon.id, [10, 20, 100, 80])
        """
        self.category(category_id)  # a clear error instead of a foreign-key failure
        values = {
            "category_id": category_id,
            "bbox": bbox,
            "segmentation": segmentation,
            "keypoints": None if keypoints is None else list(keypoints),
            "iscrowd": iscrowd,
            "score": score,
            "source": source,
            "area": area,
        }
        with self._write() as connection:
            self._image_status(connection, image_id)
            annotation_id = self._insert_annotation(connection, image_id, values)
            after = self._annotation(connection, annotation_id)
            self._log(
                connection,
                "add",
                image_id=image_id,
                annotation_id=annotation_id,
                duration=duration,
                payload={"after": after.to_dict()},
            )
            self._refresh_status(connection, image_id, human=score is None)
        return after

    def _annotation(self, connection: sqlite3.Connection, annotation_id: int) -> Annotation:
        row = connection.execute(
            f"SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE id = ?", (annotation_id,)
        ).fetchone()
        if row is None:
            raise ProjectError(f"annotation {annotation_id} does not exist in this project")
        return Annotation.from_row(row)

    def annotation(self, annotation_id: int) -> Annotation:
        """One annotation by id; ``ProjectError`` if there is none."""
        return self._annotation(self._db, annotation_id)

    def update_annotation(
        self, annotation_id: int, *, duration: float | None = None, **fields: Any
    ) -> Annotation:
        """Change an annotation's ``bbox``, ``category_id``, ``segmentation``, ``keypoints``...

        Editing a prediction makes it a person's annotation: its score is dropped and it
        counts as reviewed (the action log keeps what the model had predicted).
        """
        unknown = set(fields) - _EDITABLE_FIELDS
        if unknown:
            raise ProjectError(f"cannot edit field(s) {sorted(unknown)} of an annotation")
        if "category_id" in fields:
            self.category(fields["category_id"])
        with self._write() as connection:
            before = self._annotation(connection, annotation_id)
            values = before.to_dict()
            values.update(fields)
            if "bbox" in fields and "area" not in fields:
                values["area"] = None  # recompute from the new box
            assignments = self._update_values(values)
            connection.execute(
                "UPDATE annotations SET x=?, y=?, w=?, h=?, category_id=?, segmentation=?, "
                "keypoints=?, num_keypoints=?, iscrowd=?, area=?, score=NULL, is_prediction=0, "
                "updated_at=? WHERE id = ?",
                (*assignments, _now(), annotation_id),
            )
            after = self._annotation(connection, annotation_id)
            self._log(
                connection,
                "update",
                image_id=before.image_id,
                annotation_id=annotation_id,
                duration=duration,
                payload={"before": before.to_dict(), "after": after.to_dict()},
            )
            self._refresh_status(connection, before.image_id, human=True)
        return after

    @staticmethod
    def _update_values(values: dict[str, Any]) -> tuple[Any, ...]:
        x, y, w, h = _check_bbox(values["bbox"])
        keypoints = values.get("keypoints")
        area = values.get("area")
        return (
            x,
            y,
            w,
            h,
            int(values["category_id"]),
            _json_or_none(values.get("segmentation")),
            _json_or_none(keypoints),
            _num_visible(keypoints),
            int(values.get("iscrowd", 0)),
            float(w * h if area is None else area),
        )

    def accept_prediction(self, annotation_id: int, *, duration: float | None = None) -> Annotation:
        """Accept a prediction unchanged: it becomes a reviewed annotation."""
        with self._write() as connection:
            before = self._annotation(connection, annotation_id)
            connection.execute(
                "UPDATE annotations SET is_prediction = 0, updated_at = ? WHERE id = ?",
                (_now(), annotation_id),
            )
            after = self._annotation(connection, annotation_id)
            self._log(
                connection,
                "accept",
                image_id=before.image_id,
                annotation_id=annotation_id,
                duration=duration,
                payload={"before": before.to_dict(), "after": after.to_dict()},
            )
            self._refresh_status(connection, before.image_id, human=True)
        return after

    def delete_annotation(self, annotation_id: int, *, duration: float | None = None) -> None:
        """Delete an annotation (or reject a prediction); the log keeps what it was."""
        with self._write() as connection:
            before = self._annotation(connection, annotation_id)
            connection.execute("DELETE FROM annotations WHERE id = ?", (annotation_id,))
            self._log(
                connection,
                "reject" if before.is_prediction else "delete",
                image_id=before.image_id,
                annotation_id=annotation_id,
                duration=duration,
                payload={"before": before.to_dict()},
            )
            self._refresh_status(connection, before.image_id, human=True)

    def restore_annotation(self, values: dict[str, Any]) -> Annotation:
        """Put back a deleted annotation with its original id (used by undo)."""
        with self._write() as connection:
            annotation_id = int(values["id"])
            exists = connection.execute(
                "SELECT 1 FROM annotations WHERE id = ?", (annotation_id,)
            ).fetchone()
            if exists:
                raise ProjectError(f"annotation {annotation_id} already exists")
            new_id = self._insert_annotation(connection, int(values["image_id"]), values)
            connection.execute(
                "UPDATE annotations SET id = ?, is_prediction = ? WHERE id = ?",
                (annotation_id, int(bool(values.get("is_prediction"))), new_id),
            )
            after = self._annotation(connection, annotation_id)
            self._log(
                connection,
                "restore",
                image_id=after.image_id,
                annotation_id=annotation_id,
                payload={"after": after.to_dict()},
            )
            self._refresh_status(connection, after.image_id, human=not after.is_prediction)
        return after

    def replace_predictions(
        self, image_id: int, predictions: Iterable[dict[str, Any]], *, source: str
    ) -> list[Annotation]:
        """Swap an image's pending predictions for new ones; reviewed annotations stay.

        Each prediction is a dict with ``category_id``, ``bbox`` and ``score`` (and optionally
        ``segmentation``, ``keypoints``).
        """
        with self._write() as connection:
            self._image_status(connection, image_id)
            connection.execute(
                "DELETE FROM annotations WHERE image_id = ? AND is_prediction = 1", (image_id,)
            )
            ids = []
            for prediction in predictions:
                values = dict(prediction, source=source)
                if values.get("score") is None:
                    raise ProjectError(f"prediction for image {image_id} has no score")
                ids.append(self._insert_annotation(connection, image_id, values))
            self._log(
                connection,
                "predict",
                image_id=image_id,
                payload={"source": source, "annotations": ids},
            )
            self._refresh_status(connection, image_id, human=False)
            return [self._annotation(connection, i) for i in ids]

    def add_annotations_bulk(
        self, rows: Iterable[tuple[int, dict[str, Any]]], *, log: str = "import"
    ) -> int:
        """Insert many ``(image_id, values)`` annotations in one transaction (imports).

        Images that get a person's annotation are marked ``reviewed``; rows with a ``score``
        are predictions and leave their image ``predicted`` (unless already reviewed).
        """
        count = 0
        with self._write() as connection:
            reviewed, predicted = set(), set()
            for image_id, values in rows:
                self._insert_annotation(connection, image_id, values)
                (predicted if values.get("score") is not None else reviewed).add(image_id)
                count += 1
            connection.executemany(
                "UPDATE images SET status = 'reviewed' WHERE id = ?", [(i,) for i in reviewed]
            )
            connection.executemany(
                "UPDATE images SET status = 'predicted' WHERE id = ? AND status = 'unlabeled'",
                [(i,) for i in predicted - reviewed],
            )
            self._log(connection, log, payload={"annotations": count})
        return count

    def annotations(
        self, image_id: int | None = None, *, predictions: bool | None = None
    ) -> list[Annotation]:
        """Annotations of one image (or all), optionally only predictions or only reviewed."""
        sql = f"SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE 1"
        args: list[Any] = []
        if image_id is not None:
            sql += " AND image_id = ?"
            args.append(int(image_id))
        if predictions is not None:
            sql += " AND is_prediction = ?"
            args.append(int(predictions))
        rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [Annotation.from_row(row) for row in rows]

    def annotations_for(self, image_ids: Sequence[int]) -> dict[int, list[Annotation]]:
        """Annotations of several images in one query (a page of the gallery, say)."""
        result: dict[int, list[Annotation]] = {int(i): [] for i in image_ids}
        ids = list(result)
        for start in range(0, len(ids), 500):  # stay under SQLite's variable limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE image_id IN ({marks}) "
                "ORDER BY id",
                chunk,
            ).fetchall()
            for row in rows:
                annotation = Annotation.from_row(row)
                result[annotation.image_id].append(annotation)
        return result

    # -------------------------------------------------------------------- readers
    def snapshot(
        self,
        folders: str | Sequence[str] | None = None,
        *,
        status: str | Sequence[str] | None = "reviewed",
    ) -> Snapshot:
        """The images of ``folders`` with their reviewed annotations, read in one transaction.

        Predictions that are still pending are left out: training learns from people's labels.
        """
        with self._read():
            categories = self.categories()
            images = self.images(folder=folders, status=status)
            by_image = self.annotations_for([image.id for image in images])
        items = [
            (image, [a for a in by_image[image.id] if not a.is_prediction]) for image in images
        ]
        return Snapshot(categories=categories, items=items)

    def info(self) -> dict[str, Any]:
        """Counts per folder, per status and per category (what ``annowidget info`` shows)."""
        with self._read() as db:
            folders = dict(db.execute("SELECT folder, COUNT(*) FROM images GROUP BY folder"))
            statuses = dict(db.execute("SELECT status, COUNT(*) FROM images GROUP BY status"))
            per_category = {
                name: {"annotations": n, "predictions": p}
                for name, n, p in db.execute(
                    "SELECT c.name, COUNT(a.id) - COALESCE(SUM(a.is_prediction), 0), "
                    "COALESCE(SUM(a.is_prediction), 0) "
                    "FROM categories c LEFT JOIN annotations a ON a.category_id = c.id "
                    "GROUP BY c.id ORDER BY c.id"
                )
            }
            images = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            annotations = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(is_prediction), 0) FROM annotations"
            ).fetchone()
        return {
            "project": str(self.root),
            "images_root": str(self.images_root),
            "images": images,
            "annotations": annotations[0] - annotations[1],
            "predictions": annotations[1],
            "folders": folders,
            "status": {s: statuses.get(s, 0) for s in STATUSES},
            "categories": per_category,
        }


def _folder(folder: str) -> str:
    folder = str(folder).strip()
    if not folder or "/" in folder or "\\" in folder:
        raise ProjectError(f"folder name {folder!r} must be a non-empty name without slashes")
    return folder


def _status(status: str) -> str:
    if status not in STATUSES:
        raise ProjectError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    return status


def _skeleton(skeleton: Sequence[Sequence[int]] | None) -> list[list[int]]:
    return [[int(a), int(b)] for a, b in (skeleton or [])]


def image_filter(
    folder: str | Sequence[str] | None,
    status: str | Sequence[str] | None,
    *,
    table: str = "",
) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause selecting images by folder(s) and status(es), with its arguments.

    ``table`` prefixes the columns when the ``images`` table is aliased in a join.

    Example:
        >>> image_filter("train", ["reviewed"], table="i")
        (' WHERE i.folder IN (?) AND i.status IN (?)', ['train', 'reviewed'])
    """
    prefix = f"{table}." if table else ""
    clauses, args = [], []
    for column, value in ((f"{prefix}folder", folder), (f"{prefix}status", status)):
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        clauses.append(f"{column} IN ({','.join('?' * len(values))})")
        args.extend(values)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args
