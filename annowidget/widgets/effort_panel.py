"""The EffortPanel: what each round of labeling cost, and how good each model was.

A thin view over :mod:`annowidget.effort`; it computes nothing itself. One plotly
``FigureWidget`` with two plots, one above the other (side by side, their titles ran into
each other), updated inside ``batch_update()``:

- per round (the model whose predictions people corrected; "from scratch" for images
  that were unlabeled when opened and labeled without one; browsing is not labeling):
  seconds per image (bars, left axis) and the share of predicted boxes accepted unchanged
  (line, right axis in %, ticks every 25 %), from :func:`~annowidget.effort.effort_per_round`;
- per model: precision, recall (at the score threshold named in the plot's title) and AP50
  on the images people corrected after it pre-labeled them, on a 0-1 axis, from
  :func:`~annowidget.effort.ongoing_evaluation`.

Below it, a table with the same rounds in numbers, and, once more than one person labeled
(a shared project), a table per annotator: images, seconds per image and the share of
predicted boxes they accepted unchanged, from
:func:`~annowidget.effort.effort_per_annotator` (reviewed images only, like the rounds).
One person's row would only repeat the totals, so a single user never sees it. Before any
reviewed work, the plots are hidden and a line says what will appear here. Refresh re-reads
the action log (so does changing the idle gap); errors are shown in the panel, never raised
into the notebook.
"""

from __future__ import annotations

import html
import time

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from annowidget.effort import (
    ModelScore,
    RoundEffort,
    effort_per_annotator,
    effort_per_round,
    ongoing_evaluation,
)
from annowidget.effort.meter import DEFAULT_IDLE_GAP
from annowidget.effort.ongoing import DEFAULT_IOU, DEFAULT_THRESHOLD
from annowidget.effort.summary import FROM_SCRATCH, annotator_label, round_label
from annowidget.store import Project

__all__ = ["FROM_SCRATCH", "EffortPanel", "round_label"]

_SCORE_METRICS = (("precision", "precision"), ("recall", "recall"), ("AP50", "ap50"))
#: What the tab says before there is anything to plot.
EMPTY_STATE = (
    "Nothing to show yet. Label images in the Label tab (from scratch, or after a model "
    "pre-labeled them in the Predict tab) and mark them reviewed (Enter); then press "
    "Refresh. Paging through images that are already reviewed is not labeling and is not "
    "counted."
)


def _score_title(threshold: float, iou: float) -> str:
    # Short enough for one line in a narrow notebook: AP50 needs no threshold (all scores).
    return (
        f"each model on the images people corrected "
        f"(precision, recall at score ≥ {threshold:.2f}, IoU {iou:.2f})"
    )


