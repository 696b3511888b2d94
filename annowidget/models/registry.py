"""The model registry of one project: base models from the zoo plus the project's trained ones.

Trained models live in ``<project.models_dir>/<name>/`` (layout in :mod:`annowidget.models.card`).
Names are unique per project and never shadow a base model's name.

Listing, cards and lineage do not import torch (a model list in a form, ``annowidget
models``): only loading and writing weights do, on first use.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from annowidget.models.card import (
    CARD_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    ModelCard,
    checkpoint_filename,
)
from annowidget.models.catalog import BASE_MODELS, list_base_models
from annowidget.models.runs import remove_temp_files, run_is_dead
from annowidget.models.weights import default_base_model, weights_available

if TYPE_CHECKING:  # the torch-using methods import it when called
    import torch
    from torch import nn

__all__ = [
    "ModelEntry",
    "ModelRegistry",
    "build_kwargs",
    "check_weights",
    "describe_lineage",
    "validate_model_name",
]

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_BUILD_KEYS = frozenset(
    {
        "rois_per_image",
        "min_size",
        "max_size",
        "trainable_backbone_layers",
        "frozen_batchnorm",
        "num_keypoints",
    }
)


class _HasModelsDir(Protocol):
    models_dir: Path


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model dropdown: a base model or a trained one.

    ``ready`` means it can predict now (weights cached / trained weights written).
    """

    name: str
    kind: Literal["base", "trained"]
    task: str
    description: str
    ready: bool
    card: ModelCard | None = None


