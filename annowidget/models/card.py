"""The model card: the on-disk contract between the trainer and the model registry.

Layout of one trained model inside ``<project.models_dir>``::

    <name>/card.json                         ModelCard (this module), JSON
    <name>/weights.safetensors               the weights to use (best or last epoch)
    <name>/checkpoints/epoch_0003.safetensors  one per evaluation

Weights are never pickled: see :func:`save_state_dict` / :func:`load_state_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annowidget._io import atomic_write_json
from annowidget.models.tasks import TASKS, check_task

if TYPE_CHECKING:  # imported on first use by __getattr__ below (they import torch)
    from annowidget.models._state_io import load_state_dict, save_state_dict

__all__ = [
    "CARD_FILE",
    "CHECKPOINTS_DIR",
    "STATUSES",
    "TASKS",
    "WEIGHTS_FILE",
    "CheckpointError",
    "ModelCard",
    "checkpoint_filename",
    "describe_metrics",
    "load_state_dict",
    "save_state_dict",
]

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"
CHECKPOINTS_DIR = "checkpoints"
STATUSES: tuple[str, ...] = ("training", "finished", "stopped", "failed")
_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A weights file that is missing, unsafe (arbitrary pickled objects) or not a state dict.

    Defined here, torch-free, so that code telling "no weights yet" apart (the registry,
    the trainer) can catch it without importing torch.
    """


def checkpoint_filename(epoch: int) -> str:
    """Relative path (inside the model dir) of the checkpoint written after ``epoch``.

    Example:
        >>> checkpoint_filename(3)
        'checkpoints/epoch_0003.safetensors'
    """
    return f"{CHECKPOINTS_DIR}/epoch_{int(epoch):04d}.safetensors"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# What each field must hold, so that a hand-edited or corrupt card is refused on reading
