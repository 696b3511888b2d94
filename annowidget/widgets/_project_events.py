"""Tell every open widget of a project what changed, so none shows a stale view.

Widgets on one project (the app's tabs, an Annotator in another cell) subscribe by kind;
whoever changes the store publishes: the Annotator after each saved edit
(``"annotations"``) and after adding a class (``"categories"``). Categories added from
Python or another process (``project.add_category``, the CLI) are noticed by a watcher
thread that compares the category list about once a second. The same thread follows the
action log's last id (a cheap change counter): edits by *other annotators* (another
process, another machine on a shared PostgreSQL project) are published as
``"annotations"`` within about a second, and an open Annotator shows them unless it holds
unsaved edits of its own.

Listeners are held weakly (a closed, forgotten widget is not kept alive) and keyed by the
project's folder, so two ``Project`` objects of one folder hear each other.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["publish", "subscribe"]

_WATCH_SECONDS = 1.0
_lock = threading.Lock()
# folder -> kind -> weak references to bound methods
_listeners: dict[Path, dict[str, list[weakref.WeakMethod[Callable[..., Any]]]]] = {}
_projects: dict[Path, weakref.ref[Any]] = {}
_seen_categories: dict[Path, tuple[tuple[int, str], ...]] = {}
_seen_action: dict[Path, int] = {}  # the action log's last id the watcher has seen
_watcher: threading.Thread | None = None


def subscribe(project: Any, kind: str, method: Callable[..., Any]) -> None:
    """Call the bound ``method(**info)`` whenever ``kind`` is published for ``project``.

    Example:
        >>> subscribe(project, "categories", annotator.refresh_categories)  # doctest: +SKIP
    """
    root = _root(project)
    with _lock:
        kinds = _listeners.setdefault(root, {})
        kinds.setdefault(kind, []).append(weakref.WeakMethod(method))  # type: ignore[arg-type]
        _projects[root] = weakref.ref(project)
        if kind == "categories":
            _seen_categories.setdefault(root, _category_key(project))
            _start_watcher()
        if kind == "annotations":
            _seen_action.setdefault(root, _last_action(project))


def publish(project: Any, kind: str, **info: Any) -> None:
    """Tell the listeners of ``kind`` on ``project``'s folder; a failing one is skipped.

    Example:
        >>> publish(project, "annotations", image_id=3)  # doctest: +SKIP
    """
    root = _root(project)
    if kind == "categories":
        with _lock:
            _seen_categories[root] = _category_key(project)
    with _lock:
        refs = list(_listeners.get(root, {}).get(kind, []))
    alive = 0
    for ref in refs:
        method = ref()
        if method is None:
            continue
        alive += 1
        try:
            method(**info)
        except Exception:  # one broken widget must not stop the others
            continue
    if alive < len(refs):
        with _lock:
            listeners = _listeners.get(root, {}).get(kind, [])
            listeners[:] = [r for r in listeners if r() is not None]


def _root(project: Any) -> Path:
    return Path(project.root).resolve()


def _category_key(project: Any) -> tuple[tuple[int, str], ...]:
    return tuple((c.id, c.name) for c in project.categories())


def _start_watcher() -> None:
    global _watcher
    if _watcher is not None and _watcher.is_alive():
        return
    _watcher = threading.Thread(target=_watch, name="annowidget-categories", daemon=True)
    _watcher.start()


def _watch() -> None:
    global _watcher
    pause = threading.Event()  # never set: wait() is an interruptible sleep
    while not pause.wait(_WATCH_SECONDS):
        with _lock:
            _forget_closed()
            if not _projects:  # every widget that listened is gone: nothing to watch
                _watcher = None
                return
            projects = [(root, ref()) for root, ref in _projects.items()]
        for root, project in projects:
            if project is None:
                continue
            try:
                key = _category_key(project)
            except Exception:  # a project closed or moved: try again later
                continue
            with _lock:
                changed = _seen_categories.get(root) != key
            if changed:
                publish(project, "categories")
            _publish_others_edits(root, project)


def _last_action(project: Any) -> int:
    """The action log's last id: it grows with every edit anyone makes."""
    row = project._db.execute("SELECT COALESCE(MAX(id), 0) FROM actions").fetchone()
    return int(row[0])


def _publish_others_edits(root: Path, project: Any) -> None:
    """Publish the images other annotators changed since the last look (one small query
    when nothing changed)."""
    with _lock:
        seen = _seen_action.get(root)
    if seen is None:
        return
    try:
        last = _last_action(project)
        if last <= seen:
            return
        images = {
            a.image_id
            for a in project.actions(since_id=seen)
            if a.image_id is not None and a.author != getattr(project, "user", "")
        }
    except Exception:  # the server restarting, a project closed: look again later
        return
    with _lock:
        _seen_action[root] = last
    for image_id in sorted(images):
        publish(project, "annotations", image_id=image_id)


def _forget_closed() -> None:
    """Drop projects whose category listeners are all gone (called under ``_lock``)."""
    for root in list(_projects):
        listeners = _listeners.get(root, {}).get("categories", [])
        listeners[:] = [r for r in listeners if _is_open(r)]
        if not listeners or _projects[root]() is None:
            _projects.pop(root, None)
            _seen_categories.pop(root, None)
            _seen_action.pop(root, None)


def _is_open(ref: weakref.WeakMethod[Callable[..., Any]]) -> bool:
    """A listener counts while its widget lives and is not closed (``comm`` gone)."""
    method = ref()
    return method is not None and getattr(method.__self__, "comm", True) is not None
