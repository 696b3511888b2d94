"""Replay the action log into labeling sessions: which model pre-labeled an image, how long
a person worked on it, and what became of every predicted box.

A *session* is the work done on one image while one model's predictions were on it. It
starts at a ``predict`` action (or at the first human action on an image no model touched)
and ends at the next ``predict`` on that image. A session in which the person only looked
(no edit, no status change) before asking for predictions is merged into the session that
follows, so the seconds spent before pressing "predict" still count.

Browsing is not labeling. A *visit* is a run of consecutive actions on one image; a visit
with no work in it (no edit, no status change) on an image that was reviewed when the visit
began counts no seconds. A session with no work in it at all is no labeling session, and a
session without a model counts as labeling *from scratch* only if its image was unlabeled
when the session began (:attr:`Session.from_scratch`): touching up an image that was already
labeled is neither a model's round nor the from-scratch baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from annowidget.effort._geometry import box_iou
from annowidget.store import Action, Project

# Entries that programs write (imports, prediction runs, bookkeeping): they are not a
# person's input, so they neither count as work nor mark the person as active.
SYSTEM_ACTIONS = frozenset({"predict", "add_image", "import", "move", "split", "add_category"})
EDIT_ACTIONS = frozenset({"add", "update", "accept", "delete", "reject", "restore"})
# A box that moved by at most half a pixel on every side was not adjusted: nobody aims that
# finely, but front ends round coordinates when they send a box back.
MOVE_TOLERANCE_PX = 0.5

# What became of a predicted box, one of:
ACCEPTED = "accepted_unchanged"  # kept, same class, same box
ADJUSTED = "adjusted"  # kept, same class, box moved
RELABELED = "relabeled"  # kept with another class (moved or not)
DELETED = "deleted"  # removed: a false positive
UNREVIEWED = "unreviewed"  # still pending (e.g. hidden under the threshold when submitted)
SUPERSEDED = "superseded"  # replaced by a later prediction run before anyone reviewed it


@dataclass
class Session:
    """One image, one model's predictions, and what a person did about them."""

    image_id: int
    model: str | None
    started: float
    predictions: list[int] = field(default_factory=list)
    seconds: float = 0.0
    human_actions: int = 0
    worked: bool = False
    events: dict[int, list[Action]] = field(default_factory=dict)
    drawn: list[int] = field(default_factory=list)
    merged: bool = False
    labeled_at_start: bool = False
    seconds_by: dict[str, float] = field(default_factory=dict)
    """Seconds per annotator (the log's ``author``; ``""`` in logs older than authorship)."""

    @property
    def annotator(self) -> str:
        """Who gave this session the most seconds (``""`` when unknown)."""
        return max(self.seconds_by, key=self.seconds_by.__getitem__, default="")

    @property
    def from_scratch(self) -> bool:
        """No model's predictions, and the image was unlabeled when the session began."""
        return self.model is None and not self.labeled_at_start

    @property
    def labeling(self) -> bool:
        """Whether this session is labeling work: it got work, and it is a model's round or
        labeling from scratch (browsing or touching up a labeled image is neither)."""
        return self.worked and (self.model is not None or self.from_scratch)


@dataclass(frozen=True)
class Fate:
    """What became of one predicted box: ``original`` is the box as the model wrote it."""

    annotation_id: int
    outcome: str
    original: dict[str, Any] | None
    final: dict[str, Any] | None
    iou: float | None = None


@dataclass(frozen=True)
class Replay:
    """Sessions in the order they started, plus the store's state they were read with."""

    sessions: list[Session]
    pending: dict[int, dict[str, Any]]
    status: dict[int, str]


def model_name(source: str) -> str:
    """``"model:round-2"`` -> ``"round-2"``; other sources are kept whole."""
    return source.removeprefix("model:")


def _is_prediction_add(action: Action) -> bool:
    after = action.payload.get("after") or {}
    return action.action == "add" and bool(after.get("is_prediction"))


def _is_machine(action: Action) -> bool:
    if action.action in SYSTEM_ACTIONS:
        return True
    if action.action == "add":
        after = action.payload.get("after") or {}
        source = str(after.get("source", ""))
        return bool(after.get("is_prediction")) or source.startswith(("model:", "import"))
    return False


def _start(
    current: dict[int, Session],
    sessions: list[Session],
    image_id: int,
    model: str | None,
    ts: float,
) -> Session:
    session = Session(image_id=image_id, model=model, started=ts)
    previous = current.get(image_id)
    if previous is not None and not previous.worked:
        # Looking at an image and then asking for predictions is part of reviewing them.
        previous.merged = True
        session.seconds = previous.seconds
        session.human_actions = previous.human_actions
        if previous.human_actions:
            session.started = previous.started
    current[image_id] = session
    sessions.append(session)
    return session


