"""Evaluate any model of the registry (trained or pretrained) on folders of a project.

Labels are matched through the model's card: label ``i + 1`` is ``card.categories[i]``,
found in the project by name, so categories added after training (or COCO's 80 classes of
a pretrained model) line up. Only categories the project has are reported per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from annowidget.models._catalog import BASE_MODELS
from annowidget.models.card import ModelCard
from annowidget.models.registry import ModelRegistry
from annowidget.store import Category, Project
from annowidget.train import engine
from annowidget.train.dataset import SnapshotDataset
from annowidget.train.transforms import max_size_for


def _card_categories(project: Project, card: ModelCard) -> list[Category]:
    """The card's categories in label order, as the project's (a stand-in where it lacks one)."""
    by_name = {c.name.lower(): c for c in project.categories()}
    categories = []
    for index, name in enumerate(card.categories):
        found = by_name.get(name.strip().lower())
        # A negative id matches no annotation: the label exists, the project has no such class.
        categories.append(found or Category(-(index + 1), name))
    return categories


def _sizes(model: nn.Module, card: ModelCard) -> tuple[int, int]:
    transform = getattr(model, "transform", None)
    if transform is not None and getattr(transform, "min_size", None):
        return int(transform.min_size[-1]), int(transform.max_size)
    size = int(card.model_config.get("min_size") or BASE_MODELS[card.base_model].input_size)
    return size, int(card.model_config.get("max_size") or max_size_for(size))


def evaluate_model(
    project: Project,
    model: str | tuple[nn.Module, ModelCard],
    folders: str | Sequence[str],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 2,
) -> dict[str, Any]:
    """COCO metrics (or mean IoU) of ``model`` on the reviewed images of ``folders``.

    Example:
        >>> # evaluate_model(project, "raccoons-v1", "test")["AP50"]
    """
    if isinstance(model, str):
        net, card = ModelRegistry(project).load(model, device=device)
    else:
        net, card = model
    device = torch.device(device) if isinstance(device, str) else device
    snapshot = project.snapshot(folders)
    if not snapshot.items:
        names = folders if isinstance(folders, str) else ", ".join(folders)
        raise ValueError(f"no reviewed images in folder(s) {names}: nothing to evaluate on")
    image_size, max_size = _sizes(net, card)
    categories = _card_categories(project, card)
    dataset = SnapshotDataset(
        snapshot.items,
        [project.image_path(image) for image, _ in snapshot.items],
        categories,
        task=card.task,
        image_size=image_size,
        max_size=max_size,
    )
    metrics = engine.evaluate(net.to(device), dataset, device, batch_size=batch_size)
    present = {c.name for c in categories if c.id > 0}
    for section in [metrics, *(v for v in metrics.values() if isinstance(v, dict))]:
        for key in ("per_class", "per_class_AP50"):
            if isinstance(section.get(key), dict):
                section[key] = {
                    name: value
                    for name, value in section[key].items()
                    if name in present or name == "background"
                }
    metrics["model"] = card.name
    metrics["folders"] = [folders] if isinstance(folders, str) else list(folders)
    return metrics
