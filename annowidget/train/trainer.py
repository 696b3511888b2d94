"""The background ``Trainer``: fine-tunes a base model on a project in a thread of the kernel.

Events (steps, epochs, evaluations, checkpoints, the end) go to a ``queue.Queue`` that a
widget drains on a timer, and to subscribers called from the training thread.

Rules it keeps:

- It trains on a snapshot of the reviewed annotations taken by :meth:`Trainer.start`: edits
  made while it runs never change the run.
- :meth:`Trainer.stop` takes effect before the next training step (an evaluation in
  progress finishes first). The last *completed* epoch is kept: checkpointed, evaluated and
  written as the model's weights. The final event says which epoch was kept.
- Every ``eval_period`` epochs, and at the end, a checkpoint is written atomically and
  evaluated on the test images; the metrics go into the model card.
- A NaN/inf loss, a data error (an image that cannot be decoded stops the run and names the
  file) or any other exception ends the run with status ``failed`` and a reason; the last
  good epoch is kept as the weights. Nothing calls ``sys.exit``.
- It uses ``hyperparameters.num_threads`` threads (all cores but one by default) so the
  notebook stays responsive.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from annowidget.models import zoo
from annowidget.models.card import ModelCard
from annowidget.models.catalog import BASE_MODELS, input_size, max_size_for
from annowidget.models.registry import ModelRegistry, build_kwargs, validate_model_name
from annowidget.models.tasks import check_task
from annowidget.store import Project, Snapshot
from annowidget.train import engine
from annowidget.train.dataset import SnapshotDataset, keypoint_names, split_items
from annowidget.train.events import (
    CheckpointEvent,
    EpochEvent,
    EvalEvent,
    FailedEvent,
    FinishedEvent,
    TrainingEvent,
    WarningEvent,
)
from annowidget.train.hyperparameters import Hyperparameters
from annowidget.train.loader import train_loader
from annowidget.train.precision import resolve_precision

Subscriber = Callable[[TrainingEvent], Any]
StateDict = dict[str, torch.Tensor]

STATES: tuple[str, ...] = ("idle", "running", "stopping", "finished", "stopped", "failed")


class Trainer:
    """Fine-tune ``base_model`` on a project's reviewed images, in a background thread.

    Example:
        >>> # trainer = Trainer(project, "raccoons-v1", hyperparameters=Hyperparameters(epochs=4))
        >>> # trainer.subscribe(print); trainer.start(); ...; trainer.stop(); trainer.join()
        >>> # trainer.status, trainer.reason -> ('stopped', 'stopped by the user after epoch 2 ...')
    """

    def __init__(
        self,
        project: Project,
        name: str,
        *,
        task: str = "detection",
        base_model: str | None = None,
        hyperparameters: Hyperparameters | None = None,
        train_folders: Sequence[str] = ("train",),
        test_folders: Sequence[str] | None = ("test",),
        description: str = "",
        pretrained: bool = True,
    ) -> None:
        self.project = project
        self.task = check_task(task)
        self.name = validate_model_name(name)
        self.base_model = base_model or zoo.default_base_model(task)
        if self.base_model not in BASE_MODELS:
            raise ValueError(
                f"unknown base model {self.base_model!r}: expected one of "
                f"{', '.join(m.name for m in zoo.list_base_models(task))}"
            )
        if BASE_MODELS[self.base_model].task != task:
            raise ValueError(
                f"base model {self.base_model!r} is for {BASE_MODELS[self.base_model].task}, "
                f"not {task}"
            )
        self.hyperparameters = hyperparameters or Hyperparameters()
        if not isinstance(self.hyperparameters, Hyperparameters):
            raise TypeError("hyperparameters must be a Hyperparameters instance")
        self.train_folders = _folders(train_folders, "train_folders")
        self.test_folders = None if test_folders is None else _folders(test_folders, "test_folders")
        both = set(self.train_folders) & set(self.test_folders or ())
        if both:
            raise ValueError(f"folder(s) {', '.join(sorted(both))} in both train and test folders")
        self.description = description
        self.pretrained = bool(pretrained)
        self.registry = ModelRegistry(project)
        if self.registry.exists(self.name):
            raise ValueError(f"model name {self.name!r} already exists in this project")
        self.events: queue.Queue[TrainingEvent] = queue.Queue()
        self.card: ModelCard | None = None
        self.epoch = 0  # last completed epoch
        self.reason = ""
        self._status = "idle"
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Set when the thread's work is over. Waiting on it rather than on Thread.join:
        # a Ctrl-C that interrupts Thread.join can leave is_alive() wrongly False (CPython
        # gh-90882), and the CLI would then exit under a running thread.
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._device: torch.device | None = None
        self._train_set: SnapshotDataset | None = None
        self._test_set: SnapshotDataset | None = None

    # ------------------------------------------------------------------ public API
    @property
    def status(self) -> str:
        """``idle``, ``running``, ``stopping``, ``finished``, ``stopped`` or ``failed``."""
        return self._status

    @property
    def model_dir(self) -> Path:
        """The folder of the model being trained (``<project>/models/<name>``)."""
        return self.registry.model_dir(self.name)

    @property
    def image_size(self) -> int:
        return input_size(self.base_model, self.hyperparameters.image_size)

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` (from the training thread) for every event; returns an
        unsubscribe function. A subscriber that raises is dropped, with a ``WarningEvent``.

        Example:
            >>> # unsubscribe = trainer.subscribe(lambda e: print(e.kind))
        """
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def start(self) -> Trainer:
        """Snapshot the data, register the model and start training in a background thread.

        Problems found before training (no reviewed images, a missing image file, an
        unavailable device, a taken name) raise ``ValueError`` here.

        Example:
            >>> # Trainer(project, "m1").start().join()
        """
        if self._status != "idle":
            raise RuntimeError(f"trainer {self.name!r} was already started ({self._status})")
        hp = self.hyperparameters
        self._device = engine.resolve_device(hp.device)
        self._precision = resolve_precision(hp.precision, self._device)
        self._train_set, self._test_set = self._datasets()
        card = ModelCard(
            name=self.name,
            task=self.task,
            base_model=self.base_model,
            categories=[c.name for c in self._train_set.categories],
            num_keypoints=len(self._train_set.keypoint_names) or None,
            keypoint_names=list(self._train_set.keypoint_names),
            description=self.description,
            hyperparameters=hp.to_dict(),
            train_folders=list(self.train_folders),
            test_folders=list(self.test_folders or []),
            status="training",
            model_config=self._model_config(len(self._train_set.categories) + 1),
        )
        self.registry.reserve(self.name, card)
        self.card = card
        self._status = "running"
        self._thread = threading.Thread(
            target=self._run, name=f"annowidget-train-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop before its next step; the last completed epoch is kept."""
        self._stop.set()
        with self._lock:  # never turn a run that just ended back into "stopping"
            if self._status == "running":
                self._status = "stopping"

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; ``True`` if it has ended (``False`` on timeout)."""
        if self._thread is None:
            return self._status != "idle"
        if not self._done.wait(timeout):
            return False
        self._thread.join()  # the thread only has to return now
        return True

    def run(self) -> ModelCard:
        """Start, wait for the end and return the final card (blocking; for scripts).

        Example:
            >>> # card = Trainer(project, "m1", hyperparameters=Hyperparameters(epochs=2)).run()
        """
        self.start()
        try:
            while not self.join(0.2):
                pass
        except KeyboardInterrupt:
            self.stop()
            self.join()
        assert self.card is not None
        return self.card

    @property
    def running(self) -> bool:
        """Whether the training thread is still at work."""
        return self._thread is not None and not self._done.is_set()

    # ------------------------------------------------------------------ preparation
    def _model_config(self, num_classes: int) -> dict[str, Any]:
        config: dict[str, Any] = {
            "num_classes": num_classes,
            "min_size": self.image_size,
            "max_size": max_size_for(self.image_size),
            "rois_per_image": self.hyperparameters.rois_per_image,
            "pretrained": self.pretrained,  # the run started from pretrained weights
        }
        if not self.pretrained:
            config["frozen_batchnorm"] = False  # from scratch: norms must learn too
        return config

    def _datasets(self) -> tuple[SnapshotDataset, SnapshotDataset | None]:
        hp = self.hyperparameters
        train = self.project.snapshot(list(self.train_folders))
        if self.test_folders is None:
            train_items, test_items = split_items(train.items, hp.split_ratio, hp.seed)
            test = Snapshot(train.categories, test_items)
            train = Snapshot(train.categories, train_items)
        else:
            test = self.project.snapshot(list(self.test_folders))
        if not train.items:
            raise ValueError(
                f"no reviewed images in folder(s) {', '.join(self.train_folders)}: "
                "label (or accept predictions on) some images first"
            )
        if train.num_annotations == 0:
            raise ValueError(
                f"the reviewed images of {', '.join(self.train_folders)} have no annotations: "
                "there is nothing to learn from"
            )
        if not train.categories:
            raise ValueError("the project has no categories")
        if self.task == "keypoints" and not keypoint_names(train.categories):
            raise ValueError(
                "the keypoints task needs a category with keypoint names "
                "(project.add_category(name, keypoints=[...]))"
            )
        common = {"task": self.task, "image_size": self.image_size}
        train_set = SnapshotDataset.from_snapshot(
            self.project, train, train=True, augment=hp.augment, **common
        )
        if not test.items:
            return train_set, None
        return train_set, SnapshotDataset.from_snapshot(self.project, test, **common)

    # ------------------------------------------------------------------ the thread
    def _emit(self, event: TrainingEvent) -> None:
        self.events.put(event)
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception as exc:  # a UI bug must not kill a long training run
                with self._lock:
                    if fn in self._subscribers:
                        self._subscribers.remove(fn)
                warning = WarningEvent(f"event subscriber {fn!r} raised {exc!r}; removed it")
                self.events.put(warning)

    def _run(self) -> None:
        previous_threads = torch.get_num_threads()
        state = _RunState()
        try:
            torch.set_num_threads(self.hyperparameters.num_threads)
            self._train(state)
        except BaseException as exc:  # never let the thread die silently
            self._fail(state, exc)
        finally:
            torch.set_num_threads(previous_threads)
            self._done.set()

    def _build_model(self) -> nn.Module:
        assert self.card is not None
        return zoo.build_model(
            self.base_model,
            self.card.num_classes,
            pretrained=self.pretrained,
            **build_kwargs(self.card),
        )

    def _train(self, state: _RunState) -> None:
        hp = self.hyperparameters
        assert self._train_set is not None
        assert self._device is not None
        torch.manual_seed(hp.seed)
        device = self._device
        model = self._build_model().to(device)
        state.model = model
        optimizer = engine.make_optimizer(model, hp)
        scheduler = engine.make_scheduler(optimizer, hp)
        loader = train_loader(self._train_set, hp, device)
        if self._test_set is None:
            folders = ", ".join(self.test_folders or ())
            self._emit(
                WarningEvent(
                    f"no reviewed images in test folder(s) {folders}: "
                    "checkpoints will not be evaluated"
                )
            )
        run_start = time.perf_counter()
        for epoch in range(1, hp.epochs + 1):
            result = engine.train_one_epoch(
                model,
                optimizer,
                loader,
                device,
                epoch,
                warmup_iters=hp.warmup_iters,
                on_step=self._emit,
                stop_event=self._stop,
                task=self.task,
                run_start=run_start,
                precision=self._precision,
            )
            if not result.completed:
                break
            if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                raise engine.NonFiniteLossError(
                    f"the weights became NaN or infinite during epoch {epoch}; the learning "
                    f"rate ({result.lr:.3g}) is probably too high"
                )
            state.keep(model, epoch)
            self.epoch = epoch
            self._emit(
                EpochEvent(
                    epoch=epoch,
                    epochs=hp.epochs,
                    loss=result.loss,
                    loss_parts=result.loss_parts,
                    lr=result.lr,
                    seconds=result.seconds,
                    images=result.images,
                    elapsed=time.perf_counter() - run_start,
                )
            )
            scheduler.step()
            if epoch % hp.eval_period == 0 or epoch == hp.epochs:
                self._checkpoint(state, evaluate=True)
            if self._stop.is_set():
                break
        if state.epoch == 0:
            self._finish(state, "stopped", "stopped before the first epoch ended: nothing kept")
            return
        if state.epoch not in state.checkpointed:
            model.load_state_dict(state.best)  # drop the partial epoch before evaluating it
            self._checkpoint(state, evaluate=True)
        weights = self.registry.save_weights(self.name, state.best)
        if state.epoch == hp.epochs:
            plural = "" if hp.epochs == 1 else "s"
            self._finish(state, "finished", f"trained {hp.epochs} epoch{plural}", weights)
        else:
            self._finish(
                state,
                "stopped",
                f"stopped by the user; kept epoch {state.epoch} of {hp.epochs}, "
                "the last completed one",
                weights,
            )

    def _checkpoint(self, state: _RunState, *, evaluate: bool) -> None:
        assert self.card is not None
        assert state.best is not None
        epoch = state.epoch
        relative = self.registry.save_checkpoint(self.name, epoch, state.best)
        state.checkpointed.add(epoch)
        self.card.add_checkpoint(epoch, relative)
        self.registry.save_card(self.card)
        self._emit(CheckpointEvent(epoch=epoch, path=str(self.model_dir / relative)))
        if evaluate and self._test_set is not None and state.model is not None:
            metrics = engine.evaluate(state.model, self._test_set, self._device)
            self.card.add_metrics(epoch, metrics)
            self.registry.save_card(self.card)
            self._emit(EvalEvent(epoch=epoch, metrics=metrics))

    def _finish(self, state: _RunState, status: str, reason: str, weights: Any = None) -> None:
        assert self.card is not None
        self.card.status = status
        self.card.status_reason = reason
        self.registry.save_card(self.card)
        with self._lock:
            self.reason = reason
            self._status = status
        self._emit(
            FinishedEvent(
                status=status,
                reason=reason,
                model_name=self.name,
                epoch=state.epoch,
                weights=str(weights) if weights else None,
            )
        )

    def _fail(self, state: _RunState, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        weights = None
        kept = "no epoch completed, no weights kept"
        try:
            if state.best is not None and self.card is not None:
                if state.epoch not in state.checkpointed:
                    self._checkpoint(state, evaluate=False)
                weights = self.registry.save_weights(self.name, state.best)
                kept = f"kept epoch {state.epoch} (the last good one) as the weights"
        except Exception as save_exc:  # report both problems rather than hide the first
            kept = f"could not keep epoch {state.epoch}: {save_exc}"
        full_reason = f"{reason} ({kept})"
        if self.card is not None:
            self.card.status = "failed"
            self.card.status_reason = full_reason
            try:
                self.registry.save_card(self.card)
            except Exception as card_exc:
                full_reason += f"; the model card could not be saved: {card_exc}"
        with self._lock:  # the card is on disk before anyone sees the new status
            self.reason = full_reason
            self._status = "failed"
        self._emit(
            FailedEvent(
                reason=full_reason,
                model_name=self.name,
                epoch=state.epoch if weights else 0,
                weights=str(weights) if weights else None,
                details={"traceback": "".join(traceback.format_exception(exc))},
            )
        )


class _RunState:
    """The last good epoch of a run: its number and a CPU copy of its weights."""

    def __init__(self) -> None:
        self.epoch = 0
        self.best: StateDict | None = None
        self.checkpointed: set[int] = set()
        self.model: nn.Module | None = None

    def keep(self, model: nn.Module, epoch: int) -> None:
        self.best = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.epoch = epoch


def _folders(folders: Sequence[str], field: str) -> tuple[str, ...]:
    if isinstance(folders, str):
        folders = (folders,)
    out = tuple(str(f) for f in folders)
    if not out or not all(out):
        raise ValueError(f"{field} must name at least one folder, got {folders!r}")
    return out


__all__ = ["STATES", "Trainer"]