class _Statuses:
    """Each image's status as the log replays: reviewed or not, with pending predictions.

    The store changes a status implicitly (a person's edit with no prediction left makes an
    image reviewed); this mirrors that rule. Before the log says anything about an image,
    it is taken as reviewed when it holds boxes no logged action added (a bulk import).
    """

    def __init__(self, imported: set[int]) -> None:
        self.imported = imported
        self.reviewed: dict[int, bool] = {}
        self.pending: dict[int, set[int]] = {}

    def before(self, action: Action, image_id: int) -> bool:
        """Whether the image was reviewed just before ``action``."""
        if image_id in self.reviewed:
            return self.reviewed[image_id]
        if action.action == "set_status" and action.payload.get("before") is not None:
            return action.payload["before"] == "reviewed"  # the log's first word on it
        return image_id in self.imported

    def follow(self, action: Action, image_id: int) -> None:
        pending = self.pending.setdefault(image_id, set())
        if action.action == "add_image":
            self.reviewed[image_id] = False
        elif action.action == "set_status":
            self.reviewed[image_id] = action.payload.get("after") == "reviewed"
        elif action.action == "predict":
            pending.clear()  # a prediction run replaces the pending boxes
            pending.update(int(i) for i in action.payload.get("annotations", []))
        elif action.action in EDIT_ACTIONS and action.annotation_id is not None:
            after = action.payload.get("after") or {}
            if after.get("is_prediction"):
                pending.add(action.annotation_id)
                return
            pending.discard(action.annotation_id)
            if _is_machine(action):  # a box imported one at a time
                self.reviewed[image_id] = self.reviewed.get(image_id, False) or bool(after)
            elif not pending:  # the store's rule: a person's edit, no prediction left
                self.reviewed[image_id] = True


def replay(
    actions: Iterable[Action], idle_gap: float, *, imported: Iterable[int] = ()
) -> list[Session]:
    """Cut the action log into sessions and time them (see :mod:`annowidget.effort.meter`).

    ``imported``: images holding boxes that no logged action added (bulk imports): they
    count as reviewed until the log says otherwise.

    Example:
        >>> replay([], idle_gap=30.0)
        []
    """
    ordered = sorted((a for a in actions if a.image_id is not None), key=lambda a: (a.ts, a.id))
    statuses = _Statuses(set(imported))
    current: dict[int, Session] = {}
    sessions: list[Session] = []
    # One timeline per annotator (several people label one shared project at once): the
    # gap before an action is measured from the same person's previous action.
    people: dict[str, _Timeline] = {}
    for action in ordered:
        image_id = int(action.image_id)  # type: ignore[arg-type]
        reviewed_before = statuses.before(action, image_id)
        statuses.follow(action, image_id)
        if action.action == "predict":
            session = _start(
                current,
                sessions,
                image_id,
                model_name(str(action.payload.get("source", ""))),
                action.ts,
            )
            session.predictions.extend(int(i) for i in action.payload.get("annotations", []))
            continue
        if _is_prediction_add(action):
            # Predictions added one at a time: consecutive ones of a model form one run.
            name = model_name(str(action.payload["after"].get("source", "")))
            session = current.get(image_id)
            if session is None or session.model != name or session.worked:
                session = _start(current, sessions, image_id, name, action.ts)
            session.predictions.append(int(action.annotation_id or action.payload["after"]["id"]))
            continue
        if _is_machine(action):
            continue
        session = current.get(image_id)
        if session is None:
            session = _start(current, sessions, image_id, None, action.ts)
            session.labeled_at_start = reviewed_before
        person = people.setdefault(action.author, _Timeline())
        if image_id != person.image:
            person.image, person.reviewed, person.worked = image_id, reviewed_before, False
            person.held = 0.0
        seconds = _active_seconds(action, person.last_ts, idle_gap)
        session.human_actions += 1
        person.last_ts = action.ts
        if _is_work(action):
            session.worked = person.worked = True
        if person.worked or not person.reviewed:
            counted = person.held + seconds
            session.seconds += counted
            session.seconds_by[action.author] = session.seconds_by.get(action.author, 0.0) + counted
            person.held = 0.0
        else:
            person.held += seconds  # looking at a reviewed image: counted only if work follows
        if action.action in EDIT_ACTIONS and action.annotation_id is not None:
            session.events.setdefault(action.annotation_id, []).append(action)
            if action.action == "add":
                session.drawn.append(action.annotation_id)
    return [s for s in sessions if s.human_actions and not s.merged]


