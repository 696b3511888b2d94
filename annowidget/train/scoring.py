"""Evaluate any model of the registry (trained or pretrained) on folders of a project.

The one evaluator of the package: the CLI's ``evaluate`` and the comparison report
(:mod:`annowidget.effort.compare`) both score through :func:`evaluate_model`.

Labels are matched through the model's card by name, case-insensitively, as smart prediction
matches them (:func:`annowidget.models.predict.category_mapping`): label ``i + 1`` is
``card.categories[i]``, found in the project by name, so categories added after training (or
COCO's 80 classes of a pretrained model) line up. Detections of classes the project lacks
are not scored; a project class the model does not know scores 0 where the folders hold
annotations of it. Only the project's categories are reported per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from annowidget.models.card import ModelCard
from annowidget.models.catalog import model_sizes
from annowidget.models.predict import category_mapping
from annowidget.models.registry import ModelRegistry
from annowidget.store import Category, Project
from annowidget.train import engine
from annowidget.train.dataset import SnapshotDataset


def label_categories(project: Project, card: ModelCard) -> tuple[list[Category], list[str]]:
    """Categories to score ``card``'s model with, and the project classes the model knows.

    The first ``len(card.categories)`` entries are in the model's label order (a stand-in
    with a negative id, which matches no annotation, where the project lacks the class), so
    the model's outputs need no relabeling; the project's other categories follow, labels the
    model never predicts.

    Example:
        >>> # label_categories(project, card) -> ([Category(1, "raccoon")], ["raccoon"])
    """
    by_id = {c.id: c for c in project.categories()}
    to_project = category_mapping(project, card)
    categories: list[Category] = []
    used: set[int] = set()
    for index, name in enumerate(card.categories):
        category = by_id.get(to_project.get(index + 1, 0))
        if category is None or category.id in used:
            category = Category(-(index + 1), name)
        categories.append(category)
        used.add(category.id)
    known = [c.name for c in categories if c.id > 0]
    categories.extend(c for c in by_id.values() if c.id not in used)
    return categories, known


def evaluate_model(
    project: Project,
    model: str | tuple[nn.Module, ModelCard],
    folders: str | Sequence[str],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 2,
    task: str | None = None,
) -> dict[str, Any]:
    """COCO metrics (or mean IoU) of ``model`` on the reviewed images of ``folders``.

    ``model`` is a registry name or an already loaded ``(module, card)``. ``task`` scores
    another view of the same outputs (``"detection"``: boxes only, for a mask or keypoint
    model). The result also holds ``model``, ``folders`` and ``known_classes`` (the project
    classes the model can predict).

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
    image_size, max_size = model_sizes(card.base_model, card.model_config)
    categories, known = label_categories(project, card)
    dataset = SnapshotDataset(
        snapshot.items,
        [project.image_path(image) for image, _ in snapshot.items],
        categories,
        task=task or card.task,
        image_size=image_size,
        max_size=max_size,
    )
    metrics = engine.evaluate(net.to(device), dataset, device, batch_size=batch_size)
    # the project's classes only, in the project's order
    present = ["background", *(c.name for c in project.categories())]
    for section in [metrics, *(v for v in metrics.values() if isinstance(v, dict))]:
        for key in ("per_class", "per_class_AP50"):
            if isinstance(section.get(key), dict):
                values = section[key]
                section[key] = {name: values[name] for name in present if name in values}
    metrics["model"] = card.name
    metrics["folders"] = [folders] if isinstance(folders, str) else list(folders)
    metrics["known_classes"] = known
    return metrics
