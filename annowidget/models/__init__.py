"""Base-model zoo per task, weight resolution, the registry of trained models, prediction."""

from __future__ import annotations

from annowidget.models.card import ModelCard, load_state_dict, save_state_dict
from annowidget.models.predict import PredictionReport, predict_images
from annowidget.models.registry import ModelEntry, ModelRegistry
from annowidget.models.weights import (
    MissingWeightsError,
    hub_checkpoints_dir,
    seed_offline_weights,
    weights_available,
)
from annowidget.models.zoo import (
    BASE_MODELS,
    TASKS,
    BaseModel,
    build_model,
    build_pretrained,
    default_base_model,
    list_base_models,
    model_task,
)

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
