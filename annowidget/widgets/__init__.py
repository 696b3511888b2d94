"""The notebook widgets: Annotator, Gallery, TrainingPanel, PredictPanel, EffortPanel, LabelingApp.

Each is loaded on first use (plotly and torch take seconds to import).

Example:
    >>> from annowidget.widgets import LabelingApp  # doctest: +SKIP
    >>> LabelingApp(project)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Annotator": "annowidget.widgets.annotator",
    "Gallery": "annowidget.widgets.gallery",
    "TrainingPanel": "annowidget.widgets.training_panel",
    "PredictPanel": "annowidget.widgets.predict_panel",
    "LabelingApp": "annowidget.widgets.app",
    "EffortPanel": "annowidget.widgets.effort_panel",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'annowidget.widgets' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # a missing dependency: its own message says which
        raise ImportError(
            f"annowidget.widgets.{name} is not available: {module_name} is missing from this "
            "installation (reinstall annowidget)"
        ) from exc
    return getattr(module, name)