def validate_model_name(name: str) -> str:
    """Return ``name`` if it can name a trained model, else raise ``ValueError`` saying why.

    Example:
        >>> validate_model_name("raccoons-v2.1")
        'raccoons-v2.1'
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.startswith("."):
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '_', '-' and '.' "
            "(not starting with '.')"
        )
    if len(name) > 100:
        raise ValueError(f"invalid model name {name!r}: at most 100 characters")
    if name in BASE_MODELS:
        raise ValueError(f"model name {name!r} is a base model's name: pick another one")
    return name


def check_weights(
    path: str | os.PathLike[str],
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
) -> None:
    """Refuse weights that cannot predict anything; warn about ones stored in the wrong type.

    NaN or infinite values (a diverged run, a corrupt file) raise :class:`CheckpointError`
    naming the file and the first tensor. Tensors whose dtype differs from the model's
    (int8 where float32 is expected: quantized or hand-converted files) load, cast by
    PyTorch, with a ``UserWarning``: the values are likely not what training wrote.

    Example:
        >>> import torch
        >>> check_weights("w.safetensors", {"w": torch.ones(2)}, {"w": torch.zeros(2)})
    """
    import torch

    mismatched = []
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path}: tensor {key!r} holds NaN or infinite values: these weights cannot "
                "predict (did the training run diverge?)"
            )
        want = expected.get(key)
        if want is not None and want.dtype != tensor.dtype:
            mismatched.append(f"{key} ({tensor.dtype}, expected {want.dtype})")
    if mismatched:
        more = f" and {len(mismatched) - 3} more" if len(mismatched) > 3 else ""
        warnings.warn(
            f"{path}: {len(mismatched)} tensor(s) stored in another type than the model's, "
            f"converted on loading: {', '.join(mismatched[:3])}{more}",
            UserWarning,
            stacklevel=3,
        )


def build_kwargs(card: ModelCard) -> dict[str, Any]:
    """``zoo.build_model`` keyword arguments that build ``card``'s architecture.

    The one translation of a card's ``model_config`` into build settings: the Trainer builds
    the model it trains with it, :meth:`ModelRegistry.load` rebuilds saved models with it.

    Example:
        >>> card = ModelCard("m", "keypoints", "keypointrcnn_mobilenet_v2_fpn", ["person"],
        ...                  num_keypoints=3, model_config={"min_size": 128, "num_classes": 2})
        >>> sorted(build_kwargs(card).items())
        [('min_size', 128), ('num_keypoints', 3)]
    """
    kwargs = {k: v for k, v in card.model_config.items() if k in _BUILD_KEYS}
    if card.num_keypoints and "num_keypoints" not in kwargs:
        kwargs["num_keypoints"] = int(card.num_keypoints)
    return kwargs


def base_model_card(name: str) -> ModelCard:
    """A card describing torchvision's COCO-pretrained model ``name`` as it is (no training).

    Example:
        >>> base_model_card("keypointrcnn_resnet50_fpn").categories
        ['person']
    """
    base = BASE_MODELS[name]
    keypoint_names = list(base.keypoint_names)
    return ModelCard(
        name=name,
        task=base.task,
        base_model=name,
        categories=list(base.coco_categories[1:]),  # label 0 is background
        num_keypoints=len(keypoint_names) or None,
        keypoint_names=keypoint_names,
        description=base.description,
        status="finished",
        model_config={"num_classes": len(base.coco_categories)},
    )


def describe_lineage(chain: Sequence[str], *, arrow: str = " <- ") -> str:
    """What a model was trained from, parent first, down to the zoo's base model, given its
    :meth:`ModelRegistry.lineage` (which starts with the model itself); "" for a base model.

    The one wording of a lineage: ``annowidget models`` prints it with ``" <- "``, the
    Predict tab with ``" ← "``.

    Example:
        >>> describe_lineage(["round-2", "round-1", "fasterrcnn_mobilenet_v3_large_fpn"])
        'round-1 <- fasterrcnn_mobilenet_v3_large_fpn'
    """
    return arrow.join(chain[1:])


class ModelRegistry:
    """Base and trained models of a project (anything with ``models_dir``, or that folder).

    Example:
        >>> import tempfile
        >>> reg = ModelRegistry(tempfile.mkdtemp())
        >>> card = ModelCard("m1", "detection", "fasterrcnn_mobilenet_v2_fpn", ["cat"])
        >>> reg.reserve("m1", card).name
        'm1'
        >>> reg.names()[0]
        'm1'
    """

    def __init__(self, project: _HasModelsDir | str | os.PathLike[str]) -> None:
        if isinstance(project, str | os.PathLike):
            self.models_dir = Path(project)
        else:
            self.models_dir = Path(project.models_dir)

    # -- paths ---------------------------------------------------------------------------
    def model_dir(self, name: str) -> Path:
        """Folder of trained model ``name`` (it may not exist yet)."""
        return self.models_dir / validate_model_name(name)

    def _trained_dirs(self) -> list[Path]:
        if not self.models_dir.is_dir():
            return []
        return [
            d
            for d in self.models_dir.iterdir()
            if d.is_dir() and not d.name.startswith(".") and (d / CARD_FILE).is_file()
        ]

    # -- listing -------------------------------------------------------------------------
    def list(self, task: str | None = None) -> list[ModelEntry]:
        """Trained models (newest first), then base models, optionally for one task."""
        trained: list[tuple[str, float, ModelEntry]] = []
        for folder in self._trained_dirs():
            try:
                card = ModelCard.load(folder)
            except (OSError, ValueError) as exc:
                entry = ModelEntry(folder.name, "trained", "", f"unreadable: {exc}", False)
                trained.append(("", folder.stat().st_mtime, entry))
                continue
            card = self._unless_dead(folder, card)
            if card is None:  # a killed run that kept nothing: gone, its name free again
                continue
            ready = (folder / WEIGHTS_FILE).is_file()
            entry = ModelEntry(card.name, "trained", card.task, card.description, ready, card)
            trained.append((card.created, folder.stat().st_mtime, entry))
        trained.sort(key=lambda item: (item[0], item[1]), reverse=True)
        entries = [item[2] for item in trained]
        for base in list_base_models():
            ready = weights_available(base.name)
            entries.append(ModelEntry(base.name, "base", base.task, base.description, ready))
        return [e for e in entries if task is None or e.task == task]

    def names(self, task: str | None = None) -> list[str]:
        """Names of :meth:`list`, in the same order."""
        return [entry.name for entry in self.list(task)]

    def exists(self, name: str) -> bool:
        """Whether ``name`` is taken in this project (a trained model or a base model)."""
        if name in BASE_MODELS:
            return True
        try:
            folder = self.model_dir(name)
        except ValueError:
            return False
        if (folder / CARD_FILE).is_file():
            try:
                return self._unless_dead(folder, ModelCard.load(folder)) is not None
            except (OSError, ValueError):
                return True
        return folder.exists()

    def default_base(self, task: str) -> str:
        """The base a new run of ``task`` starts from: the newest finished trained model of
        that task in the project (rounds build on each other), else the zoo's default.

        Example:
            >>> import tempfile
            >>> ModelRegistry(tempfile.mkdtemp()).default_base("detection") in BASE_MODELS
            True
        """
        for entry in self.list(task):
            card = entry.card
            if entry.kind == "trained" and entry.ready and card and card.status == "finished":
                return entry.name
        return default_base_model(task)

    def lineage(self, name: str) -> list[str]:
        """``name``, its parent, the parent's parent, ... down to the zoo's base model.

        Example:
            >>> import tempfile
            >>> ModelRegistry(tempfile.mkdtemp()).lineage("fasterrcnn_mobilenet_v2_fpn")
            ['fasterrcnn_mobilenet_v2_fpn']
        """
        chain = [name]
        while chain[-1] not in BASE_MODELS and len(chain) < 1000:
            try:
                card = self.card(chain[-1])
            except (KeyError, OSError, ValueError):
                break  # a parent deleted since: the chain stops at its name
            step = card.parent or card.base_model
            if step in chain:
                break
            chain.append(step)
        return chain

    def _unless_dead(self, folder: Path, card: ModelCard) -> ModelCard | None:
        """``card``, or, when its run's process is gone while the card says "training":
        temp files removed, the model marked failed (``None`` when it kept no epoch at all:
        then its folder is removed and the name is free)."""
        if card.status != "training" or not run_is_dead(card.run):
            return card
        remove_temp_files(folder)
        kept = (folder / WEIGHTS_FILE).is_file() or any(
            (folder / str(c.get("file", ""))).is_file() for c in card.checkpoints
        )
        if not kept:
            shutil.rmtree(folder, ignore_errors=True)
            return None
        run = card.run
        card.status = "failed"
        card.status_reason = (
            f"the training process (pid {run.get('pid')} on {run.get('host')}) ended without "
            "finishing (killed?); the last completed epoch's weights were kept"
        )
        card.run = {}
        with contextlib.suppress(OSError):  # a read-only project: still shown as failed
            card.save(folder)
        return card

    def card(self, name: str) -> ModelCard:
        """The card of a trained model (``KeyError`` if there is none)."""
        try:
            folder = self.model_dir(name)
        except ValueError as exc:
            raise KeyError(f"no trained model {name!r} in {self.models_dir}: {exc}") from None
        if not (folder / CARD_FILE).is_file():
            raise KeyError(f"no trained model {name!r} in {self.models_dir}")
        return ModelCard.load(folder)

    # -- writing -------------------------------------------------------------------------
    def reserve(self, name: str, card: ModelCard) -> Path:
        """Create the folder of a new trained model and write its first card.

        ``ValueError`` if the name is invalid or already used in this project.
        """
        folder = self.model_dir(name)
        if card.name != name:
            raise ValueError(f"card is named {card.name!r}, not {name!r}")
        self.models_dir.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()  # atomic: two trainers cannot both get the same name
        except FileExistsError:
            raise ValueError(f"model name {name!r} already exists in this project") from None
        card.save(folder)
        return folder

    def save_card(self, card: ModelCard) -> Path:
        """Rewrite the card of an existing trained model (atomic)."""
        folder = self.model_dir(card.name)
        if not folder.is_dir():
            raise KeyError(f"no trained model {card.name!r}: reserve() it first")
        return card.save(folder)

    def save_weights(self, name: str, state_dict: Mapping[str, torch.Tensor]) -> Path:
        """Write the weights to use for ``name`` (``weights.safetensors``, atomic)."""
        from annowidget.models._state_io import save_state_dict

        folder = self.model_dir(name)
        if not folder.is_dir():
            raise KeyError(f"no trained model {name!r}: reserve() it first")
        return save_state_dict(folder / WEIGHTS_FILE, state_dict)

    def save_checkpoint(self, name: str, epoch: int, state_dict: Mapping[str, torch.Tensor]) -> str:
        """Write the checkpoint of ``epoch``; returns its path relative to the model folder."""
        from annowidget.models._state_io import save_state_dict

        folder = self.model_dir(name)
        if not folder.is_dir():
            raise KeyError(f"no trained model {name!r}: reserve() it first")
        relative = checkpoint_filename(epoch)
        save_state_dict(folder / relative, state_dict)
        return relative

    def delete(self, name: str) -> None:
        """Remove a trained model and its files (base models cannot be deleted)."""
        if name in BASE_MODELS:
            raise ValueError(f"{name!r} is a base model and cannot be deleted")
        folder = self.model_dir(name)
        if not folder.is_dir():
            raise KeyError(f"no trained model {name!r} in {self.models_dir}")
        shutil.rmtree(folder)

    # -- loading -------------------------------------------------------------------------
    def weights_file(self, name: str) -> Path:
        """The weights file to load for trained model ``name`` (``CheckpointError`` if none).

        Example:
            >>> # ModelRegistry(project).weights_file("raccoons-v1").name -> 'weights.safetensors'
        """
        return self._weights_file(name, self.card(name))

    def _weights_file(self, name: str, card: ModelCard) -> Path:
        folder = self.model_dir(name)
        if (folder / WEIGHTS_FILE).is_file():
            return folder / WEIGHTS_FILE
        # still training: fall back to the latest checkpoint written so far
        for checkpoint in reversed(card.checkpoints):
            candidate = folder / str(checkpoint.get("file", ""))
            if candidate.is_file() and candidate.resolve().is_relative_to(folder.resolve()):
                return candidate
        raise CheckpointError(f"model {name!r} has no weights yet ({folder / WEIGHTS_FILE})")

    def build_kwargs(self, card: ModelCard) -> dict[str, Any]:
        """``zoo.build_model`` keyword arguments that rebuild ``card``'s architecture
        (:func:`build_kwargs`)."""
        return build_kwargs(card)

    def load(self, name: str, *, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
        """The model ``name`` in eval mode on ``device``, with its card.

        Trained models are rebuilt with random init and get their saved weights; base names
        give torchvision's COCO-pretrained model and a card listing its classes.
        """
        from annowidget.models import zoo
        from annowidget.models._state_io import load_state_dict

        if name in BASE_MODELS:
            model, _ = zoo.build_pretrained(name)
            return model.to(device).eval(), base_model_card(name)
        card = self.card(name)
        path = self._weights_file(name, card)
        model = zoo.build_model(
            card.base_model, card.num_classes, pretrained=False, **build_kwargs(card)
        )
        state = load_state_dict(path)
        check_weights(path, state, model.state_dict())
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path} does not fit {card.base_model} with {card.num_classes} classes: {exc}"
            ) from exc
        return model.to(device).eval(), card
