"""The Project: images, categories, annotations and an action log in one SQLite file, or
in a PostgreSQL database shared by a room of annotators (``Project.create(..., db=DSN)``).

Every edit commits before the call returns (autosave): nothing lives only in memory, so a
killed kernel keeps every edit the UI showed as saved. The annotation write path lives in
:mod:`annowidget.store.annotations`, bulk reads in :mod:`annowidget.store.queries`.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from annowidget.store import _schema, annotations, categories, imports, leases, queries, splits
from annowidget.store._connection import Connections
from annowidget.store._postgres import PostgresConnections, describe
from annowidget.store.annotations import check_status
from annowidget.store.categories import category_name
from annowidget.store.errors import ChangedElsewhereError, ProjectError
from annowidget.store.imports import ImportItem, ImportOutcome, folder_name
from annowidget.store.queries import image_filter
from annowidget.store.records import (
    Action,
    Annotation,
    Category,
    Image,
    Snapshot,
)

__all__ = [
    "DB_NAME",
    "POINTER_NAME",
    "ChangedElsewhereError",
    "Project",
    "ProjectError",
    "image_filter",
]

DB_NAME = "project.sqlite"
POINTER_NAME = "project.json"
"""A project on a PostgreSQL server keeps only this pointer (``{"db": DSN}``) and ``models/``
in its folder. The DSN is stored as given: leave the password out of it and let libpq find
it (``PGPASSWORD`` or ``~/.pgpass``) to keep it out of the shared folder."""
SPLIT_FOLDERS = ("unlabeled", "train", "test")
"""Folders ``split`` manages by default; any other folder (``holdout``...) is left alone."""
_IMPORT_BUDGET_S = 0.5  # longest an import holds the write lock before letting others in


def _stored_images_root(root: Path, images: Path) -> str:
    # Relative when inside the project, so a project that holds its images moves as a whole.
    return os.path.relpath(images, root) if images.is_relative_to(root) else str(images)


def default_user() -> str:
    """Who edits: ``$ANNOWIDGET_USER``, else the login name (``"unknown"`` if there is none).

    Example:
        >>> isinstance(default_user(), str)
        True
    """
    name = os.environ.get("ANNOWIDGET_USER", "").strip()
    if name:
        return check_user(name, field="ANNOWIDGET_USER")
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return "unknown"


MAX_USER_CHARS = 64
"""The longest annotator name: it is written on every log row and shown in tables."""


def check_user(name: object, *, field: str = "user") -> str:
    """An annotator name as stored: surrounding spaces removed; blank, overlong or
    control characters raise :class:`ProjectError` naming ``field``.

    Example:
        >>> check_user("  ana ")
        'ana'
    """
    text = str(name).strip() if isinstance(name, str) else ""
    if not text:
        raise ProjectError(f"{field}: an annotator name must not be blank; got {name!r}")
    if len(text) > MAX_USER_CHARS:
        raise ProjectError(f"{field}: at most {MAX_USER_CHARS} characters; got {len(text)}")
    if not text.isprintable():
        raise ProjectError(f"{field}: {text!r} holds control characters")
    return text


def _read_pointer(pointer: Path) -> str:
    try:
        dsn = json.loads(pointer.read_text(encoding="utf-8"))["db"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProjectError(f"{pointer}: not a readable project pointer ({exc})") from None
    if not isinstance(dsn, str) or not dsn.startswith(("postgresql://", "postgres://")):
        raise ProjectError(f"{pointer}: field 'db' must be a postgresql:// address")
    return dsn


class Project:
    """A labeling project stored in one directory: ``project.sqlite`` plus ``models/``.

    Or, for a team, on a PostgreSQL server: the directory then holds ``project.json``
    (the server's address) and ``models/``, on a path every participant can read.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> project = Project.create(root / "proj", images_root=root)
        >>> project.add_category("raccoon").name
        'raccoon'
    """

    def __init__(self, root: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.root = Path(root).absolute()
        self.db_path = self.root / DB_NAME
        self.readonly = readonly
        self.user = default_user()  # first: a bad $ANNOWIDGET_USER leaves nothing open
        self.dsn: str | None = None
        pointer = self.root / POINTER_NAME
        if pointer.is_file():
            self.dsn = _read_pointer(pointer)
            self.db_path = pointer
            self._connections: Connections | PostgresConnections = PostgresConnections(
                self.dsn, readonly=readonly
            )
        elif not self.db_path.is_file():
            raise ProjectError(f"{self.root}: not an annowidget project (no {DB_NAME})")
        else:
            self._connections = Connections(self.db_path, readonly=readonly)
        try:
            if self.dsn is None and not readonly:
                _schema.upgrade(self._db)
            stored_root = self._meta("images_root")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._connections.broken(exc) from None
        if stored_root is None:
            raise ProjectError(f"{self.db_path}: the images root is missing from the project")
        self.images_root = (self.root / stored_root).absolute()

    @property
    def user(self) -> str:
        """Who this object's edits, log rows and leases are signed with; settable (the
        app's annotator field), checked by :func:`check_user`."""
        return self._user

    @user.setter
    def user(self, name: str) -> None:
        self._user = check_user(name)

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        images_root: str | os.PathLike[str],
        *,
        db: str | None = None,
    ) -> Project:
        """Create a new project directory whose images live under ``images_root``.

        The images root is stored relative to the project when it is inside it, absolute
        otherwise, so a project folder that holds its own images can be moved as a whole.
        ``db`` (``postgresql://user@host/database``, an empty database) puts the project
        on a PostgreSQL server; without it the project is one SQLite file in the folder.

        Example:
            >>> # Project.create("/shared/raccoons", "/shared/images",
            >>> #                db="postgresql://annowidget@db.lan/raccoons")
        """
        root = Path(path).absolute()
        if (root / DB_NAME).exists() or (root / POINTER_NAME).exists():
            raise ProjectError(f"{root}: a project already exists here")
        if db is not None and not str(db).startswith(("postgresql://", "postgres://")):
            raise ProjectError(f"--db {db!r}: expected a postgresql://user@host/database address")
        images = Path(images_root).absolute()
        if not images.is_dir():
            raise ProjectError(f"{images}: the images root is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        (root / "models").mkdir(exist_ok=True)
        (root / "cache").mkdir(exist_ok=True)
        stored = _stored_images_root(root, images)
        if db is None:
            _schema.create(root / DB_NAME, images_root=stored)
        else:
            _schema.create_postgres(db, images_root=stored)
            (root / POINTER_NAME).write_text(json.dumps({"db": db}) + "\n", encoding="utf-8")
        return cls(root)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "sqlite" if self.dsn is None else "postgresql"

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> Project:
        """Open an existing project directory (or its ``project.sqlite`` file).

        ``readonly=True`` (``annowidget info``) also works on a folder the user cannot
        write to, and refuses every edit.
        """
        root = Path(path)
        if root.name == DB_NAME:
            root = root.parent
        return cls(root, readonly=readonly)

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
        with self.write() as connection:
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
        self._connections.close()

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
        return self._connections.get()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed before the caller gets control back.

        Nested calls (in one thread) join the outer transaction as savepoints, so a group
        of edits (a batch, an undo step) lands whole or not at all.

        Example:
            >>> # with project.write():
            >>> #     project.delete_annotation(3); project.delete_annotation(4)
        """
        if self.readonly:
            raise ProjectError(f"{self.root}: opened read-only; cannot change the project")
        token = annotations.AUTHOR.set(self.user)
        try:
            with self._connections.transaction("BEGIN IMMEDIATE") as connection:
                yield connection
        finally:
            annotations.AUTHOR.reset(token)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same snapshot of the file.

        Use it around the bulk reads of :mod:`annowidget.store.queries`.

        Example:
            >>> # with project.read() as connection:
            >>> #     counts = queries.counts(connection)
        """
        with self._connections.transaction("BEGIN") as connection:
            yield connection

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ action log
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
        with self.write() as connection:
            return annotations.log(connection, action, image_id, annotation_id, duration, payload)

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

        Categories are matched by name (NFC-normalised, so a composed and a decomposed
        ``café`` are one), so importing two datasets that both have ``person`` gives one
        category. Names with control characters (a newline...) are refused: they break
        every export format. The check and the insert share one write transaction, so two
        processes adding the same name get the same category.
        """
        existing = categories.by_name(self._db, category_name(name))
        if existing is not None and (existing.keypoints or not keypoints):
            return existing  # the common case: no write, no lock
        with self.write() as connection:
            category_id = categories.add(connection, name, supercategory, keypoints, skeleton)
        return self.category(category_id)

    def categories(self) -> list[Category]:
        """All categories, ordered by id."""
        rows = self._db.execute("SELECT * FROM categories ORDER BY id").fetchall()
        return [Category.from_row(row) for row in rows]

    def category(self, id_or_name: int | str) -> Category:
        """One category by id or by name; ``ProjectError`` if there is none."""
        if isinstance(id_or_name, str):
            found = categories.by_name(self._db, id_or_name)
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
        """The absolute path of an image's file on disk (checked to lie under the root)."""
        if isinstance(image, int):
            image = self.image(image)
        return queries.checked_path(self.images_root, image.path, image.id)

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
        item = ImportItem(relative, int(width), int(height), checksum, folder_name(folder))
        with self.write() as connection:
            outcome = imports.import_item(connection, item, "human")
            if outcome.error is not None:
                raise ProjectError(f"{relative}: {outcome.error}")
            if outcome.new:
                annotations.log(
                    connection, "add_image", outcome.image_id, payload={"path": relative}
                )
        return self.image(int(outcome.image_id or 0))

    def add_images_bulk(self, rows: Iterable[dict[str, Any]], *, log: str = "import") -> list[int]:
        """Insert many already-probed images in one transaction; returns their ids in order.

        Each row has ``path`` (relative to the images root), ``width``, ``height`` and
        optionally ``checksum``, ``folder`` and ``status``. Paths are still checked.
        """
        prepared = imports.image_rows(rows, self.relative_path)
        with self.write() as connection:
            return imports.insert_images(connection, prepared, log)

    def import_images(
        self, items: Iterable[ImportItem], *, source: str = "import"
    ) -> Iterator[ImportOutcome]:
        """Add images with their annotations, each image all-or-nothing; yields an outcome each.

        An image and its annotations commit together (a killed import never leaves an
        image reviewed without its boxes); an image the project has keeps its row and only
        gains the boxes it lacks, so running one import twice stores nothing twice; one bad
        annotation skips its image (``outcome.error``). Commits every ~0.5 s so that no
        import holds the write lock long enough to time out another writer.

        Example:
            >>> # item = ImportItem("a.jpg", 640, 480, status="reviewed",
            >>> #                   annotations=[{"category_id": 1, "bbox": [0, 0, 9, 9]}])
            >>> # [outcome.added for outcome in project.import_images([item])]
        """
        return imports.import_all(self.write, items, source, self.relative_path)

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
        skip_leased: bool = False,
    ) -> list[Image]:
        """Images ordered by id, filtered by folder(s) and status(es), one page at a time.

        ``after_id`` pages by key (the images after that id): unlike ``offset``, its cost
        does not grow with how far into the project the page is. ``skip_leased`` leaves out
        the images another annotator holds a live lease on (see :meth:`lease`).

        Example:
            >>> # page = project.images(limit=100, after_id=previous_page[-1].id)
        """
        where, args = image_filter(folder, status)
        if after_id is not None:
            where = (where + " AND " if where else " WHERE ") + "id > ?"
            args.append(int(after_id))
        if skip_leased:
            where = (where + " AND " if where else " WHERE ") + leases.others_clause()
            args += [self.user, annotations.now()]
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
        status = check_status(status)
        with self.write() as connection:
            before = annotations.image_status(connection, image_id)
            connection.execute("UPDATE images SET status = ? WHERE id = ?", (status, image_id))
            payload = {"before": before, "after": status}
            annotations.log(connection, "set_status", image_id, None, duration, payload)
        return self.image(image_id)

    def move_images(self, image_ids: Iterable[int], folder: str) -> int:
        """Move images to another folder (e.g. from ``unlabeled`` to ``train``)."""
        ids = [int(i) for i in image_ids]
        folder = folder_name(folder)
        with self.write() as connection:
            connection.executemany(
                "UPDATE images SET folder = ? WHERE id = ?", [(folder, i) for i in ids]
            )
            annotations.log(connection, "move", payload={"images": ids, "folder": folder})
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
        reshuffle: bool = False,
    ) -> tuple[int, int]:
        """Split images into ``train`` and ``test`` by ``ratio``, reproducibly; the totals.

        Images an earlier split (or a move) put in ``train``/``test`` stay there, so a
        test image never becomes a training one behind the user's back; only new images
        (imported, or labeled since) are split, so that the totals follow ``ratio``. By
        default the reviewed images of ``unlabeled``, ``train`` and ``test`` are split;
        other folders (``holdout``...) only when named in ``source_folders``.
        ``reshuffle=True`` splits every one of them afresh.

        Example:
            >>> # project.split(0.8, seed=1) -> (160, 40) on 200 reviewed images
        """
        if not 0.0 < float(ratio) < 1.0:
            raise ProjectError(f"ratio must be between 0 and 1 (exclusive), got {ratio!r}")
        folders = list(source_folders or dict.fromkeys((*SPLIT_FOLDERS, train, test)))
        with self.write() as connection:
            images = self.images(folder=folders, status=status)
            return splits.assign(
                connection, images, ratio, seed=seed, train=train, test=test, reshuffle=reshuffle
            )

    # ---------------------------------------------------------------------- leases
    def lease(self, image_id: int, *, seconds: float | None = None) -> bool:
        """Lease an image to :attr:`user` (or renew their lease); False if another
        annotator's live lease stands. Leases run out after ``seconds`` (default
        :data:`~annowidget.store.leases.LEASE_S`) without an edit on the image.

        Example:
            >>> # if project.lease(image.id): annotate(image)
        """
        with self.write() as connection:
            annotations.image_status(connection, image_id)
            span = leases.LEASE_S if seconds is None else float(seconds)
            return leases.take(connection, image_id, self.user, annotations.now(), span) is None

    def release(self, image_id: int, *, author: str | None = None) -> None:
        """Give back ``author``'s (default :attr:`user`'s) lease on an image: moving on,
        closing the widget, or handing the keyboard to someone else.

        Example:
            >>> # project.release(image.id, author="ana")  # ana's name left the header
        """
        with self.write() as connection:
            leases.release(connection, image_id, self.user if author is None else author)

    def lease_holder(self, image_id: int) -> str | None:
        """Who holds a live lease on the image, or None."""
        return leases.holder(self._db, image_id, annotations.now())

    def live_leases(self, *, others: bool = True) -> dict[int, leases.Lease]:
        """The live leases by image id: who is labeling what right now (the Gallery's
        badges). ``others=True`` leaves out :attr:`user`'s own.

        Example:
            >>> # {image_id: lease.author for image_id, lease in project.live_leases().items()}
        """
        live = leases.live(self._db, annotations.now())
        if not others:
            return live
        return {i: lease for i, lease in live.items() if lease.author != self.user}

    def next_unlabeled(
        self,
        *,
        folder: str | Sequence[str] | None = None,
        after_id: int | None = None,
        status: Sequence[str] = ("unlabeled", "predicted"),
        seconds: float | None = None,
    ) -> Image | None:
        """The next image that needs work and nobody else holds, leased to :attr:`user`.

        Looks after ``after_id`` first, then wraps around. The choice and the lease are one
        write transaction, so two annotators asking at once never get the same image.
        None when every such image is done or leased to someone else.

        Example:
            >>> # image = project.next_unlabeled(folder="unlabeled", after_id=current.id)
        """
        span = leases.LEASE_S if seconds is None else float(seconds)
        with self.write() as connection:
            where, args = image_filter(folder, list(status))
            where = (where + " AND " if where else " WHERE ") + leases.others_clause()
            stamp = annotations.now()
            args += [self.user, stamp]
            for extra, extra_args in ((" AND id > ?", [int(after_id or 0)]), ("", [])):
                row = connection.execute(
                    f"SELECT * FROM images{where}{extra} ORDER BY id LIMIT 1", args + extra_args
                ).fetchone()
                if row is not None:
                    image = Image.from_row(row)
                    leases.take(connection, image.id, self.user, stamp, span)
                    return image
        return None

    # ----------------------------------------------------------------- annotations
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
        with self.write() as connection:
            return annotations.add(connection, image_id, values, duration)

    def annotation(self, annotation_id: int) -> Annotation:
        """One annotation by id; ``ProjectError`` if there is none."""
        return annotations.fetch(self._db, annotation_id)

    def update_annotation(
        self,
        annotation_id: int,
        *,
        duration: float | None = None,
        expected: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Annotation:
        """Change an annotation's ``bbox``, ``category_id``, ``segmentation``, ``keypoints``...

        Editing a prediction makes it a person's annotation: its score is dropped and it
        counts as reviewed (the action log keeps what the model had predicted). With
        ``expected`` (an :meth:`Annotation.to_dict`), a row that no longer matches it raises
        :class:`ChangedElsewhereError` and nothing changes (undo across two views).

        Two annotators editing one annotation: **the last writer wins**. Edits are
        serialised (one write transaction at a time, on SQLite and PostgreSQL alike); the
        later commit replaces the fields it sets, and the log keeps both edits, each with
        its ``before``/``after`` and its author, so the overwritten one can be recovered.
        An edit of an annotation someone deleted meanwhile is refused (it does not exist).
        """
        if "category_id" in fields:
            self.category(fields["category_id"])
        with self.write() as connection:
            return annotations.update(connection, annotation_id, fields, duration, expected)

    def accept_prediction(
        self,
        annotation_id: int,
        *,
        duration: float | None = None,
        expected: dict[str, Any] | None = None,
    ) -> Annotation:
        """Accept a prediction unchanged: it becomes a reviewed annotation."""
        with self.write() as connection:
            return annotations.accept(connection, annotation_id, duration, expected)

    def delete_annotation(
        self,
        annotation_id: int,
        *,
        duration: float | None = None,
        expected: dict[str, Any] | None = None,
    ) -> None:
        """Delete an annotation (or reject a prediction); the log keeps what it was."""
        with self.write() as connection:
            annotations.delete(connection, annotation_id, duration, expected)

    def restore_annotation(self, values: dict[str, Any]) -> Annotation:
        """Put back a deleted annotation with its original id (used by undo)."""
        with self.write() as connection:
            return annotations.restore(connection, values)

    def replace_predictions(
        self, image_id: int, predictions: Iterable[dict[str, Any]], *, source: str
    ) -> list[Annotation]:
        """Swap an image's pending predictions for new ones; reviewed annotations stay.

        Each prediction is a dict with ``category_id``, ``bbox`` and ``score`` (and optionally
        ``segmentation``, ``keypoints``).
        """
        with self.write() as connection:
            return annotations.replace_predictions(connection, image_id, predictions, source)

    def add_annotations_bulk(
        self, rows: Iterable[tuple[int, dict[str, Any]]], *, log: str = "import"
    ) -> int:
        """Insert many ``(image_id, values)`` annotations in one transaction (imports).

        Images that get a person's annotation are marked ``reviewed``; rows with a ``score``
        are predictions and leave their image ``predicted`` (unless already reviewed).
        """
        with self.write() as connection:
            return annotations.add_bulk(connection, rows, log)

    def annotations(
        self, image_id: int | None = None, *, predictions: bool | None = None
    ) -> list[Annotation]:
        """Annotations of one image (or all), optionally only predictions or only reviewed."""
        return queries.annotations(self._db, image_id, predictions)

    def annotations_for(self, image_ids: Sequence[int]) -> dict[int, list[Annotation]]:
        """Annotations of several images in one query (a page of the gallery, say)."""
        return queries.annotations_for(self._db, image_ids)

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
        with self.read() as connection:
            categories = self.categories()
            images = self.images(folder=folders, status=status)
            by_image = queries.annotations_for(connection, [image.id for image in images])
        items = [
            (image, [a for a in by_image[image.id] if not a.is_prediction]) for image in images
        ]
        return Snapshot(categories=categories, items=items)

    def info(self) -> dict[str, Any]:
        """Counts per folder, per status and per category (what ``annowidget info`` shows)."""
        try:
            with self.read() as connection:
                counts = queries.counts(connection)
        except sqlite3.DatabaseError as exc:
            raise self._connections.broken(exc) from None
        where = {} if self.dsn is None else {"db": describe(self.dsn)}
        return {
            "project": str(self.root),
            "images_root": str(self.images_root),
            **where,
            **counts,
        }
