"""The TrainingPanel: the no-code form over :class:`annowidget.train.Trainer`.

It holds no training logic. Run builds ``Hyperparameters`` and a ``Trainer`` from the form
and starts it (the cell returns at once); a :class:`~annowidget.widgets._throttle.Pump`
drains the trainer's event queue at about 2 Hz and updates the progress bar and ONE plotly
``FigureWidget`` inside ``batch_update()``. Errors (bad values, a failed run) are shown in
the panel, never raised into the kernel's output.

States: ``idle`` -> ``running`` -> (``stopping``) -> ``finished`` | ``stopped`` | ``failed``,
and back to ``running`` on the next Run. Run is disabled while a run is active, Stop while
none is.
"""

from __future__ import annotations

import html
import queue
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from plotly.subplots import make_subplots

from annowidget.models.catalog import list_base_models
from annowidget.models.registry import ModelRegistry, validate_model_name
from annowidget.models.tasks import TASKS
from annowidget.models.weights import hub_checkpoints_dir, offline_mode, weights_available
from annowidget.store import Project
from annowidget.train.events import FailedEvent, FinishedEvent, TrainingEvent
from annowidget.train.hyperparameters import Hyperparameters
from annowidget.train.launch import visible_gpus
from annowidget.widgets._hyperparameter_form import HyperparameterForm
from annowidget.widgets._live_figure import LiveFigure
from annowidget.widgets._run_history import PLOTTED_METRICS, RunHistory, quality_verdict
from annowidget.widgets._throttle import Pump

if TYPE_CHECKING:
    from annowidget.train import Trainer

__all__ = ["STATES", "TrainingPanel"]

STATES: tuple[str, ...] = ("idle", "running", "stopping", "finished", "stopped", "failed")
_ACTIVE = frozenset({"running", "stopping"})
_COLORS = {
    "finished": "#2e7d32",
    "weak": "#ef6c00",
    "stopped": "#ef6c00",
    "failed": "#c62828",
    "error": "#c62828",
}


def next_model_name(project: Project, stem: str = "model") -> str:
    """The first ``<stem>-<n>`` not yet used in the project's registry.

    Example:
        >>> next_model_name(project)  # doctest: +SKIP
        'model-1'
    """
    registry = ModelRegistry(project)
    n = 1
    while registry.exists(f"{stem}-{n}"):
        n += 1
    return f"{stem}-{n}"


def base_model_options(task: str, project: Project | None = None) -> list[tuple[str, str]]:
    """``(label, name)`` pairs for the base-model dropdown; the label says if the weights
    are on this machine (offline-ready) or need a download on first use. With
    ``ANNOWIDGET_OFFLINE=1`` a download is impossible: those models come last, marked
    as unavailable with the reason (they still train from random weights). With
    ``project``, its finished and stopped models of ``task`` follow the zoo's (warm start).

    Example:
        >>> "keypointrcnn_mobilenet_v2_fpn" in dict(base_model_options("keypoints")).values()
        True
    """
    ready, download = [], []
    missing = "✗ offline: weights not in the hub cache" if offline_mode() else "⇩ needs download"
    for base in list_base_models(task):
        if weights_available(base.name):
            ready.append((f"{base.name}  (✓ offline)", base.name))
        else:
            download.append((f"{base.name}  ({missing})", base.name))
    trained = []
    if project is not None:
        for entry in ModelRegistry(project).list(task):
            card = entry.card
            usable = card is not None and card.status in ("finished", "stopped")
            if entry.kind == "trained" and entry.ready and card is not None and usable:
                trained.append((f"{entry.name}  (trained here, {card.status})", entry.name))
    return ready + download + trained  # what works here first


