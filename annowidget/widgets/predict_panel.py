"""The PredictPanel: smart prediction from a notebook, a thin form over ``predict_images``.

Pick a model (base models and this project's trained ones; a model trained in the
TrainingPanel appears without re-running any cell; under the list, a trained model's lineage
and its scores on its test folders), a scope (the selected images, a folder,
or every unlabeled image) and a score threshold, press Run. Prediction runs on a worker
thread so the notebook stays usable; a :class:`~annowidget.widgets._throttle.Pump` shows its
progress at about 2 Hz. When it is done, ``on_done`` listeners run: the LabelingApp uses it
to show the predictions in the Annotator and the Gallery.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from annowidget.models.card import ModelCard, describe_metrics
from annowidget.models.catalog import BASE_MODELS
from annowidget.models.registry import ModelEntry, ModelRegistry, describe_lineage
from annowidget.store import Project
from annowidget.widgets._throttle import Pump

if TYPE_CHECKING:  # prediction imports torch: the worker thread loads it on the first Run
    from annowidget.models.predict import PredictionReport

__all__ = ["SCOPES", "PredictPanel", "describe_report", "describe_trained", "model_label"]

SCOPES: tuple[str, ...] = ("selected images", "folder", "all unlabeled")
_COLORS = {"done": "#2e7d32", "failed": "#c62828", "error": "#c62828"}


def model_label(entry: ModelEntry) -> str:
    """How a model reads in the dropdown: name, kind, task, AP and parent for a trained one,
    and whether it can run here.

    Example:
        >>> from annowidget.models.registry import ModelEntry
        >>> model_label(ModelEntry("m1", "trained", "detection", "", True))
        'm1 · trained · detection'
    """
    label = f"{entry.name} · {entry.kind} · {entry.task or '?'}"
    card = entry.card if entry.kind == "trained" else None
    if card is not None and card.metrics:
        ap = card.metrics[-1].get("AP")
        if isinstance(ap, int | float):
            label += f" · AP {ap:.2f}"
    if card is not None and card.parent:
        label += f" · from {card.parent}"
    if not entry.ready:
        label += " · (not ready)" if entry.kind == "trained" else " · (⇩ needs download)"
    return label


class PredictPanel(widgets.VBox):
    """Run a model on images and store its boxes as predictions to review.

    ``selection`` returns the image ids of the "selected images" scope (the LabelingApp
    passes the Gallery's selection, or the Annotator's current image). ``training_panel``
    (optional) refreshes the model list whenever one of its runs ends.

    Example:
        >>> panel = PredictPanel(project, training_panel=trainer_panel)  # doctest: +SKIP
        >>> panel.scope.value = "all unlabeled"; panel.run()  # doctest: +SKIP
    """

    def __init__(
        self,
        project: Project,
        *,
        training_panel: Any = None,
        selection: Callable[[], Sequence[int]] | None = None,
        model: str | None = None,
        scope: str = "all unlabeled",
        folder: str | None = None,
        threshold: float = 0.5,
        batch_size: int = 4,
        device: str = "cpu",
        interval: float = 0.5,
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(
                f"PredictPanel scope must be one of {', '.join(SCOPES)}; got {scope!r}"
            )
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"PredictPanel threshold must be between 0 and 1; got {threshold}")
        self.project = project
        self.registry = ModelRegistry(project)
        self.selection = selection or list
        self.batch_size = int(batch_size)
        self.device = device
        self.interval = float(interval)
        self.state = "idle"
        self.report: Any = None
        self.error: BaseException | None = None
        self._done_callbacks = widgets.CallbackDispatcher()
        self._progress = (0, 0)
        self._started = 0.0
        self._worker: threading.Thread | None = None
        self._pump: Pump | None = None
        self._ui_lock = threading.RLock()
        self._stop = threading.Event()

        style = {"description_width": "90px"}
        self.model = widgets.Dropdown(
            description="model", style=style, layout=widgets.Layout(width="480px")
        )
        self.refresh_button = widgets.Button(
            icon="refresh", tooltip="Re-read the model list", layout=widgets.Layout(width="40px")
        )
        self.model_help = widgets.HTML()
        self.scope = widgets.ToggleButtons(options=list(SCOPES), value=scope, description="scope")
        self.scope.style.button_width = "140px"
        folders = project.folders()
        if folder is not None and folder not in folders:
            raise ValueError(f"PredictPanel folder {folder!r} does not exist; folders: {folders}")
        self.folder = widgets.Dropdown(
            options=folders,
            value=folder or ("unlabeled" if "unlabeled" in folders else None),
            description="folder",
            style=style,
        )
        self.threshold = widgets.FloatSlider(
            value=threshold,
            min=0.0,
            max=1.0,
            step=0.05,
            description="threshold",
            style=style,
            tooltip="Boxes scoring below this are not stored",
        )
        self.run_button = widgets.Button(description="Run", icon="magic", button_style="primary")
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", disabled=True, tooltip="Stop after this batch"
        )
        self.progress = widgets.IntProgress(value=0, min=0, max=1)
        self.progress_text = widgets.Label("")
        self.message = widgets.HTML()

        self.model.observe(lambda _: self._describe_model(), names="value")
        self.scope.observe(lambda _: self._scope_changed(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh_models())
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        if training_panel is not None:
            training_panel.on_finished(self._on_training_finished)
        self.refresh_models(select=model)
        self._scope_changed()

        super().__init__(
            [
                widgets.HBox([self.model, self.refresh_button]),
                self.model_help,
                self.scope,
                self.folder,
                self.threshold,
                widgets.HBox(
                    [self.run_button, self.stop_button, self.progress, self.progress_text],
                    layout=widgets.Layout(align_items="center"),
                ),
                self.message,
            ]
        )

    # ------------------------------------------------------------------ model list
    def refresh_models(self, *, select: str | None = None) -> list[str]:
        """Re-read base and trained models; keep the current pick unless ``select`` is given.

        Returns the model names offered.
        """
        # The offline family is an ImageNet backbone with untrained heads: it predicts
        # nothing until fine-tuned, so it is offered for training only.
        entries = [
            e
            for e in self.registry.list()
            if e.kind == "trained" or not BASE_MODELS[e.name].offline
        ]
        self._entries = {entry.name: entry for entry in entries}
        options = [(model_label(entry), entry.name) for entry in entries]
        with self._ui_lock:
            current = self.model.value
            self.model.options = options
            names = [name for _, name in options]
            if select is not None and select in names:
                self.model.value = select
            elif current in names:
                self.model.value = current
            else:
                self.model.value = self._default_model(entries)
        self._describe_model()
        return names

    @staticmethod
    def _default_model(entries: Sequence[ModelEntry]) -> str | None:
        ready = [e for e in entries if e.ready]  # trained ones come first, newest first
        if ready:
            return ready[0].name
        return entries[0].name if entries else None

    def _on_training_finished(self, event: Any) -> None:
        name = getattr(event, "model_name", "") or None
        self.refresh_models(select=name)

    def _describe_model(self) -> None:
        entry = getattr(self, "_entries", {}).get(self.model.value)
        if entry is None:
            self.model_help.value = ""
            return
        text = html.escape(entry.description or "")
        if entry.kind == "base":
            text += " · predicts COCO classes; only those named like a project category are kept"
        elif entry.card is not None:
            lineage = describe_trained(entry.card, self.registry.lineage(entry.name))
            text = f"{text}<br>{html.escape(lineage)}" if text else html.escape(lineage)
        self.model_help.value = f"<small style='color:#666'>{text}</small>"

    def _scope_changed(self) -> None:
        self.folder.layout.display = None if self.scope.value == "folder" else "none"

    # ------------------------------------------------------------------ run
    def _arguments(self) -> dict[str, Any]:
        name = self.model.value
        entry = self._entries.get(name) if name else None
        if entry is None:
            raise ValueError("model: pick a model to predict with")
        if not entry.ready:
            why = (
                "its training has not written weights yet"
                if entry.kind == "trained"
                else "its COCO weights are not on this machine and need a download; "
                "or train a model in the TrainingPanel and pick it here"
            )
            raise ValueError(f"model {name!r} is not ready: {why}")
        arguments: dict[str, Any] = {
            "threshold": float(self.threshold.value),
            "batch_size": self.batch_size,
            "device": self.device,
        }
        scope = self.scope.value
        if scope == "selected images":
            ids = [int(i) for i in self.selection()]
            if not ids:
                raise ValueError(
                    "no images selected: select some in the Gallery (Select mode) "
                    "or open one in the Annotator"
                )
            arguments["image_ids"] = ids
        elif scope == "folder":
            if not self.folder.value:
                raise ValueError("folder: pick a folder to predict on")
            arguments["folder"] = self.folder.value
        else:
            arguments["unlabeled"] = True
        return arguments

    def run(self) -> bool:
        """What the Run button does: start predicting in the background, return at once.

        ``False`` (and the reason in the panel) when the form is invalid or a run is active.
        """
        with self._ui_lock:
            if self.state == "running":
                return False
            try:
                arguments = self._arguments()
            except Exception as exc:  # shown, not raised: this is a button's handler
                self._show("error", html.escape(str(exc)))
                return False
            model = self.model.value
            self.report, self.error = None, None
            self._progress = (0, 0)
            self._started = time.monotonic()
            self.state = "running"
            self._stop.clear()
            self.run_button.disabled = True
            self.stop_button.disabled = False
            self.progress.value = 0
            self.progress_text.value = "loading the model…"
            self._show("", f"predicting with <b>{html.escape(model)}</b>…")
        self._worker = threading.Thread(
            target=self._work,
            args=(model, arguments),
            name="annowidget-predict",
            daemon=True,
        )
        self._worker.start()
        self._pump = Pump(self._tick, interval=self.interval, on_error=self._pump_failed).start()
        return True

    def _work(self, model: str, arguments: dict[str, Any]) -> None:
        try:
            from annowidget.models.predict import predict_images  # torch: seconds, once

            self.report = predict_images(
                self.project, model, progress=self._on_progress, stop=self._stop, **arguments
            )
        except Exception as exc:  # reported by the pump in the panel
            self.error = exc

    def _on_progress(self, done: int, total: int | None = None, *_: Any, **__: Any) -> None:
        # called by the worker for every batch: only remember it, the pump draws it
        self._progress = (int(done), int(total or 0))

    def _tick(self) -> bool:
        worker = self._worker
        finished = worker is not None and not worker.is_alive()
        with self._ui_lock:
            done, total = self._progress
            if total:
                self.progress.max = total
                self.progress.value = min(done, total)
                elapsed = time.monotonic() - self._started
                self.progress_text.value = f"{done}/{total} images · {elapsed:.0f} s"
            if finished:
                self._finish()
        return not finished

    def stop(self) -> None:
        """Stop predicting after the current batch (what is stored so far stays)."""
        if self.state == "running":
            self._stop.set()
            with self._ui_lock:
                self.stop_button.disabled = True

    def _finish(self) -> None:
        self.run_button.disabled = False
        self.stop_button.disabled = True
        if self.error is not None:
            self.state = "failed"
            self._show("failed", f"failed: {html.escape(_describe_error(self.error))}")
            return
        self.state = "done"
        self.progress.value = self.progress.max
        self._show("done", html.escape(describe_report(self.report)))
        for callback in list(self._done_callbacks.callbacks):
            try:
                callback(self.report)
            except Exception as exc:  # a broken listener must not break the panel
                self._show("error", f"on_done callback failed: {html.escape(repr(exc))}")

    def _pump_failed(self, exc: BaseException) -> None:
        with self._ui_lock:
            self.state = "failed"
            self.run_button.disabled = False
            self.stop_button.disabled = True
            self._show("failed", f"the panel stopped updating: {html.escape(repr(exc))}")

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends and the panel shows it; returns the report (or None)."""
        if self._worker is not None:
            self._worker.join(timeout)
        if self._pump is not None:
            self._pump.join(timeout if timeout is not None else 60.0)
            if self._worker is not None and not self._worker.is_alive() and self.state == "running":
                self._tick()
        return self.report

    def on_done(self, callback: Callable[[Any], None], *, remove: bool = False) -> None:
        """Call ``callback(report)`` after a successful run (from the panel's pump thread)."""
        self._done_callbacks.register_callback(callback, remove=remove)

    def refresh_folders(self) -> None:
        """Offer the project's current folders, keeping the pick when it still exists."""
        folders = self.project.folders()
        with self._ui_lock:
            current = self.folder.value
            self.folder.options = folders
            self.folder.value = current if current in folders else (folders[0] if folders else None)

    def _show(self, kind: str, text: str) -> None:
        color = _COLORS.get(kind)
        self.message.value = f"<span style='color:{color}'>{text}</span>" if color else text


