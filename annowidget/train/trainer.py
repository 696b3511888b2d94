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
- After every completed epoch its weights are written as the model's weights, so a run that
  ends early (stopped, SIGTERM, an error, even a killed process) keeps the last completed
  epoch whatever ``eval_period`` says. A run stopped before its first epoch ended keeps
  nothing and leaves no model behind (its name stays free).
- A NaN/inf loss sends the run back to the last good weights (the initial ones in epoch 1)
  with half the learning rate, to retry the epoch once; the panel (a ``WarningEvent``) and
  the card's ``notes`` say so. A second one, a data error (an image that cannot be decoded
  stops the run and names the file) or any other exception ends the run with status
  ``failed`` and a reason; the last good epoch is kept as the weights. Nothing calls
  ``sys.exit``.
- ``base_model`` is a zoo model or a finished/stopped trained model of the project (warm
  start: categories matched by name, see :mod:`annowidget.models.warm_start`; the card
  records the ``parent``). By default a project's newest finished model of the task is the
  base, so rounds build on each other.
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
from annowidget.models.card import WEIGHTS_FILE, ModelCard, load_state_dict
from annowidget.models.catalog import BASE_MODELS, input_size, max_size_for
from annowidget.models.registry import ModelRegistry, build_kwargs, validate_model_name
from annowidget.models.runs import run_marker
from annowidget.models.tasks import check_task
from annowidget.models.warm_start import transfer_weights
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

