"""Training: hyperparameters, the snapshot dataset, the training engine and the background
``Trainer``.

Example:
    >>> from annowidget.train import Hyperparameters
    >>> Hyperparameters(epochs=2).epochs
    2
"""

from __future__ import annotations

import importlib
from typing import Any

from annowidget.train.hyperparameters import Hyperparameters

# Loaded on first use: importing torch costs seconds, the hyperparameters alone do not.
_LAZY = {
    "Trainer": "annowidget.train.trainer",
    "ContinuousTrainer": "annowidget.train.continuous",
    "SnapshotDataset": "annowidget.train.dataset",
    "DataError": "annowidget.train.dataset",
    "train_one_epoch": "annowidget.train.engine",
    "evaluate": "annowidget.train.engine",
    "NonFiniteLossError": "annowidget.train.engine",
    "evaluate_model": "annowidget.train.scoring",
    "StepEvent": "annowidget.train.events",
    "EpochEvent": "annowidget.train.events",
    "EvalEvent": "annowidget.train.events",
    "CheckpointEvent": "annowidget.train.events",
    "WarningEvent": "annowidget.train.events",
    "FinishedEvent": "annowidget.train.events",
    "FailedEvent": "annowidget.train.events",
    "TrainingEvent": "annowidget.train.events",
}

__all__ = ["Hyperparameters", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'annowidget.train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