def describe_trained(card: ModelCard, lineage: Sequence[str]) -> str:
    """One line under the model list for a trained model: what it was trained from (its
    ``ModelRegistry.lineage``, parent first), its status, and its last scores on its test
    folders.

    Example:
        >>> card = ModelCard("m2", "detection", "fasterrcnn_mobilenet_v2_fpn", ["raccoon"],
        ...                  parent="m1", status="finished", test_folders=["test"],
        ...                  metrics=[{"epoch": 3, "AP": 0.34, "AP50": 0.68, "images": 6}])
        >>> describe_trained(card, ["m2", "m1", "fasterrcnn_mobilenet_v2_fpn"])
        'from m1 ← fasterrcnn_mobilenet_v2_fpn · finished · AP 0.340, AP50 0.680, AP75 n/a on 6 images (test)'
    """  # noqa: E501
    origin = describe_lineage(lineage, arrow=" ← ") or card.base_model
    text = f"from {origin} · {card.status}"
    latest = card.latest_metrics
    if latest is None:
        return f"{text} · not evaluated"
    folders = ", ".join(card.test_folders)
    return f"{text} · {describe_metrics(latest)}" + (f" ({folders})" if folders else "")


def describe_report(report: PredictionReport) -> str:
    """One line for the panel: what was predicted, how fast, what went wrong.

    Example:
        >>> from annowidget.models.predict import PredictionReport
        >>> describe_report(PredictionReport("m1", images=2, predictions=3, seconds=1.0))
        'm1: 3 boxes on 2 images in 1.0 s (0.50 s/image)'
    """
    text = (
        f"{report.model}: {report.predictions} boxes on {report.images} images "
        f"in {report.seconds:.1f} s ({report.seconds_per_image:.2f} s/image)"
    )
    if report.per_category and len(report.per_category) > 1:
        text += " · " + ", ".join(f"{n} {name}" for name, n in report.per_category.items())
    if report.dropped:
        text += f" · {report.dropped} boxes of classes the project does not have were left out"
    if report.failed:
        image_id, why = report.failed[0]
        text += f" · {len(report.failed)} images failed (image {image_id}: {why})"
    if report.stopped:
        text += " · stopped early"
    return text


def _describe_error(exc: BaseException) -> str:
    if type(exc) is ValueError or type(exc).__name__ in {"ProjectError", "MissingWeightsError"}:
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