#: Smallest ``image_size`` the detectors take: they downsample by 32 (and pool once more).
MIN_IMAGE_SIZE = 32
#: Seconds between two heartbeats written into the card of a running model.
HEARTBEAT_SECONDS = 60.0


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
        self.registry = ModelRegistry(project)
        self.pretrained = bool(pretrained)
        if base_model is None:  # rounds build on each other, unless asked for random weights
            base_model = self.registry.default_base(task) if pretrained else None
        #: the card of the trained model this run starts from (warm start), else None
        self.parent: ModelCard | None = None
        if base_model is not None and base_model not in BASE_MODELS:
            self.parent = self._parent_card(base_model)
            base_model = self.parent.base_model
        self.base_model = base_model or zoo.default_base_model(task)
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
        self._model: nn.Module | None = None
        self._heartbeat = 0.0
        self._lr_note = ""

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
        """The shorter side the model sees: the hyperparameter, else the parent's (a warm
        start keeps the scale its parent learned), else the base model's own."""
        hp_size = self.hyperparameters.image_size
        if not hp_size and self.parent is not None and self.parent.model_config.get("min_size"):
            return int(self.parent.model_config["min_size"])
        return input_size(self.base_model, hp_size)

    @property
    def model(self) -> nn.Module | None:
        """The model being trained (``None`` before the thread built it)."""
        return self._model

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
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"image_size {self.image_size} is too small: the models need at least "
                f"{MIN_IMAGE_SIZE} pixels (they downsample images 32 times or more)"
            )
        self._device = engine.resolve_device(hp.device)
        self._precision = resolve_precision(hp.precision, self._device)
        self._train_set, self._test_set = self._datasets()
        card = ModelCard(
            name=self.name,
            task=self.task,
            base_model=self.base_model,
            parent=self.parent.name if self.parent is not None else None,
            run=run_marker(),
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
    def _parent_card(self, name: str) -> ModelCard:
        """The card of the trained model ``name`` if it can be this run's base, else a
        ``ValueError`` saying why."""
        try:
            card = self.registry.card(name)
        except (KeyError, ValueError) as exc:
            trained = [e.name for e in self.registry.list(self.task) if e.kind == "trained"]
            zoo_names = ", ".join(m.name for m in zoo.list_base_models(self.task))
            raise ValueError(
                f"unknown base model {name!r}: expected one of {zoo_names}, or a trained "
                f"{self.task} model of this project ({', '.join(trained) or 'none yet'})"
            ) from exc
        if card.task != self.task:
            raise ValueError(
                f"base model {name!r} is a {card.task} model, not {self.task}: a trained "
                "model can only be the base of a run of its own task"
            )
        if card.status not in ("finished", "stopped"):
            raise ValueError(
                f"model {name!r} is {card.status}: only a finished or stopped model can be a base"
            )
        if not self.pretrained:
            raise ValueError(
                f"a run from {name!r} starts from its trained weights: pretrained=False "
                "(random weights) contradicts it; pick a zoo base model for that"
            )
        self.registry.weights_file(name)  # CheckpointError (a ValueError) when it has none
        return card

    def _model_config(self, num_classes: int) -> dict[str, Any]:
        config: dict[str, Any] = {
            "num_classes": num_classes,
            "min_size": self.image_size,
            "max_size": max_size_for(self.image_size),
            "rois_per_image": self.hyperparameters.rois_per_image,
            "pretrained": self.pretrained,  # the run started from pretrained weights
        }
        if self.parent is not None:
            # built like the parent (same frozen layers and norms), then given its weights
            inherited = self.parent.model_config
            config["pretrained"] = bool(inherited.get("pretrained", True))
            for key in ("frozen_batchnorm", "trainable_backbone_layers"):
                if key in inherited:
                    config[key] = inherited[key]
        elif not self.pretrained:
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
        model = zoo.build_model(
            self.base_model,
            self.card.num_classes,
            # a warm start is built like its parent (its config's "pretrained"): a parent
            # trained from scratch needs no pretrained weights on this machine
            pretrained=bool(self.card.model_config.get("pretrained", self.pretrained)),
            **build_kwargs(self.card),
        )
        if self.parent is not None:
            self._warm_start(model, self.parent)
        return model

    def _warm_start(self, model: nn.Module, parent: ModelCard) -> None:
        assert self.card is not None
        state = load_state_dict(self.registry.weights_file(parent.name))
        report = transfer_weights(
            model,
            state,
            parent.categories,
            self.card.categories,
            parent_keypoints=parent.keypoint_names,
            keypoints=self.card.keypoint_names,
        )
        note = f"started from model {parent.name}: {report.describe()}"
        self.card.notes.append(note)
        self.registry.save_card(self.card)
        if report.new or report.dropped or report.keypoints_new or report.keypoints_dropped:
            self._emit(WarningEvent(note))

    def _train(self, state: _RunState) -> None:
        hp = self.hyperparameters
        assert self._train_set is not None
        assert self._device is not None
        torch.manual_seed(hp.seed)
        device = self._device
        model = self._build_model().to(device)
        state.model = self._model = model
        state.keep(model, 0)  # epoch 0: where a retry of epoch 1 goes back to
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
        retried = False
        epoch = 1
        while epoch <= hp.epochs:
            epoch_lrs = [group["lr"] for group in optimizer.param_groups]
            try:
                result = engine.train_one_epoch(
                    model,
                    optimizer,
                    loader,
                    device,
                    epoch,
                    warmup_iters=hp.warmup_iters,
                    on_step=self._on_step,
                    stop_event=self._stop,
                    task=self.task,
                    run_start=run_start,
                    grad_clip_norm=hp.grad_clip_norm,
                    precision=self._precision,
                )
                if result.completed and not _finite(model):
                    raise engine.NonFiniteLossError(
                        f"the weights became NaN or infinite during epoch {epoch}; the "
                        f"learning rate ({result.lr:.3g}) is probably too high"
                    )
            except engine.NonFiniteLossError as exc:
                if retried:
                    raise engine.NonFiniteLossError(
                        f"{exc} (again, after going back to the last good weights with half "
                        "the learning rate)"
                    ) from exc
                retried = True
                self._retry(state, model, optimizer, scheduler, epoch_lrs, epoch, exc)
                continue
            if not result.completed:
                break
            state.keep(model, epoch)
            self.epoch = epoch
            # the last completed epoch is on disk at once: a run that ends early, even a
            # killed one, keeps it whatever eval_period says
            self.registry.save_weights(self.name, state.best)
            state.saved = epoch
            self._beat(force=True)
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
            epoch += 1
        if state.epoch == 0:
            # nothing learned: no model is left behind and the name stays free
            self.registry.delete(self.name)
            self._finish(
                state,
                "stopped",
                "stopped before the first epoch ended: nothing kept, no model registered",
                save=False,
            )
            return
        if state.epoch not in state.checkpointed:
            model.load_state_dict(state.best)  # drop the partial epoch before evaluating it
            self._checkpoint(state, evaluate=True)
        weights = self.model_dir / WEIGHTS_FILE
        if state.saved != state.epoch:
            weights = self.registry.save_weights(self.name, state.best)
        if state.epoch == hp.epochs:
            plural = "" if hp.epochs == 1 else "s"
            reason = f"trained {hp.epochs} epoch{plural}{self._lr_note}"
            self._finish(state, "finished", reason, weights)
        else:
            self._finish(
                state,
                "stopped",
                f"stopped by the user; kept epoch {state.epoch} of {hp.epochs}, "
                f"the last completed one{self._lr_note}",
                weights,
            )

    def _retry(
        self,
        state: _RunState,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        epoch_lrs: list[float],
        epoch: int,
        exc: Exception,
    ) -> None:
        """Back to the last good weights, half the learning rate, fresh momentum."""
        assert state.best is not None
        assert self.card is not None
        model.load_state_dict(state.best)
        optimizer.state.clear()  # momentum built on the diverging steps
        for group, lr in zip(optimizer.param_groups, epoch_lrs, strict=True):
            group["lr"] = lr / 2
            if "initial_lr" in group:
                group["initial_lr"] /= 2
        scheduler.base_lrs = [lr / 2 for lr in scheduler.base_lrs]
        where = f"epoch {state.epoch}'s weights" if state.epoch else "the initial weights"
        new_lr = epoch_lrs[0] / 2
        note = (
            f"epoch {epoch}: {exc}; went back to {where}, halved the learning rate to "
            f"{new_lr:.3g} and retried the epoch"
        )
        self._lr_note = f" (learning rate halved to {new_lr:.3g} after a non-finite loss)"
        self.card.notes.append(note)
        self.registry.save_card(self.card)
        self._emit(WarningEvent(note))

    def _on_step(self, event: TrainingEvent) -> None:
        self._emit(event)
        self._beat()

    def _beat(self, *, force: bool = False) -> None:
        """Refresh the heartbeat in the card (at most every HEARTBEAT_SECONDS)."""
        now = time.monotonic()
        if self.card is None or (not force and now - self._heartbeat < HEARTBEAT_SECONDS):
            return
        self._heartbeat = now
        self.card.run = run_marker()
        self.registry.save_card(self.card)

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

    def _finish(
        self,
        state: _RunState,
        status: str,
        reason: str,
        weights: Any = None,
        *,
        save: bool = True,
    ) -> None:
        assert self.card is not None
        self.card.status = status
        self.card.status_reason = reason
        self.card.run = {}
        if save:
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
            if state.epoch and state.best is not None and self.card is not None:
                if state.epoch not in state.checkpointed:
                    self._checkpoint(state, evaluate=False)
                if state.saved != state.epoch:
                    self.registry.save_weights(self.name, state.best)
                weights = self.model_dir / WEIGHTS_FILE
                kept = f"kept epoch {state.epoch} (the last good one) as the weights"
        except Exception as save_exc:  # report both problems rather than hide the first
            kept = f"could not keep epoch {state.epoch}: {save_exc}"
        full_reason = f"{reason} ({kept})"
        if self.card is not None:
            self.card.status = "failed"
            self.card.status_reason = full_reason
            self.card.run = {}
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
        self.saved = 0  # the epoch whose weights are on disk as the model's weights
        self.best: StateDict | None = None
        self.checkpointed: set[int] = set()
        self.model: nn.Module | None = None

    def keep(self, model: nn.Module, epoch: int) -> None:
        self.best = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.epoch = epoch


def _finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _folders(folders: Sequence[str], field: str) -> tuple[str, ...]:
    if isinstance(folders, str):
        folders = (folders,)
    out = tuple(str(f) for f in folders)
    if not out or not all(out):
        raise ValueError(f"{field} must name at least one folder, got {folders!r}")
    return out


__all__ = ["STATES", "Trainer"]
