"""annowidget: label images inside Jupyter and fine-tune torchvision models on them.

Example:
    >>> import annowidget
    >>> # project = annowidget.sample_project("sample")
    >>> # annowidget.LabelingApp(project)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names and the module that defines each. Loaded on first use so that
# `import annowidget` stays fast and does not pull in torch for the store or the CLI.
_EXPORTS = {
    "Project": "annowidget.store",
    "ProjectError": "annowidget.store",
    "sample_project": "annowidget.sample",
    "Annotator": "annowidget.widgets",
    "Gallery": "annowidget.widgets",
    "TrainingPanel": "annowidget.widgets",
    "PredictPanel": "annowidget.widgets",
    "LabelingApp": "annowidget.widgets",
    "EffortPanel": "annowidget.widgets",
    "Trainer": "annowidget.train",
    "ContinuousTrainer": "annowidget.train",
    "Hyperparameters": "annowidget.train",
    "ModelRegistry": "annowidget.models",
    "predict_images": "annowidget.models",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'annowidget' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