class TrainingPanel(widgets.VBox):
    """Pick a base model, folders and hyperparameters; Run trains in the background.

    Example:
        >>> panel = TrainingPanel(project, hyperparameters={"epochs": 2})  # doctest: +SKIP
        >>> panel  # shows the form; press Run, or:  # doctest: +SKIP
        >>> trainer = panel.run()  # returns at once  # doctest: +SKIP
        >>> panel.wait()  # only in scripts and tests: blocks until the run ends  # doctest: +SKIP
    """

    def __init__(
        self,
        project: Project,
        *,
        task: str = "detection",
        base_model: str | None = None,
        name: str | None = None,
        description: str = "",
        hyperparameters: Hyperparameters | dict[str, Any] | None = None,
        train_folders: Sequence[str] | None = None,
        test_folders: Sequence[str] | None = None,
        pretrained: bool = True,
        interval: float = 0.5,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"TrainingPanel task must be one of {', '.join(TASKS)}; got {task!r}")
        self.project = project
        self.interval = float(interval)
        self.trainer: Trainer | None = None
        self.history = RunHistory(epochs=0)
        self.state = "idle"
        self._pump: Pump | None = None
        self._finished_callbacks = widgets.CallbackDispatcher()
        # Serialises widget writes between the kernel thread (clicks) and the pump.
        self._ui_lock = threading.RLock()
        self._drain_lock = threading.Lock()

        style = {"description_width": "130px"}
        wide = widgets.Layout(width="520px")
        self.name = widgets.Text(
            value=name or next_model_name(project), description="model name", style=style
        )
        self.description = widgets.Textarea(
            value=description,
            description="description",
            placeholder="what this model is for (optional)",
            style=style,
            layout=widgets.Layout(width="520px", height="48px"),
        )
        self.task = widgets.Dropdown(
            options=list(TASKS), value=task, description="task", style=style
        )
        self.base_model = widgets.Dropdown(
            options=base_model_options(task, project),
            description="base model",
            style=style,
            layout=wide,
        )
        self.base_model.value = base_model or ModelRegistry(project).default_base(task)
        self.base_model_help = widgets.HTML()
        self.pretrained = widgets.Checkbox(
            value=pretrained,
            description="start from pre-trained weights (transfer learning)",
            indent=False,
            # A checkbox is 300 px wide by default: this label would end in "transfer l...".
            layout=widgets.Layout(width="auto"),
        )
        folders = project.folders()
        self.train_folders = widgets.SelectMultiple(
            options=folders,
            value=_pick(folders, train_folders, "train", "train_folders"),
            description="train folders",
            style=style,
            rows=min(5, max(2, len(folders))),
        )
        self.test_folders = widgets.SelectMultiple(
            options=folders,
            value=_pick(folders, test_folders, "test", "test_folders"),
            description="test folders",
            style=style,
            rows=min(5, max(2, len(folders))),
        )
        self.folder_warning = widgets.HTML()
        self.form = HyperparameterForm(hyperparameters)
        # Several GPUs: the run goes through torchrun (DDP), followed like one in this kernel.
        gpus = visible_gpus()
        self.gpus = (
            widgets.BoundedIntText(value=gpus, min=1, max=gpus, description="GPUs", style=style)
            if gpus > 1
            else None
        )

        self.run_button = widgets.Button(description="Run", icon="play", button_style="success")
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", button_style="danger", disabled=True
        )
        self.progress = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="300px")
        )
        self.progress_text = widgets.Label("idle")
        self.message = widgets.HTML()
        self.figure = self._new_figure()

        self.task.observe(self._on_task, names="value")
        self.base_model.observe(lambda _: self._describe_base_model(), names="value")
        self.pretrained.observe(lambda _: self._describe_base_model(), names="value")
        self.train_folders.observe(lambda _: self._check_folders(), names="value")
        self.test_folders.observe(lambda _: self._check_folders(), names="value")
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self._describe_base_model()
        self._check_folders()

        model_box = widgets.VBox(
            [
                self.name,
                self.description,
                self.task,
                self.base_model,
                self.base_model_help,
                self.pretrained,
            ]
        )
        data_box = widgets.VBox(
            [widgets.HBox([self.train_folders, self.test_folders]), self.folder_warning]
        )
        hyperparameters_box = widgets.VBox(
            [self.form.box] if self.gpus is None else [self.gpus, self.form.box]
        )
        setup = widgets.Accordion(
            [model_box, data_box, hyperparameters_box], selected_index=0, layout=widgets.Layout()
        )
        for index, title in enumerate(("model", "data", "hyperparameters")):
            setup.set_title(index, title)
        self.setup = setup
        controls = widgets.HBox(
            [self.run_button, self.stop_button, self.progress, self.progress_text],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
        )
        super().__init__([setup, controls, self.message, self.figure])

    # ------------------------------------------------------------------ form -> engine
    def _on_task(self, change: dict[str, Any]) -> None:
        task = change["new"]
        self.base_model.options = base_model_options(task, self.project)
        self.base_model.value = ModelRegistry(self.project).default_base(task)

    def _describe_base_model(self) -> None:
        base = {m.name: m for m in list_base_models(self.task.value)}.get(self.base_model.value)
        if base is None:  # a trained model of the project: a warm start
            name = self.base_model.value
            self.base_model_help.value = (
                f"<small style='color:#666'>warm start from {html.escape(str(name))}: its "
                "weights, categories matched by name (new ones learn from scratch)</small>"
                if name
                else ""
            )
            return
        color = "#666"
        if not self.pretrained.value:
            where = "starts from random weights (nothing to download)"
        elif weights_available(base.name):
            where = "weights on this machine"
        elif offline_mode():  # greyed: a pre-trained start cannot work here
            color = "#9e9e9e"
            where = (
                f"not available offline: {base.weights_file} is not in {hub_checkpoints_dir()}"
                " (copy it there, or untick pre-trained weights to start from random ones)"
            )
        else:
            where = "weights download on first use (needs internet)"
        self.base_model_help.value = (
            f"<small style='color:{color}'>{html.escape(base.description)} · "
            f"{html.escape(where)}</small>"
        )

    def _check_folders(self) -> None:
        shared = sorted(set(self.train_folders.value) & set(self.test_folders.value))
        if shared:
            self.folder_warning.value = (
                "<span style='color:#ef6c00'>⚠ train and test share "
                f"{html.escape(', '.join(shared))}: a model tested on images it learned from "
                "looks better than it is. Pick separate folders (Run refuses this).</span>"
            )
        elif not self.test_folders.value:
            self.folder_warning.value = (
                "<small style='color:#666'>No test folder: the training folders are split "
                f"by the train/test split ratio ({self.form.inputs['split_ratio'].value}).</small>"
            )
        else:
            self.folder_warning.value = ""

    @property
    def folders_overlap(self) -> bool:
        return bool(set(self.train_folders.value) & set(self.test_folders.value))

    def refresh_folders(self) -> None:
        """Offer the project's current folders (after imports or moves), keeping selections."""
        folders = self.project.folders()
        with self._ui_lock:
            for select in (self.train_folders, self.test_folders):
                kept = tuple(f for f in select.value if f in folders)
                select.options = folders
                select.value = kept
        self._check_folders()

    def hyperparameters(self) -> Hyperparameters:
        """The form's hyperparameters, validated (``ValueError`` names the bad field)."""
        return self.form.read()

    def _trainer_arguments(self) -> dict[str, Any]:
        name = validate_model_name(self.name.value.strip())
        if ModelRegistry(self.project).exists(name):
            raise ValueError(f"model name {name!r} already exists in this project: pick another")
        if not self.train_folders.value:
            raise ValueError("train folders: pick at least one folder to train on")
        return {
            "name": name,
            "task": self.task.value,
            "base_model": self.base_model.value,
            "hyperparameters": self.hyperparameters(),
            "train_folders": list(self.train_folders.value),
            # none picked: the Trainer splits the training folders by split_ratio
            "test_folders": list(self.test_folders.value) or None,
            "description": self.description.value,
            "pretrained": bool(self.pretrained.value),
        }

    # ------------------------------------------------------------------ Run / Stop
    def run(self) -> Trainer | None:
        """What the Run button does: start a run in the background and return at once.

        Returns the ``Trainer``, or ``None`` when the form is invalid or the run could not
        start (the reason is shown in the panel).
        """
        with self._ui_lock:
            if self.state in _ACTIVE:
                return self.trainer
            try:
                arguments = self._trainer_arguments()
                from annowidget.train import Trainer  # heavy (torch): imported on first Run

                name = arguments.pop("name")
                if self.gpus is not None and self.gpus.value > 1:
                    from annowidget.train.launch import DistributedTraining

                    trainer: Any = DistributedTraining(
                        self.project, name, nproc_per_node=int(self.gpus.value), **arguments
                    )
                else:
                    trainer = Trainer(self.project, name, **arguments)
                trainer.start()
            except Exception as exc:  # shown in the panel: a form must not raise into the kernel
                self._show("error", f"{type(exc).__name__}: {exc}" if not _plain(exc) else str(exc))
                return None
            self.trainer = trainer
            self.history = RunHistory(epochs=arguments["hyperparameters"].epochs)
            self._reset_figure()
            self._set_state("running")
            self._show("", f"training <b>{html.escape(name)}</b>…")
            self.progress.value = 0.0
            self.progress_text.value = self.history.progress_text()
        self._pump = Pump(
            self._tick, interval=self.interval, on_error=self._pump_failed, name="annowidget-train"
        ).start()
        return trainer

    def stop(self) -> None:
        """What the Stop button does: ask the run to stop; the last finished epoch is kept."""
        with self._ui_lock:
            if self.state != "running" or self.trainer is None:
                return
            self.trainer.stop()
            self._set_state("stopping")
            self.progress_text.value = "stopping after the current step…"

    def wait(self, timeout: float | None = None) -> TrainingEvent | None:
        """Block until the run ends and the panel shows it; returns the final event.

        For scripts, tests and the end of a notebook (so no training thread outlives it).
        """
        if self.trainer is None:
            return None
        self.trainer.join(timeout)
        self.drain()
        if self._pump is not None and self.state not in _ACTIVE:
            self._pump.stop()  # it has nothing left to do; do not wait out its interval
            self._pump.join(5.0)
        return self.history.final

    def on_finished(
        self, callback: Callable[[TrainingEvent], None], *, remove: bool = False
    ) -> None:
        """Call ``callback(event)`` when a run ends (``FinishedEvent`` or ``FailedEvent``).

        The PredictPanel uses it to list the new model without re-running a cell.
        """
        self._finished_callbacks.register_callback(callback, remove=remove)

    # ------------------------------------------------------------------ event drain
    def _tick(self) -> bool:
        self.drain()
        return self.state in _ACTIVE

    def drain(self) -> int:
        """Apply every event waiting in the trainer's queue to the widgets (one figure
        update); returns how many were applied. The pump calls it about twice a second."""
        trainer = self.trainer
        if trainer is None:
            return 0
        with self._drain_lock:
            events = _take_all(trainer.events)
            final = self._add(events)
            if final is None and self.state in _ACTIVE and not _alive(trainer):
                # The thread may have queued its last event just before it ended: read once
                # more before concluding that it ended without a result.
                late = _take_all(trainer.events)
                events += late
                final = self._add(late)
            if final is None and self.state in _ACTIVE and not _alive(trainer):
                # the thread ended without saying how: should not happen, but never hang
                final = FailedEvent(reason="the training thread ended without a result")
                self.history.add(final)
            if events or final is not None:
                self._render(final_now=final is not None and self.state in _ACTIVE)
            return len(events)

    def _add(self, events: list[TrainingEvent]) -> FinishedEvent | FailedEvent | None:
        for event in events:
            self.history.add(event)
        return self.history.final

    def _render(self, *, final_now: bool) -> None:
        history = self.history
        with self._ui_lock:
            self._update_figure()
            self.progress.value = history.fraction_done
            self.progress_text.value = history.progress_text()
            if history.warnings:
                warnings = "<br>".join(html.escape(w) for w in history.warnings[-3:])
                self._show("", f"<small style='color:#ef6c00'>⚠ {warnings}</small>")
            if final_now:
                self._finish(history.final)

    def _finish(self, event: FinishedEvent | FailedEvent | None) -> None:
        if isinstance(event, FinishedEvent):
            state = "stopped" if event.status == "stopped" else "finished"
            if state == "stopped":
                kept = f"kept epoch {event.epoch}" if event.epoch else "no epoch completed"
                text = f"stopped: {kept} · model <b>{html.escape(event.model_name)}</b>"
            else:
                usable, quality = quality_verdict(self.history.last_metrics)
                name = f"<b>{html.escape(event.model_name)}</b>"
                if usable:
                    text = f"finished: model {name} is ready"
                    text += f" · {html.escape(quality)}" if quality else ""
                else:  # saved, but not worth pre-labeling with: say so, not in green
                    state = "weak"
                    text = f"finished: model {name} saved, but {html.escape(quality)}"
            if event.reason:
                text += f"<br><small>{html.escape(event.reason)}</small>"
        else:
            state = "failed"
            reason = event.reason if event is not None else "unknown reason"
            text = f"failed: {html.escape(reason)}"  # the reason says which epoch was kept
        self._set_state("finished" if state == "weak" else state)
        self._show(state, text)
        # this name is taken now: offer the next one in the same series (raccoon-2 -> raccoon-3)
        stem = re.sub(r"-\d+$", "", event.model_name if event is not None else "") or "model"
        self.name.value = next_model_name(self.project, stem)
        for callback in list(self._finished_callbacks.callbacks):
            try:
                callback(event)
            except Exception as exc:  # a broken listener must not break the panel
                self._show("error", f"{text}<br>on_finished callback failed: {exc!r}")

    def _pump_failed(self, exc: BaseException) -> None:
        with self._ui_lock:
            self._set_state("failed")
            self._show("failed", f"the panel stopped updating: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ widgets
    def _set_state(self, state: str) -> None:
        self.state = state
        active = state in _ACTIVE
        self.run_button.disabled = active
        self.stop_button.disabled = state != "running"
        for widget in (
            self.name,
            self.description,
            self.task,
            self.base_model,
            self.pretrained,
            self.train_folders,
            self.test_folders,
        ):
            widget.disabled = active
        self.form.set_disabled(active)

    def _show(self, kind: str, text: str) -> None:
        color = _COLORS.get(kind)
        self.message.value = f"<span style='color:{color}'>{text}</span>" if color else text

    @staticmethod
    def _new_figure() -> LiveFigure:
        figure = LiveFigure(
            make_subplots(
                rows=1, cols=2, subplot_titles=("loss per step", "test metrics per evaluation")
            )
        )
        # markers: a single step is a visible point, not an invisible zero-length line
        figure.add_scatter(
            x=[], y=[], name="loss", mode="lines+markers", marker={"size": 4}, row=1, col=1
        )
        for metric in PLOTTED_METRICS[:2]:
            figure.add_scatter(x=[], y=[], name=metric, mode="lines+markers", row=1, col=2)
        figure.update_layout(height=320, margin={"l": 40, "r": 10, "t": 30, "b": 30})
        figure.update_xaxes(title_text="step", row=1, col=1)
        figure.update_xaxes(title_text="epoch", row=1, col=2)
        figure.update_yaxes(range=[0, 1], row=1, col=2)
        return figure

    def _reset_figure(self) -> None:
        with self.figure.batch_update():
            for trace in self.figure.data:
                trace.x, trace.y = (), ()

    def _update_figure(self) -> None:
        history = self.history
        figure = self.figure
        names = {trace.name: trace for trace in figure.data}
        # New series (loss parts, mIoU) get a trace first: traces cannot be added mid-batch.
        for part in history.parts:
            if part not in names:
                figure.add_scatter(
                    x=[], y=[], name=part, mode="lines", line={"width": 1}, row=1, col=1
                )
        for metric in history.metrics:
            if metric not in names:
                figure.add_scatter(x=[], y=[], name=metric, mode="lines+markers", row=1, col=2)
        names = {trace.name: trace for trace in figure.data}
        steps = tuple(history.steps)
        with figure.batch_update():
            names["loss"].x, names["loss"].y = steps, tuple(history.loss)
            for part, values in history.parts.items():
                names[part].x, names[part].y = steps, tuple(values)
            for metric, values in history.metrics.items():
                names[metric].x, names[metric].y = tuple(history.eval_epochs), tuple(values)


def _pick(
    folders: Sequence[str], wanted: Sequence[str] | None, default: str, field: str
) -> tuple[str, ...]:
    if wanted is None:
        return (default,) if default in folders else ()
    if isinstance(wanted, str):
        wanted = [wanted]
    missing = [f for f in wanted if f not in folders]
    if missing:
        raise ValueError(f"{field}: no folder named {', '.join(missing)} (folders: {folders})")
    return tuple(wanted)


def _alive(trainer: Trainer) -> bool:
    return bool(trainer.running)


def _plain(exc: Exception) -> bool:
    """Our own validation errors read well as they are; others get their type name."""
    return type(exc) is ValueError or type(exc).__name__ in {"ProjectError", "MissingWeightsError"}


def _take_all(events: queue.Queue[TrainingEvent]) -> list[TrainingEvent]:
    """Everything waiting in ``events`` right now, without blocking."""
    taken: list[TrainingEvent] = []
    while True:
        try:
            taken.append(events.get_nowait())
        except queue.Empty:
            return taken
