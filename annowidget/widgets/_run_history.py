"""What the TrainingPanel draws, accumulated from the Trainer's events (no widgets here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from annowidget.train.events import (
    CheckpointEvent,
    EpochEvent,
    EvalEvent,
    FailedEvent,
    FinishedEvent,
    StepEvent,
    TrainingEvent,
    WarningEvent,
)

#: Metrics plotted per evaluation, when the task reports them.
PLOTTED_METRICS: tuple[str, ...] = ("AP", "AP50", "mIoU")


def format_seconds(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration.

    Example:
        >>> format_seconds(75), format_seconds(3725)
        ('1:15', '1:02:05')
    """
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class RunHistory:
    """Loss per step, metrics per evaluation and progress of one run.

    Example:
        >>> h = RunHistory(epochs=2)
        >>> h.add(StepEvent(1, 2, 4, 0.9, {"loss_box_reg": 0.3}, 0.02, 10.0))
        >>> h.fraction_done, h.progress_text()
        (0.25, 'epoch 1/2 · step 2/4 · 0:10 elapsed · ~0:30 left')
    """

    epochs: int
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)
    eval_epochs: list[int] = field(default_factory=list)
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    last_metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    last_step: StepEvent | None = None
    epochs_done: int = 0
    checkpoint_epoch: int = 0
    elapsed: float = 0.0
    final: FinishedEvent | FailedEvent | None = None

    def add(self, event: TrainingEvent) -> None:
        """Fold one event in."""
        if isinstance(event, StepEvent):
            self.last_step = event
            self.elapsed = event.elapsed
            self.steps.append((event.epoch - 1) * event.steps_per_epoch + event.step)
            self.loss.append(_num(event.loss))
            for name, value in event.loss_parts.items():
                # a part first seen late is padded so every series lines up with `steps`
                series = self.parts.setdefault(name, [math.nan] * (len(self.steps) - 1))
                series.append(_num(value))
            for name, series in self.parts.items():
                if name not in event.loss_parts:
                    series.append(math.nan)
        elif isinstance(event, EpochEvent):
            self.epochs = event.epochs
            self.epochs_done = event.epoch
            self.elapsed = event.elapsed
        elif isinstance(event, EvalEvent):
            self.eval_epochs.append(event.epoch)
            self.last_metrics = dict(event.metrics)
            for name in PLOTTED_METRICS:
                if name in event.metrics or name in self.metrics:
                    series = self.metrics.setdefault(name, [None] * (len(self.eval_epochs) - 1))
                    value = event.metrics.get(name)
                    series.append(None if value is None else _num(value))
        elif isinstance(event, CheckpointEvent):
            self.checkpoint_epoch = event.epoch
        elif isinstance(event, WarningEvent):
            self.warnings.append(event.message)
        elif isinstance(event, FinishedEvent | FailedEvent):
            self.final = event

    @property
    def fraction_done(self) -> float:
        """Share of the planned steps done, in [0, 1]."""
        if isinstance(self.final, FinishedEvent) and self.final.status == "finished":
            return 1.0
        step = self.last_step
        if step is None or self.epochs <= 0:
            return 0.0
        total = self.epochs * step.steps_per_epoch
        done = (step.epoch - 1) * step.steps_per_epoch + step.step
        return min(1.0, done / total) if total else 0.0

    def progress_text(self) -> str:
        """``epoch e/E · step s/S · elapsed · ~left`` for the progress bar."""
        step = self.last_step
        if step is None:
            return "starting: building the model and reading the images…"
        text = (
            f"epoch {step.epoch}/{self.epochs} · step {step.step}/{step.steps_per_epoch} · "
            f"{format_seconds(self.elapsed)} elapsed"
        )
        done = self.fraction_done
        if self.final is None and 0 < done < 1:
            text += f" · ~{format_seconds(self.elapsed * (1 - done) / done)} left"
        return text


def quality_verdict(metrics: dict[str, Any]) -> tuple[bool, str]:
    """``(usable, words)`` for a run's last evaluation, so "ready" is never said of a
    model that finds nothing.

    A model whose AP rounds to 0.00 found (almost) no object of the test images: it is
    not usable yet. ``words`` gives AP, AP50 and the test-set size (small test sets make
    noisy scores); empty when the run was never evaluated.

    Example:
        >>> usable, words = quality_verdict({"AP": 0.0, "AP50": 0.0, "images": 6})
        >>> usable, words.split(":")[0]
        (False, 'AP 0.00 on 6 test images')
        >>> quality_verdict({"AP": 0.341, "AP50": 0.68, "images": 6})
        (True, 'AP 0.34 (AP50 0.68) on 6 test images')
    """
    ap = metrics.get("AP", metrics.get("mIoU"))
    if ap is None or not math.isfinite(float(ap)):
        return True, ""
    name = "AP" if "AP" in metrics else "mIoU"
    images = metrics.get("images")
    on = f" on {images} test image{'s' if images != 1 else ''}" if images is not None else ""
    if round(float(ap), 2) <= 0.0:
        return False, (
            f"{name} 0.00{on}: the model found nothing yet; train longer or check the labels"
        )
    ap50 = metrics.get("AP50")
    extra = f" (AP50 {float(ap50):.2f})" if name == "AP" and ap50 is not None else ""
    return True, f"{name} {float(ap):.2f}{extra}{on}"


def _num(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan
