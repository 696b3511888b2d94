"""The LabelingApp: Annotator, Gallery, TrainingPanel, PredictPanel and EffortPanel.

It only wires them together over one project; each keeps its own logic:

- a click in the Gallery opens that image in the Annotator (and shows the Label tab);
- a run that ends in the TrainingPanel appears in the PredictPanel's model list;
- the PredictPanel's "selected images" are the Gallery's selection, or else the image open
  in the Annotator; when a prediction run is done the Annotator opens the first image that
  got predictions (its score filter, and the Gallery's, follow the run's threshold), or,
  when nothing was predicted, the Predict tab stays and says so;
- the header counts and the Review grid follow every saved edit (the grid within about a
  second), and every widget follows added classes;
- the Effort tab re-reads the action log when it is shown, so each round's seconds per
  image and share of predictions accepted unchanged sit next to the training curves;
- the header repeats the training progress (linked in the browser, no kernel round trip),
  so a run can be watched from any tab, and holds the "annotator" name the next edits are
  signed with (shared projects; it defaults to ``$ANNOWIDGET_USER`` or the login);
- the auto-train bar (continuous mode) reads the Train tab's task, base model and
  hyperparameters when switched on, never touches the image open in the Annotator, and
  while on, the Annotator's Next follows the expected correction time.
"""

from __future__ import annotations

import html
import os
from typing import Any

import ipywidgets as widgets

from annowidget.store import Image, Project
from annowidget.train.hyperparameters import Hyperparameters
from annowidget.widgets._project_events import subscribe
from annowidget.widgets._user_field import UserField
from annowidget.widgets.auto_train import AutoTrainBar
from annowidget.widgets.effort_panel import EffortPanel
from annowidget.widgets.gallery import Gallery
from annowidget.widgets.predict_panel import PredictPanel
from annowidget.widgets.training_panel import TrainingPanel

__all__ = ["TABS", "LabelingApp"]

TABS: tuple[str, ...] = ("Label", "Review", "Train", "Predict", "Effort")


class LabelingApp(widgets.VBox):
    """The whole loop in one widget: label, review, train, smart-predict, correct.

    Example:
        >>> import annowidget
        >>> project = annowidget.sample_project("sample")  # doctest: +SKIP
        >>> annowidget.LabelingApp(project)  # doctest: +SKIP
    """

    def __init__(
        self,
        project: Project | str | os.PathLike[str],
        *,
        folder: str | None = None,
        hyperparameters: Hyperparameters | dict[str, Any] | None = None,
        threshold: float = 0.5,
        interval: float = 0.5,
        annotator_height: int = 560,
    ) -> None:
        from annowidget.widgets import Annotator  # guarded import: clear error if missing

        if not isinstance(project, Project):
            project = Project.open(project)
        self.project = project
        self.annotator = Annotator(
            project, folder=folder, threshold=threshold, height=annotator_height
        )
        self.gallery = Gallery(project, folder=folder, threshold=threshold)
        self.training = TrainingPanel(project, hyperparameters=hyperparameters, interval=interval)
        self.predict = PredictPanel(
            project,
            training_panel=self.training,
            selection=self.selected_image_ids,
            threshold=threshold,
            interval=interval,
        )
        self.effort = EffortPanel(project, threshold=threshold)
        self.auto_train = AutoTrainBar(
            project,
            self.annotator,
            threshold=threshold,
            settings=self._auto_train_settings,
            interval=interval,
        )
        self.tabs = widgets.Tab(
            [self.annotator, self.gallery, self.training, self.predict, self.effort]
        )
        for index, title in enumerate(TABS):
            self.tabs.set_title(index, title)
        self._gallery_stale = False

        self.summary = widgets.HTML()
        mini_progress = widgets.FloatProgress(
            min=0.0, max=1.0, layout=widgets.Layout(width="160px")
        )
        mini_text = widgets.Label()
        # Linked in the browser: the header follows the panel without any kernel message.
        self._links = [
            widgets.jslink((self.training.progress, "value"), (mini_progress, "value")),
            widgets.jslink((self.training.progress_text, "value"), (mini_text, "value")),
        ]
        self.user_field = UserField(project, current_image=lambda: self.annotator.image)
        header = widgets.HBox(
            [self.summary, mini_progress, mini_text, self.user_field],
            layout=widgets.Layout(align_items="center", justify_content="space-between"),
        )

        self.gallery.on_open(self._open_from_gallery)
        self.annotator.on_change(self._on_edit)
        self.predict.on_done(self._on_predicted)
        self.training.on_finished(lambda _event: self._update_summary())
        self.auto_train.on_round(self._on_round)
        self.tabs.observe(self._on_tab, names="selected_index")
        # the header counts follow every saved edit, from this app or any other widget
        subscribe(project, "annotations", self._on_store_change)
        self._update_summary()
        super().__init__([header, self.auto_train, self.tabs])

    # ------------------------------------------------------------------ shared state
    @property
    def current_image(self) -> Image | None:
        """The image open in the Annotator."""
        return self.annotator.image

    def selected_image_ids(self) -> list[int]:
        """The "selected images" of smart prediction: the Gallery's selection, or else the
        image open in the Annotator."""
        if self.gallery.selected:
            return list(self.gallery.selected)
        image = self.annotator.image
        return [image.id] if image is not None else []

    def show(self, tab: str) -> None:
        """Switch to a tab by title (``"Label"``, ``"Review"``, ``"Train"``, ``"Predict"``,
        ``"Effort"``)."""
        if tab not in TABS:
            raise ValueError(f"tab must be one of {', '.join(TABS)}; got {tab!r}")
        self.tabs.selected_index = TABS.index(tab)

    # ------------------------------------------------------------------ wiring
    def _open_from_gallery(self, image: Image) -> None:
        self.annotator.goto(image)
        self.show("Label")

    def _on_edit(self, _event: dict[str, Any]) -> None:
        # Redrawing the grid on every edit would cost a canvas batch per mouse-up: the
        # Gallery gathers edits for a second (and a Review tab switch shows them at once).
        self._gallery_stale = True

    def _on_store_change(self, **_info: Any) -> None:
        self._update_summary()

    def _on_tab(self, change: dict[str, Any]) -> None:
        if change["new"] == TABS.index("Review") and self._gallery_stale:
            self._gallery_stale = False
            self.gallery.refresh()
        if change["new"] == TABS.index("Effort"):
            self.effort.refresh()
        self._update_summary()

    def _on_predicted(self, report: Any) -> None:
        # Show what was asked for: every box stored by this run, down to its threshold.
        threshold = float(self.predict.threshold.value)
        self.annotator.threshold = threshold
        self.gallery.threshold = threshold
        self.annotator.refresh()  # statuses changed: re-read the filtered list
        self.gallery.refresh()
        self._gallery_stale = False
        self.training.refresh_folders()
        self._update_summary()
        target = self._first_predicted() if getattr(report, "predictions", 0) else None
        if target is None:
            # nothing to check: stay on Predict, where the report is, and say what to try
            self.predict.message.value += (
                "<br><span style='color:#ef6c00'>No box scored above the threshold "
                f"{threshold:.2f}: nothing to check. Lower the threshold, or train longer."
                "</span>"
            )
            return
        self.annotator.goto(target)
        self.annotator.reload()
        self.show("Label")

    def _auto_train_settings(self) -> dict[str, Any]:
        panel = self.training
        return {
            "task": panel.task.value,
            "base_model": panel.base_model.value,
            "hyperparameters": panel.hyperparameters(),
            "pretrained": bool(panel.pretrained.value),
            "test_folders": list(panel.test_folders.value) or ["test"],
            # no round while the Train tab's own run uses the cores
            "busy": lambda: panel.trainer is not None and panel.trainer.running,
        }

    def _on_round(self, _report: Any) -> None:
        # new pre-labels on images the grid shows, a new model for the Predict tab
        self._gallery_stale = True
        self.predict.refresh_models()
        self._update_summary()

    def _first_predicted(self) -> int | None:
        if self.predict.scope.value == "selected images":
            candidates = self.selected_image_ids()
        else:
            folder = self.predict.folder.value if self.predict.scope.value == "folder" else None
            candidates = [i.id for i in self.project.images(folder=folder, status="predicted")]
        for image_id in candidates:
            if self.project.annotations(image_id, predictions=True):
                return image_id
        return None

    def _update_summary(self) -> None:
        info = self.project.info()
        status = info["status"]
        self.summary.value = (
            f"<b>{html.escape(self.project.root.name)}</b> · {info['images']} images · "
            f"{status.get('reviewed', 0)} reviewed · {status.get('predicted', 0)} to check · "
            f"{status.get('unlabeled', 0)} unlabeled"
        )