class EffortPanel(widgets.VBox):
    """Seconds per image and boxes accepted unchanged per round; each model's ongoing score.

    Example:
        >>> panel = EffortPanel(project)  # doctest: +SKIP
        >>> panel  # plots and table; press Refresh after more labeling  # doctest: +SKIP
        >>> panel.rounds[-1].seconds_per_image  # the numbers shown  # doctest: +SKIP
    """

    def __init__(
        self,
        project: Project,
        *,
        idle_gap: float = DEFAULT_IDLE_GAP,
        iou: float = DEFAULT_IOU,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.project = project
        self.iou = float(iou)
        self.threshold = float(threshold)
        self.rounds: list[RoundEffort] = []
        self.scores: dict[str, ModelScore] = {}
        #: per annotator, most images first (:func:`~annowidget.effort.effort_per_annotator`)
        self.annotators: dict[str, dict[str, float | None]] = {}
        self.refreshed_at: float | None = None

        self.refresh_button = widgets.Button(
            description="Refresh", icon="refresh", tooltip="re-read the action log"
        )
        self.idle_gap = widgets.BoundedFloatText(
            value=float(idle_gap),
            min=1.0,
            max=3600.0,
            step=5.0,
            description="idle gap (s)",
            tooltip="a pause longer than this is not counted as work",
            style={"description_width": "90px"},
            layout=widgets.Layout(width="190px"),
        )
        self.message = widgets.HTML()
        self.table = widgets.HTML()
        self.annotator_table = widgets.HTML()
        self.empty = widgets.HTML(
            f"<p style='color:#555;max-width:640px'>{html.escape(EMPTY_STATE)}</p>",
            layout=widgets.Layout(display="none"),
        )
        self.figure = self._new_figure(self.threshold, self.iou)
        # The FigureWidget's own ``layout`` is plotly's, so a box shows and hides it.
        self.plots = widgets.Box([self.figure])
        self.refresh_button.on_click(lambda _: self.refresh())
        self.idle_gap.observe(lambda _: self.refresh(), names="value")
        super().__init__(
            [
                widgets.HBox([self.refresh_button, self.idle_gap, self.message]),
                self.empty,
                self.plots,
                self.table,
                self.annotator_table,
            ]
        )
        self.refresh()

    # ------------------------------------------------------------------ public
    def refresh(self) -> bool:
        """Re-read the log and redraw; ``False`` (and the reason shown) if reading failed.

        Example:
            >>> panel.refresh()  # doctest: +SKIP
            True
        """
        idle_gap = float(self.idle_gap.value)
        try:
            rounds = effort_per_round(self.project, idle_gap=idle_gap)
            scores = ongoing_evaluation(self.project, iou=self.iou, threshold=self.threshold)
            people = effort_per_annotator(self.project, idle_gap=idle_gap, reviewed_only=True)
        except Exception as exc:  # a panel shows the problem; it must not break the notebook
            self._show_error(exc)
            return False
        self.rounds, self.scores, self.annotators = rounds, scores, people
        self.refreshed_at = time.time()
        self._update_figure()
        nothing = not rounds and not scores
        self.empty.layout.display = None if nothing else "none"
        self.plots.layout.display = "none" if nothing else None
        self.table.value = _table_html(rounds, scores, self.threshold)
        self.annotator_table.value = _annotators_html(people) if len(people) > 1 else ""
        images = sum(r.images for r in rounds)
        self.message.value = (
            f"{len(rounds)} round(s), {images} reviewed image(s); "
            f"read at {time.strftime('%H:%M:%S', time.localtime(self.refreshed_at))}"
            if rounds
            else "no reviewed work in the action log yet"
        )
        return True

    # ------------------------------------------------------------------ internals
    def _show_error(self, exc: Exception) -> None:
        text = html.escape(f"could not read the effort: {type(exc).__name__}: {exc}")
        self.message.value = f"<span style='color:#c62828'>{text}</span>"

    @staticmethod
    def _new_figure(threshold: float, iou: float) -> go.FigureWidget:
        figure = go.FigureWidget(
            make_subplots(
                rows=2,
                cols=1,
                specs=[[{"secondary_y": True}], [{}]],
                vertical_spacing=0.2,
                subplot_titles=("labeling cost per round", _score_title(threshold, iou)),
            )
        )
        figure.add_bar(x=[], y=[], name="seconds per image", row=1, col=1, secondary_y=False)
        figure.add_scatter(
            x=[],
            y=[],
            name="accepted unchanged (%)",
            mode="lines+markers",
            row=1,
            col=1,
            secondary_y=True,
        )
        for name, _ in _SCORE_METRICS:
            figure.add_bar(x=[], y=[], name=name, row=2, col=1)
        figure.update_layout(
            height=560, barmode="group", margin={"l": 60, "r": 60, "t": 40, "b": 30}
        )
        figure.update_annotations(font_size=13)  # the subplot titles
        figure.update_yaxes(
            title_text="seconds per image", rangemode="tozero", row=1, col=1, secondary_y=False
        )
        # Its own round ticks: by default the right axis copies the left one's tick
        # positions and reads 0/27.6/55.3/82.9.
        figure.update_yaxes(
            title_text="accepted unchanged (%)",
            range=[0, 105],
            tickmode="array",
            tickvals=[0, 25, 50, 75, 100],
            ticksuffix="%",
            showgrid=False,
            row=1,
            col=1,
            secondary_y=True,
        )
        figure.update_yaxes(
            title_text="score (0-1)",
            range=[0, 1.05],
            tickmode="array",
            tickvals=[0, 0.25, 0.5, 0.75, 1.0],
            row=2,
            col=1,
        )
        return figure

    def _update_figure(self) -> None:
        traces = {trace.name: trace for trace in self.figure.data}
        labels = tuple(round_label(r.model) for r in self.rounds)
        shares = tuple(_percent(r.share_accepted_unchanged) for r in self.rounds)
        models = tuple(self.scores)
        with self.figure.batch_update():
            seconds = traces["seconds per image"]
            seconds.x, seconds.y = labels, tuple(r.seconds_per_image for r in self.rounds)
            accepted = traces["accepted unchanged (%)"]
            accepted.x, accepted.y = labels, shares
            for name, field in _SCORE_METRICS:
                values = tuple(getattr(self.scores[m], field) for m in models)
                traces[name].x, traces[name].y = models, values


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100.0


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _html_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th style='padding:2px 8px'>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td style='padding:2px 8px;text-align:right'>{html.escape(c)}</td>" for c in r)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _annotators_html(people: dict[str, dict[str, float | None]]) -> str:
    header = ("annotator", "images", "s / image", "predicted boxes decided", "accepted unchanged")
    rows = []
    for author, row in people.items():
        share = row["share_accepted_unchanged"]
        rows.append(
            (
                annotator_label(author),
                f"{row['images']:.0f}",
                f"{row['seconds_per_image']:.1f}",
                f"{row['predictions_reviewed']:.0f}",
                f"{row['accepted_unchanged']:.0f}" + ("" if share is None else f" ({share:.0%})"),
            )
        )
    title = "<p style='margin:12px 0 2px'><b>per annotator</b> (reviewed images)</p>"
    return title + _html_table(header, rows)


def _table_html(rounds: list[RoundEffort], scores: dict[str, ModelScore], threshold: float) -> str:
    if not rounds:
        return ""
    header = (
        "round",
        "images",
        "s / image",
        "accepted unchanged",
        "adjusted (mean IoU)",
        "relabeled",
        "false positives deleted",
        "misses drawn",
        f"precision (score ≥ {threshold:.2f})",
        f"recall (score ≥ {threshold:.2f})",
        "AP50",
    )
    rows = []
    for r in rounds:
        score = scores.get(r.model) if r.model is not None else None
        share = r.share_accepted_unchanged
        accepted = f"{r.accepted_unchanged}" + ("" if share is None else f" ({share:.0%})")
        iou = "" if r.mean_adjusted_iou is None else f" ({r.mean_adjusted_iou:.2f})"
        cells = (
            round_label(r.model),
            str(r.images),
            f"{r.seconds_per_image:.1f}",
            accepted,
            f"{r.adjusted}{iou}",
            str(r.relabeled),
            str(r.deleted_false_positives),
            str(r.drawn_from_scratch),
            _number(score.precision if score else None, ".2f"),
            _number(score.recall if score else None, ".2f"),
            _number(score.ap50 if score else None, ".2f"),
        )
        rows.append(cells)
    return _html_table(header, rows)
