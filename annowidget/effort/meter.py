"""The effort meter: human seconds and box corrections per image and per model round.

Everything is derived from the project's append-only action log, so it needs no extra
bookkeeping and can be recomputed at any time.

Rules (the tests pin each one down):

* **Round.** An image's round is the model whose predictions were on it while the person
  worked (``source="model:<name>"`` of the last ``predict`` before the work; ``None`` when
  the image was labeled from scratch). Asking for new predictions on an image starts a new
  session; a session where the person only looked before asking is merged into the next.
* **Browsing is not labeling.** Only work counts: an edit, or a status change that changed
  the status (Enter on an image already reviewed changes nothing). An image enters the
  from-scratch baseline only if it was *unlabeled when opened* (no model's predictions on
  it, not reviewed) and then got work; paging through reviewed images (Space, Next) adds
  no image and no second to any round, and touching up an image that was already labeled
  is neither a model's round nor the baseline. Looking at a reviewed image counts only when
  work on it follows in the same visit (consecutive actions on that image).
* **Seconds.** The person's actions on all images form one timeline, sorted by time. The gap
  before each action is work on that action's image when it is at most ``idle_gap`` seconds
  and counts 0 when longer (the person was away; no part of a long silence is counted). So
  time is never counted twice when a person goes back and forth between images. An action's
  explicit ``duration`` (active seconds measured by the front end) is taken to lie inside
  that gap: the larger of the two counts, never the sum. The very first action of the log
  counts only its duration. Program entries (``predict``, imports, moves, splits, predicted
  boxes) are not a person's input and are left out of the timeline.
* **Boxes.** Every predicted box ends as exactly one of: accepted unchanged (same class, no
  side moved more than half a pixel), adjusted (same class, box moved; its IoU with the
  predicted box is kept), relabeled (class changed), deleted (a false positive), or
  unreviewed (still pending, e.g. hidden under the threshold when the image was submitted,
  or replaced by a later prediction run). Boxes a person drew and kept are the model's
  misses (``drawn_from_scratch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from annowidget.effort import _replay
from annowidget.store import Project

DEFAULT_IDLE_GAP = 30.0


@dataclass(frozen=True)
class ImageEffort:
    """The work done on one image in one round.

    Example:
        >>> ImageEffort(image_id=3, model="round-1", seconds=12.5).seconds
        12.5
    """

    image_id: int
    model: str | None
    seconds: float
    predictions: int = 0
    accepted_unchanged: int = 0
    adjusted: int = 0
    adjusted_iou: list[float] = field(default_factory=list)
    relabeled: int = 0
    deleted_false_positives: int = 0
    drawn_from_scratch: int = 0
    unreviewed: int = 0
    reviewed: bool = False
    started: float = 0.0
    annotator: str = ""
    """Who did (most of) the work: the log's author; ``""`` in logs older than authorship."""

    @property
    def predictions_reviewed(self) -> int:
        """Predicted boxes a person decided about (kept as is, changed or deleted)."""
        changed = self.adjusted + self.relabeled + self.deleted_false_positives
        return self.accepted_unchanged + changed


@dataclass(frozen=True)
class RoundEffort:
    """The work done on all images pre-labeled by one model (``None``: from scratch).

    ``share_accepted_unchanged`` is over the predicted boxes a person decided about
    (accepted, adjusted, relabeled or deleted); ``None`` when there were none, as for a
    from-scratch round. ``mean_adjusted_iou`` is ``None`` when no box was adjusted.

    Example:
        >>> RoundEffort(model=None, images=2, seconds=60.0).seconds_per_image
        30.0
    """

    model: str | None
    images: int
    seconds: float
    predictions: int = 0
    accepted_unchanged: int = 0
    adjusted: int = 0
    relabeled: int = 0
    deleted_false_positives: int = 0
    drawn_from_scratch: int = 0
    mean_adjusted_iou: float | None = None
    started: float = 0.0

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.images if self.images else 0.0

    @property
    def share_accepted_unchanged(self) -> float | None:
        changed = self.adjusted + self.relabeled + self.deleted_false_positives
        decided = self.accepted_unchanged + changed
        return self.accepted_unchanged / decided if decided else None

    @property
    def false_positives_per_image(self) -> float:
        return self.deleted_false_positives / self.images if self.images else 0.0

    @property
    def misses_per_image(self) -> float:
        return self.drawn_from_scratch / self.images if self.images else 0.0


def effort_per_image(project: Project, *, idle_gap: float = DEFAULT_IDLE_GAP) -> list[ImageEffort]:
    """One entry per image and round in which a person labeled, oldest first.

    Browsing and touching up already-labeled images are not labeling (module docstring).
    ``reviewed`` tells whether the image is reviewed now. See the module docstring for how
    seconds and boxes are counted.

    Example:
        >>> # for e in effort_per_image(project): print(e.image_id, e.model, e.seconds)
    """
    replayed = _replay.replay_project(project, idle_gap)
    return [_image_effort(s, replayed) for s in replayed.sessions if s.labeling]


