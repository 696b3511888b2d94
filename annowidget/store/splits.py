"""Train/test splits that keep earlier assignments, so test images stay test images.

Which images a split (or a move) placed is read back from the action log: a ``split``
entry names the images it assigned, a ``move`` entry the images it moved.

Example:
    >>> # with project.write() as connection:
    >>> #     n_train, n_test = assign(connection, images, 0.8, seed=1)
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Sequence

from annowidget.store import annotations
from annowidget.store.records import Image


def assigned(connection: sqlite3.Connection, folders: Sequence[str]) -> dict[int, str]:
    """``image id -> folder`` of the images a split or a move last put in ``folders``."""
    placed: dict[int, str] = {}
    for action, payload in connection.execute(
        "SELECT action, payload FROM actions WHERE action IN ('split', 'move') ORDER BY id"
    ):
        data = json.loads(payload)
        if action == "move":
            pairs = [(data.get("folder"), data.get("images", []))]
        else:
            pairs = list(data.get("assigned", {}).items())
        for folder, ids in pairs:
            for i in ids:
                placed[int(i)] = folder
    return {i: f for i, f in placed.items() if f in folders}


def assign(
    connection: sqlite3.Connection,
    images: Sequence[Image],
    ratio: float,
    *,
    seed: int,
    train: str = "train",
    test: str = "test",
    reshuffle: bool = False,
) -> tuple[int, int]:
    """Put ``images`` in ``train``/``test`` by ``ratio``; the totals ``(train, test)``.

    Images already placed there by an earlier split or move keep their folder unless
    ``reshuffle``; the others are shuffled with ``seed`` and fill the folders so that the
    totals follow ``ratio`` (both get at least one image when there are two).
    """
    kept = {} if reshuffle else assigned(connection, (train, test))
    fixed = [i for i in images if kept.get(i.id) == i.folder]
    new = [i.id for i in images if kept.get(i.id) != i.folder]
    random.Random(seed).shuffle(new)
    total = len(fixed) + len(new)
    n_train = round(total * float(ratio))
    if total >= 2:
        n_train = min(max(n_train, 1), total - 1)
    in_train = sum(i.folder == train for i in fixed)
    take = min(max(n_train - in_train, 0), len(new))
    moves = {train: new[:take], test: new[take:]}
    connection.executemany(
        "UPDATE images SET folder = ? WHERE id = ?",
        [(folder, i) for folder, ids in moves.items() for i in ids],
    )
    n_train = in_train + take
    payload = {"ratio": ratio, "seed": seed, "train": n_train, "test": total - n_train}
    annotations.log(connection, "split", payload={**payload, "assigned": moves})
    return n_train, total - n_train
