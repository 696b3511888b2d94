"""Base-model zoo per task, weight resolution, the registry of trained models, prediction."""

from __future__ import annotations

from annowidget.models.card import ModelCard, load_state_dict, save_state_dict

__all__ = ["ModelCard", "load_state_dict", "save_state_dict"]