def _image_effort(session: _replay.Session, replayed: _replay.Replay) -> ImageEffort:
    fates = _replay.fates(session, replayed.pending)
    outcomes = [f.outcome for f in fates]
    return ImageEffort(
        image_id=session.image_id,
        model=session.model,
        seconds=session.seconds,
        predictions=len(fates),
        accepted_unchanged=outcomes.count(_replay.ACCEPTED),
        adjusted=outcomes.count(_replay.ADJUSTED),
        adjusted_iou=[f.iou for f in fates if f.outcome == _replay.ADJUSTED and f.iou is not None],
        relabeled=outcomes.count(_replay.RELABELED),
        deleted_false_positives=outcomes.count(_replay.DELETED),
        drawn_from_scratch=_replay.drawn_kept(session),
        unreviewed=outcomes.count(_replay.UNREVIEWED) + outcomes.count(_replay.SUPERSEDED),
        reviewed=replayed.status.get(session.image_id) == "reviewed",
        started=session.started,
        annotator=session.annotator,
    )


def effort_per_annotator(
    project: Project, *, idle_gap: float = DEFAULT_IDLE_GAP, reviewed_only: bool = False
) -> dict[str, dict[str, float | None]]:
    """Images labeled, active seconds and predicted boxes accepted unchanged per annotator
    (a shared project's room view), keyed by the log's author (``""``: rows older than
    authorship), most images first.

    Each person's seconds are timed on their own timeline, so two people working at once
    are not counted as one person's gaps. An image (and its boxes' fates) counts for the
    person who gave it the most seconds; helpers' seconds still count as theirs.
    ``reviewed_only=True`` counts only images reviewed now, as :func:`effort_per_round`
    does. ``share_accepted_unchanged`` is over the predicted boxes the person decided about
    (``None`` when there were none, as when labeling from scratch).

    Example:
        >>> # effort_per_annotator(project)["ana"]
        >>> # {"images": 12, "seconds": 310.0, "seconds_per_image": 25.8,
        >>> #  "predictions_reviewed": 30, "accepted_unchanged": 21,
        >>> #  "share_accepted_unchanged": 0.7}
    """
    replayed = _replay.replay_project(project, idle_gap)
    tallies: dict[str, _Tally] = {}
    for session in replayed.sessions:
        if not session.labeling:
            continue
        effort = _image_effort(session, replayed)
        if reviewed_only and not effort.reviewed:
            continue
        for author, seconds in session.seconds_by.items():
            tallies.setdefault(author, _Tally()).seconds += seconds
        owner = tallies.setdefault(effort.annotator, _Tally())
        owner.images += 1
        owner.predictions_reviewed += effort.predictions_reviewed
        owner.accepted_unchanged += effort.accepted_unchanged
    ordered = sorted(tallies.items(), key=lambda item: (-item[1].images, item[0]))
    return {author: tally.as_dict() for author, tally in ordered}


@dataclass
class _Tally:
    """One annotator's running totals while :func:`effort_per_annotator` replays the log."""

    images: int = 0
    seconds: float = 0.0
    predictions_reviewed: int = 0
    accepted_unchanged: int = 0

    def as_dict(self) -> dict[str, float | None]:
        decided = self.predictions_reviewed
        return {
            "images": self.images,
            "seconds": self.seconds,
            "seconds_per_image": self.seconds / self.images if self.images else 0.0,
            "predictions_reviewed": decided,
            "accepted_unchanged": self.accepted_unchanged,
            "share_accepted_unchanged": self.accepted_unchanged / decided if decided else None,
        }


def effort_per_round(
    project: Project,
    *,
    idle_gap: float = DEFAULT_IDLE_GAP,
    reviewed_only: bool = True,
) -> list[RoundEffort]:
    """Effort aggregated per model round, in the order the rounds started.

    By default only images that are reviewed now count, so a half-corrected image does not
    make a round look cheaper than it is. ``images`` counts distinct images; the per-image
    rates divide by it.

    Example:
        >>> # for r in effort_per_round(project):
        >>> #     print(r.model, round(r.seconds_per_image, 1), r.share_accepted_unchanged)
    """
    rounds: dict[str | None, list[ImageEffort]] = {}
    for effort in effort_per_image(project, idle_gap=idle_gap):
        if effort.reviewed or not reviewed_only:
            rounds.setdefault(effort.model, []).append(effort)
    summaries = [_round(model, efforts) for model, efforts in rounds.items()]
    return sorted(summaries, key=lambda r: r.started)


def _round(model: str | None, efforts: list[ImageEffort]) -> RoundEffort:
    ious = [iou for e in efforts for iou in e.adjusted_iou]
    return RoundEffort(
        model=model,
        images=len({e.image_id for e in efforts}),
        seconds=sum(e.seconds for e in efforts),
        predictions=sum(e.predictions for e in efforts),
        accepted_unchanged=sum(e.accepted_unchanged for e in efforts),
        adjusted=sum(e.adjusted for e in efforts),
        relabeled=sum(e.relabeled for e in efforts),
        deleted_false_positives=sum(e.deleted_false_positives for e in efforts),
        drawn_from_scratch=sum(e.drawn_from_scratch for e in efforts),
        mean_adjusted_iou=sum(ious) / len(ious) if ious else None,
        started=min(e.started for e in efforts),
    )