# (and listed as unreadable) instead of breaking whoever sorts, lists or rebuilds it later.
_TEXT_FIELDS = ("task", "base_model", "description", "status", "status_reason", "created")
_TEXT_LIST_FIELDS = ("categories", "keypoint_names", "train_folders", "test_folders")
_RECORD_LIST_FIELDS = ("metrics", "checkpoints")
_MAPPING_FIELDS = ("hyperparameters", "model_config")
_METRIC_NUMBERS = ("epoch", "AP", "AP50", "AP75", "mIoU", "pixel_accuracy")
# integer model_config entries that rebuild the architecture: name -> smallest value
_CONFIG_INTS = {
    "num_classes": 2,
    "min_size": 1,
    "max_size": 1,
    "rois_per_image": 1,
    "num_keypoints": 1,
    "trainable_backbone_layers": 0,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(card: ModelCard) -> None:
    for name in _TEXT_FIELDS:
        if not isinstance(getattr(card, name), str):
            raise ValueError(f"model card field {name!r} must be text, got {getattr(card, name)!r}")
    for name in _TEXT_LIST_FIELDS:
        value = getattr(card, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"model card field {name!r} must be a list of names")
    for name in _RECORD_LIST_FIELDS:
        value = getattr(card, name)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError(f"model card field {name!r} must be a list of objects")
    for entry in card.metrics:
        for key in _METRIC_NUMBERS:
            value = entry.get(key)
            if value is not None and not isinstance(value, int | float):
                raise ValueError(f"model card field 'metrics' has {key} = {value!r}: not a number")
    for entry in card.checkpoints:
        if not _is_int(entry.get("epoch")) or not isinstance(entry.get("file"), str):
            raise ValueError(f"model card field 'checkpoints' has {entry!r}: need epoch and file")
    for name in _MAPPING_FIELDS:
        if not isinstance(getattr(card, name), dict):
            raise ValueError(f"model card field {name!r} must be an object")
    keypoints = card.num_keypoints
    if keypoints is not None and not (_is_int(keypoints) and keypoints > 0):
        raise ValueError(
            f"model card field 'num_keypoints' must be a positive integer, got {keypoints!r}"
        )
    for key, smallest in _CONFIG_INTS.items():
        value = card.model_config.get(key)
        if value is not None and not (_is_int(value) and value >= smallest):
            raise ValueError(
                f"model card field 'model_config.{key}' must be an integer >= {smallest}, "
                f"got {value!r}"
            )
    frozen = card.model_config.get("frozen_batchnorm")
    if frozen is not None and not isinstance(frozen, bool):
        raise ValueError("model card field 'model_config.frozen_batchnorm' must be true or false")


@dataclass
class ModelCard:
    """Everything needed to rebuild, describe and compare one trained model.

    ``categories`` are names in label order: label ``i + 1`` is ``categories[i]`` (label 0 is
    background, for detection and semantic segmentation alike). ``model_config`` holds the
    keyword arguments for ``zoo.build_model`` (``num_classes``, ``min_size``, ...).

    Example:
        >>> card = ModelCard(name="raccoons-v1", task="detection",
        ...                  base_model="fasterrcnn_mobilenet_v2_fpn", categories=["raccoon"])
        >>> ModelCard.from_json(card.to_json()) == card
        True
    """

    name: str
    task: str
    base_model: str
    categories: list[str]
    num_keypoints: int | None = None
    keypoint_names: list[str] = field(default_factory=list)
    description: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    train_folders: list[str] = field(default_factory=list)
    test_folders: list[str] = field(default_factory=list)
    # one dict per evaluation: {"epoch": int, "AP": float, "AP50": float, "per_class": {...}}
    metrics: list[dict[str, Any]] = field(default_factory=list)
    # {"epoch": int, "file": "checkpoints/epoch_0003.safetensors"} (relative to the model dir)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    status: str = "training"
    status_reason: str = ""
    created: str = field(default_factory=_now)
    model_config: dict[str, Any] = field(default_factory=dict)
    # the trained model of the project this one started from (warm start); None: a base model
    parent: str | None = None
    # what the run wants the user to know (warm-start mapping, a learning rate halved, ...)
    notes: list[str] = field(default_factory=list)
    # while training: {"pid": int, "host": str, "heartbeat": iso time} to tell a dead run
    run: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("model card field 'name' must be a non-empty string")
        _check_types(self)
        check_task(self.task)
        if self.status not in STATUSES:
            raise ValueError(
                f"model card field 'status' is {self.status!r}: expected one of "
                f"{', '.join(STATUSES)}"
            )
        if not isinstance(self.categories, list) or not all(
            isinstance(c, str) for c in self.categories
        ):
            raise ValueError("model card field 'categories' must be a list of names")

    # -- derived -------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of model outputs: the categories plus background (label 0)."""
        return int(self.model_config.get("num_classes", len(self.categories) + 1))

    def label_to_category(self, label: int) -> str | None:
        """Category name for a model label (``None`` for background or out of range).

        Example:
            >>> ModelCard("m", "detection", "b", ["cat", "dog"]).label_to_category(2)
            'dog'
        """
        index = int(label) - 1
        return self.categories[index] if 0 <= index < len(self.categories) else None

    def add_checkpoint(self, epoch: int, file: str | None = None) -> dict[str, Any]:
        """Record the checkpoint of ``epoch`` (replacing an earlier one for the same epoch)."""
        entry = {"epoch": int(epoch), "file": file or checkpoint_filename(epoch)}
        self.checkpoints = [c for c in self.checkpoints if c.get("epoch") != entry["epoch"]]
        self.checkpoints.append(entry)
        self.checkpoints.sort(key=lambda c: c["epoch"])
        return entry

    def add_metrics(self, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        """Record one evaluation (replacing an earlier one for the same epoch)."""
        entry = {**metrics, "epoch": int(epoch)}
        self.metrics = [m for m in self.metrics if m.get("epoch") != entry["epoch"]]
        self.metrics.append(entry)
        self.metrics.sort(key=lambda m: m["epoch"])
        return entry

    @property
    def latest_metrics(self) -> dict[str, Any] | None:
        """The most recent evaluation, or ``None`` before the first one."""
        return self.metrics[-1] if self.metrics else None

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with a ``format_version`` key)."""
        data = dataclasses.asdict(self)
        data["format_version"] = _FORMAT_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "model card") -> ModelCard:
        """Build a card from :meth:`to_dict` output; unknown keys (newer writers) are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("name", "task", "base_model", "categories") if n not in data]
        if missing:
            raise ValueError(f"{source}: missing field(s) {', '.join(missing)}")
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from exc

    def to_json(self) -> str:
        """The card as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "model card") -> ModelCard:
        """Parse :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source}: not valid JSON ({exc})") from exc
        except RecursionError:
            raise ValueError(f"{source}: not a model card (JSON nested too deeply)") from None
        return cls.from_dict(data, source=source)

    def save(self, model_dir: str | os.PathLike[str]) -> Path:
        """Write ``<model_dir>/card.json`` atomically; returns its path.

        Example:
            >>> import tempfile, pathlib
            >>> d = pathlib.Path(tempfile.mkdtemp())
            >>> ModelCard("m", "detection", "b", ["cat"]).save(d).name
            'card.json'
        """
        return atomic_write_json(Path(model_dir) / CARD_FILE, self.to_dict())

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str]) -> ModelCard:
        """Read ``<model_dir>/card.json`` (``FileNotFoundError`` / ``ValueError`` name the file).

        Example:
            >>> import tempfile, pathlib
            >>> d = pathlib.Path(tempfile.mkdtemp())
            >>> _ = ModelCard("m", "detection", "b", ["cat"]).save(d)
            >>> ModelCard.load(d).categories
            ['cat']
        """
        path = Path(model_dir) / CARD_FILE
        if not path.is_file():
            raise FileNotFoundError(f"model card not found: {path}")
        return cls.from_json(path.read_bytes(), source=str(path))


def describe_metrics(metrics: dict[str, Any] | None) -> str:
    """One evaluation in words: AP, AP50 and AP75 with the number of test images (mIoU and
    pixel accuracy for semantic segmentation). The CLI and the Predict tab both print it.

    Example:
        >>> describe_metrics({"AP": 0.34, "AP50": 0.68, "AP75": 0.3, "images": 6})
        'AP 0.340, AP50 0.680, AP75 0.300 on 6 images'
    """
    if not metrics:
        return "no metrics"
    if "mIoU" in metrics:
        return (
            f"mIoU {_number(metrics['mIoU'])}, "
            f"pixel accuracy {_number(metrics.get('pixel_accuracy'))}"
        )
    return (
        f"AP {_number(metrics.get('AP'))}, AP50 {_number(metrics.get('AP50'))}, "
        f"AP75 {_number(metrics.get('AP75'))} on {metrics.get('images', '?')} images"
    )


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# The weight-file functions live with torch in _state_io; they are re-exported here on first
# use so that reading a card (model lists, `annowidget models`) does not import torch.
_STATE_IO = ("load_state_dict", "save_state_dict")


def __getattr__(name: str) -> Any:
    if name in _STATE_IO:
        from annowidget.models import _state_io

        return getattr(_state_io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