@dataclass
class _Timeline:
    """One person's visit in progress: its image, whether that image was reviewed when the
    visit began, whether it got work, the seconds it has not yet given its session, and the
    time of the person's previous action."""

    image: int | None = None
    reviewed: bool = False
    worked: bool = False
    held: float = 0.0
    last_ts: float | None = None


def _is_work(action: Action) -> bool:
    """An edit, or a status change that changed the status (Enter on a reviewed image
    leaves it as it was: that is moving on, not work)."""
    if action.action in EDIT_ACTIONS:
        return True
    if action.action == "set_status":
        return action.payload.get("before") != action.payload.get("after")
    return False


def _active_seconds(action: Action, last_ts: float | None, idle_gap: float) -> float:
    """The seconds of work that ended with ``action``.

    The gap since the person's previous action (on any image) counts in full when it is at
    most ``idle_gap`` and not at all when longer: a longer silence means they were away, and
    no part of it can be told apart as work. An explicit ``duration`` (active seconds the
    front end measured for this action) lies inside that same gap, so the larger of the two
    counts, never their sum.
    """
    gap = None if last_ts is None else action.ts - last_ts
    seconds = gap if gap is not None and gap <= idle_gap else 0.0
    if action.duration is not None:
        seconds = max(seconds, float(action.duration))
    return seconds


def fates(session: Session, pending: Mapping[int, dict[str, Any]]) -> list[Fate]:
    """What became of each box the session's model predicted, in the model's order.

    Example:
        >>> fates(Session(image_id=1, model="m", started=0.0, predictions=[7]), {})[0].outcome
        'superseded'
    """
    result = []
    for annotation_id in session.predictions:
        events = session.events.get(annotation_id)
        if not events:
            row = pending.get(annotation_id)
            outcome = UNREVIEWED if row is not None else SUPERSEDED
            result.append(Fate(annotation_id, outcome, row, row))
            continue
        first = events[0].payload
        original = first.get("before") or first.get("after")
        final = events[-1].payload.get("after")
        result.append(_classify(annotation_id, original, final))
    return result


def _classify(
    annotation_id: int, original: dict[str, Any] | None, final: dict[str, Any] | None
) -> Fate:
    if final is None:
        return Fate(annotation_id, DELETED, original, None)
    if final.get("is_prediction") or original is None:
        return Fate(annotation_id, UNREVIEWED, original, final)
    iou = box_iou(original["bbox"], final["bbox"])
    if final["category_id"] != original["category_id"]:
        return Fate(annotation_id, RELABELED, original, final, iou)
    pairs = zip(original["bbox"], final["bbox"], strict=True)
    moved = max(abs(float(a) - float(b)) for a, b in pairs)
    outcome = ADJUSTED if moved > MOVE_TOLERANCE_PX else ACCEPTED
    return Fate(annotation_id, outcome, original, final, iou if outcome == ADJUSTED else None)


def drawn_kept(session: Session) -> int:
    """How many boxes a person drew in this session and did not delete again."""
    kept = 0
    for annotation_id in session.drawn:
        final = session.events[annotation_id][-1].payload.get("after")
        kept += final is not None and not final.get("is_prediction")
    return kept


def replay_project(project: Project, idle_gap: float) -> Replay:
    """Read the log and the store's state together and replay them.

    The log and the current rows are read in separate queries; when an edit lands in
    between, the read is repeated so that both describe the same moment.
    """
    if not idle_gap > 0:
        raise ValueError(f"idle_gap must be a positive number of seconds, got {idle_gap!r}")
    for _ in range(5):
        actions = project.actions()
        pending = {a.id: a.to_dict() for a in project.annotations(predictions=True)}
        labels = {(a.id, a.image_id) for a in project.annotations(predictions=False)}
        status = {image.id: image.status for image in project.images()}
        last_id = actions[-1].id if actions else 0
        if not project.actions(since_id=last_id):
            break
    # Boxes the log saw arrive: drawn or imported one at a time, or predicted (an accepted
    # prediction is a reviewed box now). Any other reviewed box came in a bulk import.
    logged = {a.annotation_id for a in actions if a.action == "add"}
    for action in actions:
        if action.action == "predict":
            logged.update(int(i) for i in action.payload.get("annotations", []))
    imported = {image_id for annotation_id, image_id in labels if annotation_id not in logged}
    return Replay(replay(actions, idle_gap, imported=imported), pending, status)
