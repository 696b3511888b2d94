"""Training hyperparameters: one validated dataclass, JSON round-trip for the model card."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def default_num_threads() -> int:
    """All cores but one, so the notebook's UI thread keeps a core (at least 1).

    Example:
        >>> default_num_threads() >= 1
        True
    """
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class Hyperparameters:
    """What a training run does, checked on creation (``ValueError`` names the bad field).

    ``gamma`` multiplies the learning rate every ``gamma_epochs`` epochs ("epochs for gamma").
    ``split_ratio`` is used only when no test folder is given: the training folders are then
    split deterministically by ``seed``. ``image_size`` is the shorter image side the model
    sees (``None``: the base model's own input size). ``warmup_iters=None`` warms the learning
    rate up linearly over the first epoch (at most 1000 steps), ``0`` disables warm-up.

    Example:
        >>> hp = Hyperparameters(epochs=2, batch_size=2)
        >>> Hyperparameters.from_dict(hp.to_dict()) == hp
        True
        >>> Hyperparameters(batch_size=0)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be a positive integer, got 0
    """

    batch_size: int = 4
    epochs: int = 12
    learning_rate: float = 0.02
    gamma: float = 0.5
    gamma_epochs: int = 5
    rois_per_image: int = 512
    eval_period: int = 12
    split_ratio: float = 0.8
    device: str = "auto"
    seed: int = 0
    image_size: int | None = None
    augment: bool = True
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int | None = None
    num_threads: int = field(default_factory=default_num_threads)

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "gamma_epochs", "rois_per_image", "eval_period"):
            _positive_int(self, name)
        for name in ("image_size",):
            if getattr(self, name) is not None:
                _positive_int(self, name)
        _positive_int(self, "num_threads")
        _non_negative_int(self, "seed")
        if self.warmup_iters is not None:
            _non_negative_int(self, "warmup_iters")
        _positive_float(self, "learning_rate")
        _positive_float(self, "gamma")
        for name in ("momentum", "weight_decay"):
            value = _finite_float(self, name)
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if self.momentum >= 1:
            raise ValueError(f"momentum must be below 1, got {self.momentum!r}")
        ratio = _finite_float(self, "split_ratio")
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"split_ratio must be between 0 and 1 (exclusive), got {ratio!r}")
        if not isinstance(self.augment, bool):
            raise ValueError(f"augment must be True or False, got {self.augment!r}")
        if not isinstance(self.device, str) or not _DEVICE_PATTERN.match(self.device.strip()):
            raise ValueError(
                f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {self.device!r}"
            )
        self.device = self.device.strip()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (what the model card stores).

        Example:
            >>> Hyperparameters().to_dict()["learning_rate"]
            0.02
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hyperparameters:
        """Rebuild from :meth:`to_dict` output; unknown keys raise ``ValueError`` naming them.

        Example:
            >>> Hyperparameters.from_dict({"epochs": 3}).epochs
            3
        """
        if not isinstance(data, dict):
            raise ValueError(f"hyperparameters must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> Hyperparameters:
        """A copy with some fields changed (validated again).

        Example:
            >>> Hyperparameters().replace(epochs=1).epochs
            1
        """
        return dataclasses.replace(self, **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(hp: Hyperparameters, name: str) -> None:
    value = getattr(hp, name)
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _non_negative_int(hp: Hyperparameters, name: str) -> None:
    value = getattr(hp, name)
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _finite_float(hp: Hyperparameters, name: str) -> float:
    value = getattr(hp, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    setattr(hp, name, float(value))
    return float(value)


def _positive_float(hp: Hyperparameters, name: str) -> None:
    value = _finite_float(hp, name)
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
