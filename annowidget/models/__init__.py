"""Base-model zoo per task, weight resolution, the registry of trained models, prediction."""

from __future__ import annotations

import importlib
from typing import Any

# Public names and the module that defines each, loaded on first use. The catalog, cards,
# weights lookup and registry listing are torch-free; building (zoo) and predicting import
# torch (seconds), so a form or `annowidget models` never pays for it.
_EXPORTS = {
    "ModelCard": "annowidget.models.card",
    "load_state_dict": "annowidget.models.card",
    "save_state_dict": "annowidget.models.card",
    "PredictionReport": "annowidget.models.predict",
    "predict_images": "annowidget.models.predict",
    "ModelEntry": "annowidget.models.registry",
    "ModelRegistry": "annowidget.models.registry",
    "MissingWeightsError": "annowidget.models.weights",
    "hub_checkpoints_dir": "annowidget.models.weights",
    "seed_offline_weights": "annowidget.models.weights",
    "weights_available": "annowidget.models.weights",
    "BASE_MODELS": "annowidget.models.catalog",
    "TASKS": "annowidget.models.catalog",
    "BaseModel": "annowidget.models.catalog",
    "build_model": "annowidget.models.zoo",
    "build_pretrained": "annowidget.models.zoo",
    "default_base_model": "annowidget.models.weights",
    "list_base_models": "annowidget.models.catalog",
    "model_task": "annowidget.models.catalog",
}

__all__ = [
    "BASE_MODELS",
    "TASKS",
    "BaseModel",
    "MissingWeightsError",
    "ModelCard",
    "ModelEntry",
    "ModelRegistry",
    "PredictionReport",
    "build_model",
    "build_pretrained",
    "default_base_model",
    "hub_checkpoints_dir",
    "list_base_models",
    "load_state_dict",
    "model_task",
    "predict_images",
    "save_state_dict",
    "seed_offline_weights",
    "weights_available",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'annowidget.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
