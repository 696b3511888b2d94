"""Continuous mode: the model retrains itself while people label.

Whenever ``every`` images have been reviewed since the last model, a *round* runs in the
background:

1. a short fine-tune (a budget of image-steps: ``budget`` images seen in all, at least one
   epoch) starts from the latest finished model of the task (a warm start: its weights,
   categories matched by name; the card names it as the parent), on every reviewed image
   outside the test folders, and is scored once at the end on the test folders (AP50);
2. the new model re-predicts the images still to review that nobody has touched, swapping
   their dashed pre-labels in place (``Project.replace_predictions``).

What it never touches: a reviewed image, an image a person has edited (any add, update,
accept, reject, delete, restore, status change, undo or redo in the action log, even one
left half done), and the image being edited (``editing()``, asked just before each write,
so an image opened while the round predicts is left alone too).

"Reviewed since the last model" counts images now ``reviewed``, outside the test folders,
with a person's edit logged after the last model was made (this loop's last round, or
when it starts, the project's newest trained model of the task). In a project with no
trained model of the task yet, every reviewed image outside the test folders counts.

Example:
    >>> # loop = ContinuousTrainer(project, every=10, budget=200, editing=lambda: None)
    >>> # loop.start()            # watches the project in a thread; loop.pause() / loop.stop()
    >>> # loop.state.round, loop.state.ap50, loop.state.until_next
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from annowidget.models.catalog import BASE_MODELS
from annowidget.models.registry import ModelRegistry
from annowidget.store import Project
from annowidget.train.hyperparameters import Hyperparameters

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_EVERY",
    "HUMAN_EDITS",
    "ContinuousTrainer",
    "LoopState",
    "RoundReport",
]

DEFAULT_EVERY = 10
#: image-steps per round: e.g. 8 epochs of 30 reviewed images, 2 epochs of 120
DEFAULT_BUDGET = 240
#: action-log entries that are a person's work on an image (the rest: predict, view, ...)
HUMAN_EDITS = frozenset(
    {"add", "update", "accept", "reject", "delete", "restore", "set_status", "undo", "redo"}
)
PHASES = ("idle", "watching", "paused", "training", "predicting", "stopped")
_TODO = ("unlabeled", "predicted")

RoundCallback = Callable[["RoundReport"], Any]
StateCallback = Callable[["LoopState"], Any]


@dataclass
class RoundReport:
    """What one round did.

    Example:
        >>> RoundReport(round=2, model="auto-2", base="auto-1").to_dict()["base"]
        'auto-1'
    """

    round: int
    model: str
    base: str
    status: str = ""  # the trainer's: finished, stopped or failed ("" before it ran)
    reason: str = ""
    images: int = 0  # reviewed images it trained on
    epochs: int = 0
    ap50: float | None = None  # on the test folders; None without reviewed test images
    train_seconds: float = 0.0
    predicted: int = 0  # images whose pre-labels were swapped
    kept: list[int] = field(default_factory=list)  # left alone: opened or edited meanwhile
    predict_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoopState:
    """Where the loop stands: what the app's auto-train bar shows.

    Example:
        >>> LoopState(phase="watching", round=2, ap50=0.61, reviews=7, every=10).until_next
        3
    """

    phase: str
    round: int  # the round of the current model (0: none yet)
    ap50: float | None
    reviews: int  # reviewed since the last model
    every: int
    model: str | None = None
    message: str = ""

    @property
    def until_next(self) -> int:
        """Reviews still needed before the next round starts."""
        return max(0, self.every - self.reviews)


class ContinuousTrainer:
    """Run fine-tune-and-re-predict rounds whenever ``every`` images have been reviewed.

    ``budget`` is the number of image-steps a round trains (epochs = budget / reviewed images,
    at least 1). ``hyperparameters`` are the rest of a round's settings (epochs and evaluation
    period are set from the budget). ``base_model`` is the first round's base when the project
    has no trained model of the task yet; later rounds start from the latest model.
    ``editing`` returns the id of the image open in the editor (never overwritten); while
    ``busy()`` is true (the Train tab's own run, say) no round starts.
    Models are named ``<prefix>-<round>``.

    Example:
        >>> # loop = ContinuousTrainer(project, every=10, editing=lambda: annotator_image_id)
        >>> # loop.step()      # one round now if due (blocking); loop.start() in a thread
    """

    def __init__(
        self,
        project: Project,
        *,
        every: int = DEFAULT_EVERY,
        budget: int = DEFAULT_BUDGET,
        task: str = "detection",
        base_model: str | None = None,
        hyperparameters: Hyperparameters | None = None,
        test_folders: Sequence[str] = ("test",),
        threshold: float = 0.5,
        editing: Callable[[], int | None] | None = None,
        prefix: str = "auto",
        pretrained: bool = True,
        poll_seconds: float = 1.0,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.project = project
        self.every = _positive("every", every)
        self.budget = _positive("budget", budget)
        self.task = task
        self.base_model = base_model
        self.hyperparameters = hyperparameters or Hyperparameters()
        self.test_folders = (
            (test_folders,) if isinstance(test_folders, str) else tuple(test_folders)
        )
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
        self.threshold = float(threshold)
        self.editing = editing or (lambda: None)
        self.busy = busy or (lambda: False)
        self.prefix = prefix
        self.pretrained = bool(pretrained)
        if poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be > 0, got {poll_seconds!r}")
        self.poll_seconds = float(poll_seconds)
        self.registry = ModelRegistry(project)
        self.reports: list[RoundReport] = []
        self.interrupted = False  # run() ended on Ctrl-C
        self.trainer: Any = None  # the running round's Trainer (its events feed a panel)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._paused = False
        self._watching = False  # inside start()'s thread or run()
        self._phase = "idle"
        self._message = ""
        self._thread: threading.Thread | None = None
        self._round_callbacks: list[RoundCallback] = []
        self._state_callbacks: list[StateCallback] = []
        # the action log, read incrementally: who touched what, and since when
        self._scanned = 0  # last action id read
        self._cursor = 0  # reviews after this action id count toward the next round
        self._touched: set[int] = set()  # images a person has edited, ever
        self._since: set[int] = set()  # images edited after the cursor
        self._model, self._round, self._ap50 = self._latest_model()
        self._cursor = self._action_before(self._model)
        self._scan()

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> LoopState:
        """The current round, its AP50, reviews since the last model, and the phase."""
        with self._lock:
            self._scan()
            return LoopState(
                phase=self._phase,
                round=self._round,
                ap50=self._ap50,
                reviews=self._reviews(),
                every=self.every,
                model=self._model,
                message=self._message,
            )

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def running(self) -> bool:
        """Whether the watching thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def reviews_since_last_model(self) -> int:
        """Images reviewed (outside the test folders) since the last model was made."""
        with self._lock:
            self._scan()
            return self._reviews()

    @property
    def due(self) -> bool:
        """Whether enough images were reviewed for a round."""
        return self.reviews_since_last_model() >= self.every

    def on_round(self, callback: RoundCallback) -> Callable[[], None]:
        """Call ``callback(report)`` after every round (from the loop's thread)."""
        self._round_callbacks.append(callback)
        return lambda: _discard(self._round_callbacks, callback)

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(state)`` when the phase changes (from the loop's thread)."""
        self._state_callbacks.append(callback)
        return lambda: _discard(self._state_callbacks, callback)

    # ------------------------------------------------------------------ control
    def start(self) -> ContinuousTrainer:
        """Watch the project in a background thread; a round starts whenever one is due."""
        if self.running:
            return self
        self._stop.clear()
        self._watching = True
        self._set_phase(self._idle_phase())
        self._thread = threading.Thread(target=self._watch, name="annowidget-loop", daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        """Start no new round (a running one finishes)."""
        self._paused = True
        if self._phase == "watching":
            self._set_phase("paused")

    def resume(self) -> None:
        """Start rounds again when due."""
        self._paused = False
        if self._phase == "paused":
            self._set_phase("watching")

    def stop(self) -> None:
        """End the loop: a running fine-tune stops (its last completed epoch is kept, no
        re-prediction follows) and no round starts again."""
        self._stop.set()
        trainer = self.trainer
        if trainer is not None:
            trainer.stop()
        if not self.running:
            self._set_phase("stopped")

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the watching thread to end; ``True`` when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def run(self, rounds: int | None = None) -> list[RoundReport]:
        """Watch in this thread until stopped, Ctrl-C, or ``rounds`` rounds ran (blocking;
        the CLI's ``annowidget loop``). Returns the rounds' reports.

        Example:
            >>> # ContinuousTrainer(project, every=10).run(rounds=1)
        """
        done: list[RoundReport] = []
        self._stop.clear()
        self._watching = True
        self._set_phase(self._idle_phase())
        try:
            while not self._stop.is_set() and (rounds is None or len(done) < rounds):
                report = self.step()
                if report is not None:
                    done.append(report)
                    continue
                self._stop.wait(self.poll_seconds)
        except KeyboardInterrupt:
            self.stop()
            self.interrupted = True
        finally:
            self._watching = False
        self._set_phase("stopped")
        return done

    def step(self) -> RoundReport | None:
        """Run one round now if one is due and the loop is not paused (blocking)."""
        if self._paused or self._stop.is_set() or self.busy() or not self.due:
            return None
        return self.run_round()

    # ------------------------------------------------------------------ one round
    def run_round(self) -> RoundReport:
        """Fine-tune from the latest model, then re-predict the untouched images (blocking).

        A round that cannot train (no reviewed images, say) or fails is reported with
        status ``failed`` and its reason; the loop carries on with the next one.
        """
        from annowidget.train.trainer import Trainer

        with self._lock:
            self._scan()
            # Reviews logged from here on count toward the next round (the trainer's
            # snapshot comes a moment later: an edit in between may count for both).
            cursor = self._cursor = self._scanned
            self._since = set()
            train_folders = self._train_folders()
            number = self._next_round()
            base, warm = self._base()
        report = RoundReport(round=number, model=f"{self.prefix}-{number}", base=base or "")
        images = (
            self.project.count_images(folder=list(train_folders), status="reviewed")
            if train_folders
            else 0
        )
        report.images = images
        report.epochs = max(1, math.ceil(self.budget / max(1, images)))
        hp = self.hyperparameters.replace(epochs=report.epochs, eval_period=report.epochs)
        self._set_phase("training", f"round {number}: fine-tuning {report.model}")
        start = time.perf_counter()
        card = None
        try:
            trainer = Trainer(
                self.project,
                report.model,
                task=self.task,
                base_model=base,
                hyperparameters=hp,
                train_folders=train_folders,
                test_folders=self._test_folders_with_images(),
                description=f"continuous mode, round {number}",
                # a trained base brings its own weights: random init is for a first round only
                pretrained=self.pretrained or warm,
            )
            report.base = trainer.base_model if base is None else base
            self.trainer = trainer
            trainer.start()
            if self._stop.is_set():
                trainer.stop()
            try:
                while not trainer.join(0.2):  # short waits: Ctrl-C gets through (run())
                    pass
            except KeyboardInterrupt:
                self.stop()  # like Stop: the last completed epoch is kept
                trainer.join()
                self.interrupted = True
            card = trainer.card
            report.status, report.reason = trainer.status, trainer.reason
        except (ValueError, RuntimeError, OSError) as exc:
            report.status, report.reason = "failed", str(exc)
        finally:
            self.trainer = None
            report.train_seconds = time.perf_counter() - start
        if card is not None:
            report.ap50 = _ap50(card.metrics)
        if report.status == "finished" and not self._stop.is_set():
            with self._lock:
                self._model, self._round, self._ap50 = report.model, number, report.ap50
            self._repredict(report, cursor)
        self.reports.append(report)
        message = f"round {number}: {report.status}" + (
            f" ({report.reason})" if report.status != "finished" else ""
        )
        self._set_phase("stopped" if self._stop.is_set() else self._idle_phase(), message)
        for callback in list(self._round_callbacks):
            callback(report)
        return report

    def _repredict(self, report: RoundReport, cursor: int) -> None:
        from annowidget.models.predict import predict_images
        from annowidget.train.engine import resolve_device

        self._set_phase("predicting", f"round {report.round}: pre-labeling with {report.model}")
        with self._lock:
            self._scan()
            touched = set(self._touched)
        todo = [i.id for i in self.project.images(status=_TODO) if i.id not in touched]
        editing = self.editing()
        ids = [i for i in todo if i != editing]
        report.kept = [editing] if editing in todo else []

        def skip(image_id: int) -> bool:
            # asked just before each write: opened, edited or reviewed while the model ran
            if image_id == self.editing():
                return True
            edits = self.project.actions(image_id=image_id, since_id=cursor)
            return any(a.action in HUMAN_EDITS for a in edits)

        start = time.perf_counter()
        result = predict_images(
            self.project,
            report.model,
            image_ids=ids,
            threshold=self.threshold,
            device=resolve_device(self.hyperparameters.device),
            stop=self._stop,
            skip=skip,
        )
        report.predicted = result.images
        report.kept = sorted(set(report.kept) | set(result.skipped))
        report.predict_seconds = time.perf_counter() - start

    # ------------------------------------------------------------------ helpers
    def _watch(self) -> None:
        self._watching = True
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # reported, never raised into a thread nobody watches
                self._set_phase(self._idle_phase(), f"the loop hit an error: {exc}")
            self._stop.wait(self.poll_seconds)
        self._set_phase("stopped")

    def _idle_phase(self) -> str:
        if not self._watching:
            return "idle"
        return "paused" if self._paused else "watching"

    def _set_phase(self, phase: str, message: str | None = None) -> None:
        with self._lock:
            self._phase = phase
            if message is not None:
                self._message = message
        state = self.state
        for callback in list(self._state_callbacks):
            callback(state)

    def _scan(self) -> None:
        """Read the action log entries added since the last scan."""
        for action in self.project.actions(since_id=self._scanned):
            self._scanned = action.id
            if action.image_id is None or action.action not in HUMAN_EDITS:
                continue
            self._touched.add(action.image_id)
            if action.id > self._cursor:
                self._since.add(action.image_id)

    def _reviews(self) -> int:
        if self._model is None and not self.reports:
            # no model yet: every reviewed image is new to it (imported labels too)
            folders = self._train_folders()
            return (
                self.project.count_images(folder=list(folders), status="reviewed") if folders else 0
            )
        test = set(self.test_folders)
        count = 0
        for image_id in self._since:
            try:
                image = self.project.image(image_id)
            except Exception:  # deleted since: it counts for nothing
                continue
            count += image.status == "reviewed" and image.folder not in test
        return count

    def _train_folders(self) -> tuple[str, ...]:
        test = set(self.test_folders)
        return tuple(f for f in self.project.folders() if f not in test)

    def _test_folders_with_images(self) -> tuple[str, ...] | None:
        folders = tuple(f for f in self.test_folders if f in self.project.folders())
        return folders or None

    def _names(self) -> list[tuple[int, str]]:
        pattern = re.compile(rf"{re.escape(self.prefix)}-(\d+)")
        found = []
        for name in self.registry.names(self.task):
            match = pattern.fullmatch(name)
            if match:
                found.append((int(match.group(1)), name))
        return found

    def _next_round(self) -> int:
        """One more than the highest round of this prefix (a restarted loop carries on)."""
        return max((n for n, _ in self._names()), default=0) + 1

    def _base(self) -> tuple[str | None, bool]:
        """The round's base and whether it is a trained model (a warm start): the latest
        finished model of the task, else ``base_model`` (the first round's)."""
        latest = self._latest_model()[0]
        return (latest, True) if latest else (self.base_model, False)

    def _latest_model(self) -> tuple[str | None, int, float | None]:
        """The model a new run starts from (the registry's rule: the newest finished trained
        model of the task): name, round (0 if not this loop's) and AP50; ``None`` if none."""
        name = self.registry.default_base(self.task)
        if name in BASE_MODELS:
            return None, 0, None
        rounds = {model: n for n, model in self._names()}
        return name, rounds.get(name, 0), _ap50(self.registry.card(name).metrics)

    def _action_before(self, model: str | None) -> int:
        """The last action-log entry written before ``model`` was made (0 without one)."""
        if model is None:
            return 0
        made = datetime.fromisoformat(self.registry.card(model).created).timestamp()
        last = 0
        for action in self.project.actions():
            if action.ts >= made:
                break
            last = action.id
        return last


def _ap50(metrics: list[dict[str, Any]]) -> float | None:
    for entry in reversed(metrics):
        if entry.get("AP50") is not None:
            return float(entry["AP50"])
    return None


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _discard(items: list[Any], item: Any) -> None:
    if item in items:
        items.remove(item)
