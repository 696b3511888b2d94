"""The LabelingApp's auto-train bar: continuous mode (:mod:`annowidget.train.continuous`).

An "auto-train" switch, how many reviews start a round and the round's budget, the order
Next follows, Pause and Stop, and the figures: the current round, its AP50 on the test
folder, and the reviews until the next round. The rounds run in the loop's thread; a
:class:`~annowidget.widgets._throttle.Pump` is the only writer of the figures (twice a
second), and it calls ``on_round`` callbacks when a round ends.

While the switch is on and the order is "expected correction time", the Annotator's Next
opens the image with the highest expected correction seconds (``effort.sampling``'s
``expected_cost``) instead of the next one of its list.

Example:
    >>> # bar = AutoTrainBar(project, annotator)
    >>> # bar.switch.value = True        # or bar.start(); bar.pause(); bar.stop()
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from annowidget.effort.sampling import next_image
from annowidget.store import Image, Project
from annowidget.train.continuous import (
    DEFAULT_BUDGET,
    DEFAULT_EVERY,
    ContinuousTrainer,
    LoopState,
    RoundReport,
)
from annowidget.widgets._project_events import publish
from annowidget.widgets._throttle import Pump

__all__ = ["ORDERS", "AutoTrainBar", "RankedNext"]

#: what Next follows in continuous mode: (label, value)
ORDERS = (("expected correction time", "expected_cost"), ("folder order", "list"))
_PHASES = {
    "idle": "off",
    "watching": "watching",
    "paused": "paused",
    "training": "fine-tuning…",
    "predicting": "re-predicting…",
    "stopped": "stopped",
}


class RankedNext:
    """The image Next opens in continuous mode: the highest expected correction time.

    Images left unreviewed by a Next in this sitting are not offered again (else two
    uncertain images would alternate forever), nor images another annotator holds a live
    lease on. ``None`` when none is left.

    Example:
        >>> # annotator.next_order = RankedNext(project, folder=lambda: None)
    """

    def __init__(
        self,
        project: Project,
        *,
        folder: Callable[[], str | None] = lambda: None,
        threshold: Callable[[], float] = lambda: 0.5,
    ) -> None:
        self.project = project
        self.folder = folder
        self.threshold = threshold
        self.skipped: set[int] = set()

    def __call__(self, current: Image | None) -> int | None:
        # images other annotators have open are not offered (shared projects)
        exclude = set(self.skipped) | set(self.project.live_leases())
        if current is not None:
            exclude.add(current.id)
            if self.project.image(current.id).status != "reviewed":
                self.skipped.add(current.id)
        return next_image(
            self.project,
            "expected_cost",
            exclude=exclude,
            threshold=self.threshold(),
            folder=self.folder(),
        )


class AutoTrainBar(widgets.VBox):
    """Continuous mode in the LabelingApp: switch, settings, Pause/Stop and figures.

    ``settings()`` returns more keyword arguments for :class:`ContinuousTrainer` (the Train
    tab's task, first base model and hyperparameters), read when the switch is turned on.

    Example:
        >>> # bar = AutoTrainBar(project, annotator, settings=lambda: {"task": "detection"})
    """

    def __init__(
        self,
        project: Project,
        annotator: Any,
        *,
        every: int = DEFAULT_EVERY,
        budget: int = DEFAULT_BUDGET,
        threshold: float = 0.5,
        settings: Callable[[], dict[str, Any]] | None = None,
        interval: float = 0.5,
    ) -> None:
        self.project = project
        self.annotator = annotator
        self.threshold = float(threshold)
        self.settings = settings or dict
        self.interval = float(interval)
        self.loop: ContinuousTrainer | None = None
        self._pump: Pump | None = None
        self._seen_rounds = 0
        self._round_callbacks: list[Callable[[RoundReport], None]] = []
        self._lock = threading.RLock()  # clicks (kernel thread) and the pump write here

        self.switch = widgets.ToggleButton(
            value=False,
            description="auto-train",
            icon="refresh",
            tooltip="retrain and re-predict whenever enough images were reviewed",
        )
        self.every = widgets.BoundedIntText(
            value=every,
            min=1,
            max=100_000,
            description="every",
            tooltip="reviewed images that start a round",
            layout=widgets.Layout(width="140px"),
            style={"description_width": "40px"},
        )
        self.budget = widgets.BoundedIntText(
            value=budget,
            min=1,
            max=10_000_000,
            description="budget",
            tooltip="images a round's fine-tune sees in all (image-steps)",
            layout=widgets.Layout(width="160px"),
            style={"description_width": "50px"},
        )
        self.order = widgets.Dropdown(
            options=list(ORDERS),
            value="expected_cost",
            description="next",
            tooltip="the image Next opens while auto-train is on",
            layout=widgets.Layout(width="280px"),
            style={"description_width": "35px"},
        )
        self.pause_button = widgets.Button(description="Pause", icon="pause", disabled=True)
        self.stop_button = widgets.Button(
            description="Stop rounds", icon="stop", disabled=True, tooltip="Stop auto-train"
        )
        self.figures = widgets.HTML(self._figures(None))
        self.ranked_next = RankedNext(
            project,
            folder=lambda: getattr(annotator, "folder", "") or None,
            threshold=lambda: float(getattr(annotator, "threshold", self.threshold)),
        )

        self.switch.observe(self._on_switch, names="value")
        self.order.observe(lambda _change: self._apply_order(), names="value")
        self.every.observe(self._on_every, names="value")
        self.budget.observe(self._on_budget, names="value")
        self.pause_button.on_click(lambda _button: self.toggle_pause())
        self.stop_button.on_click(lambda _button: self.stop())
        super().__init__(
            [
                widgets.HBox(
                    [
                        self.switch,
                        self.every,
                        self.budget,
                        self.order,
                        self.pause_button,
                        self.stop_button,
                    ],
                    layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
                ),
                self.figures,
            ]
        )

    # ------------------------------------------------------------------ control
    def start(self) -> ContinuousTrainer | None:
        """Turn continuous mode on (what the switch does). ``None`` when the settings are
        refused (the reason is shown in the figures line)."""
        with self._lock:
            if self.loop is not None and self.loop.running:
                return self.loop
            try:
                self.loop = ContinuousTrainer(
                    self.project,
                    every=int(self.every.value),
                    budget=int(self.budget.value),
                    threshold=self.threshold,
                    editing=self._editing,
                    **self.settings(),
                )
            except (ValueError, TypeError) as exc:
                self.loop = None
                self.figures.value = _line("error", html.escape(str(exc)))
                self.switch.value = False
                return None
            self._seen_rounds = len(self.loop.reports)
            self.loop.start()
            self._pump = Pump(self._tick, interval=self.interval, name="annowidget-auto-train")
            self._pump.start()
            if not self.switch.value:
                self.switch.value = True
            self.pause_button.disabled = False
            self.stop_button.disabled = False
            self._apply_order()
            self._render()
            return self.loop

    def pause(self) -> None:
        """No new round starts (a running one finishes)."""
        if self.loop is not None:
            self.loop.pause()
            self.pause_button.description, self.pause_button.icon = "Resume", "play"
            self._render()

    def resume(self) -> None:
        if self.loop is not None:
            self.loop.resume()
            self.pause_button.description, self.pause_button.icon = "Pause", "pause"
            self._render()

    def toggle_pause(self) -> None:
        """What the Pause/Resume button does."""
        if self.loop is not None and self.loop.paused:
            self.resume()
        else:
            self.pause()

    def stop(self) -> None:
        """Turn continuous mode off: a running fine-tune stops, keeping its last epoch."""
        with self._lock:
            if self.loop is not None:
                self.loop.stop()
            if self.switch.value:
                self.switch.value = False
            self.pause_button.disabled = True
            self.stop_button.disabled = True
            self.pause_button.description, self.pause_button.icon = "Pause", "pause"
            self._apply_order()
            self._render()

    def on_round(self, callback: Callable[[RoundReport], None]) -> None:
        """Call ``callback(report)`` when a round has ended (from the figures' pump)."""
        self._round_callbacks.append(callback)

    @property
    def state(self) -> LoopState | None:
        return None if self.loop is None else self.loop.state

    # ------------------------------------------------------------------ wiring
    def _editing(self) -> int | None:
        image = self.annotator.image
        return None if image is None else image.id

    def _on_switch(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.start()
        else:
            self.stop()

    def _on_every(self, change: dict[str, Any]) -> None:
        if self.loop is not None:
            self.loop.every = int(change["new"])
            self._render()

    def _on_budget(self, change: dict[str, Any]) -> None:
        if self.loop is not None:
            self.loop.budget = int(change["new"])

    def _apply_order(self) -> None:
        ranked = self.switch.value and self.order.value == "expected_cost"
        self.annotator.next_order = self.ranked_next if ranked else None

    def _tick(self) -> bool:
        loop = self.loop
        if loop is None:
            return False
        running = loop.running  # read first: the last tick renders the final state
        self._render()
        fresh = loop.reports[self._seen_rounds :]
        self._seen_rounds += len(fresh)
        for report in fresh:
            self.ranked_next.skipped.clear()  # new predictions: every image is ranked anew
            if report.predicted:  # a Gallery (in any cell) redraws the new pre-labels
                publish(self.project, "annotations", source=id(self))
            for callback in list(self._round_callbacks):
                callback(report)
        return running

    def _render(self) -> None:
        with self._lock:
            text = self._figures(self.state)
            if self.figures.value != text:
                self.figures.value = text

    def _figures(self, state: LoopState | None) -> str:
        if state is None or (not self.switch.value and state.phase in ("idle", "stopped")):
            return _line("off", "auto-train is off")
        ap50 = "n/a" if state.ap50 is None else f"{state.ap50:.3f}"
        if state.round:
            current = f"round <b>{state.round}</b> ({html.escape(state.model or '')})"
        elif state.model:  # a model trained outside the loop: round 1 will start from it
            current = f"model <b>{html.escape(state.model)}</b>"
        else:
            current = "no model yet"
        parts = [
            current,
            f"AP50 <b>{ap50}</b>",
            f"<b>{state.until_next}</b> reviews until the next round",
            _PHASES.get(state.phase, state.phase),
        ]
        if state.message:
            parts.append(html.escape(state.message))
        return _line(state.phase, " · ".join(parts))


def _line(kind: str, text: str) -> str:
    return f'<span class="annowidget-auto-train" data-phase="{kind}">{text}</span>'
