"""What a training run reports, as small immutable values (queued and sent to subscribers).

Example:
    >>> StepEvent(1, 3, 10, 0.8, {"loss_classifier": 0.5}, 0.02, 1.5).kind
    'step'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainingEvent:
    """Base class of every event; ``kind`` names it for JSON consumers (CLI, widgets)."""

    @property
    def kind(self) -> str:
        return type(self).__name__.removesuffix("Event").lower()

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values, with its ``kind``."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class StepEvent(TrainingEvent):
    """One optimisation step. ``epoch`` and ``step`` count from 1; ``elapsed`` is seconds
    since the run started."""

    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    loss_parts: dict[str, float]
    lr: float
    elapsed: float


@dataclass(frozen=True)
class EpochEvent(TrainingEvent):
    """An epoch that ran to its end: its mean loss (and parts) and how long it took."""

    epoch: int
    epochs: int
    loss: float
    loss_parts: dict[str, float]
    lr: float
    seconds: float
    images: int
    elapsed: float


@dataclass(frozen=True)
class EvalEvent(TrainingEvent):
    """Metrics of the checkpoint of ``epoch`` on the test images (see ``coco_eval``)."""

    epoch: int
    metrics: dict[str, Any]


@dataclass(frozen=True)
class CheckpointEvent(TrainingEvent):
    """A checkpoint written (atomically) after ``epoch``; ``path`` is absolute."""

    epoch: int
    path: str


@dataclass(frozen=True)
class WarningEvent(TrainingEvent):
    """Something the user should know that does not stop the run."""

    message: str


@dataclass(frozen=True)
class FinishedEvent(TrainingEvent):
    """The run ended: ``status`` is ``finished`` or ``stopped``; ``epoch`` is the epoch kept
    (0 when none completed) and ``reason`` says what happened in words."""

    status: str
    reason: str
    model_name: str
    epoch: int = 0
    weights: str | None = None


@dataclass(frozen=True)
class FailedEvent(TrainingEvent):
    """The run failed; ``reason`` says why and which epoch (if any) was kept as weights."""

    reason: str
    model_name: str = ""
    epoch: int = 0
    weights: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_KINDS: dict[str, type[TrainingEvent]] = {
    cls.__name__.removesuffix("Event").lower(): cls
    for cls in (
        StepEvent,
        EpochEvent,
        EvalEvent,
        CheckpointEvent,
        WarningEvent,
        FinishedEvent,
        FailedEvent,
    )
}


def event_from_dict(data: dict[str, Any]) -> TrainingEvent:
    """The event :meth:`TrainingEvent.to_dict` wrote (a run in another process sends its
    events as JSON). ``ValueError`` for an unknown kind or missing fields.

    Example:
        >>> event_from_dict(WarningEvent("low memory").to_dict())
        WarningEvent(message='low memory')
    """
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown training event kind {kind!r}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"bad {kind} event {data!r}: {exc}") from None
