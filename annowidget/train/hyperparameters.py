"""Training hyperparameters: one validated dataclass, JSON round-trip for the model card.

Each field is declared once, here, with everything the rest of the package needs to show it:
its label, help text, CLI flag and whether it belongs to the form's "advanced" part
(:func:`declare`). The TrainingPanel's form and ``annowidget train``'s flags are generated
from :func:`hyperparameter_fields`, so adding a field here adds it to both.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_SPEC = "annowidget"  # the key of a field's declaration in its dataclass metadata
#: ``precision`` values; what each means: :mod:`annowidget.train.precision`.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

#: The seed's learning rate and the batch size it was tuned for (torchvision's detection
#: references: 0.02 for 16 images per step). The default rate scales linearly from it.
REFERENCE_LEARNING_RATE = 0.02
REFERENCE_BATCH_SIZE = 16


def scaled_learning_rate(batch_size: int) -> float:
    """The default learning rate for ``batch_size``: the linear scaling rule (Goyal et al.
    2017) from 0.02 at batch 16, the rate the seed's 0.02 was meant for.

    Example:
        >>> scaled_learning_rate(4), scaled_learning_rate(16)
        (0.005, 0.02)
    """
    return REFERENCE_LEARNING_RATE * int(batch_size) / REFERENCE_BATCH_SIZE


def default_num_threads() -> int:
    """All cores but one, so the notebook's UI thread keeps a core (at least 1).

    Example:
        >>> default_num_threads() >= 1
        True
    """
    return max(1, (os.cpu_count() or 1) - 1)


def check_device(name: Any) -> str:
    """A device name as training, prediction and evaluation take it (``ValueError`` if not).

    Example:
        >>> check_device(" cuda:1 ")
        'cuda:1'
    """
    if not isinstance(name, str) or not _DEVICE_PATTERN.match(name.strip()):
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")
    return name.strip()


@dataclass(frozen=True)
class HyperparameterField:
    """How one ``Hyperparameters`` field is shown: in the form and on the command line.

    ``kind`` is the value's type (``int``, ``float``, ``bool`` or ``str``) and ``optional``
    says ``None`` is allowed (the form shows an empty input with ``placeholder``, the CLI
    takes the word ``auto``); ``choices`` makes the form input a dropdown (the value may
    still be another valid one, such as ``cuda:1``).

    Example:
        >>> spec = next(f for f in hyperparameter_fields() if f.name == "batch_size")
        >>> spec.flag, spec.kind, spec.label
        ('--batch-size', 'int', 'batch size')
    """

    name: str
    label: str
    help: str
    flag: str
    kind: str
    optional: bool
    default: Any
    advanced: bool = False
    choices: tuple[str, ...] = ()
    placeholder: str = "auto"

    @property
    def input(self) -> str:
        """The form input: ``dropdown``, ``checkbox``, ``optional <kind>`` (text) or the kind.

        Example:
            >>> next(f for f in hyperparameter_fields() if f.name == "augment").input
            'checkbox'
        """
        if self.choices:
            return "dropdown"
        if self.kind == "bool":
            return "checkbox"
        return f"optional {self.kind}" if self.optional else self.kind

    def parse(self, text: str) -> Any:
        """A value typed on the command line or in an optional field (``auto``/empty: None).

        ``ValueError`` names the field when the text is not of its kind; the range is
        checked by ``Hyperparameters`` itself.

        Example:
            >>> spec = next(f for f in hyperparameter_fields() if f.name == "image_size")
            >>> spec.parse("320"), spec.parse("auto"), spec.parse("")
            (320, None, None)
        """
        text = text.strip()
        if self.optional and text.lower() in ("", "auto", "none"):
            return None
        if self.kind == "str":
            return text
        if self.kind == "bool":
            if text.lower() in ("true", "yes", "1"):
                return True
            if text.lower() in ("false", "no", "0"):
                return False
        else:
            try:
                return int(text) if self.kind == "int" else float(text)
            except ValueError:
                pass
        expected = {"int": "a whole number", "float": "a number", "bool": "true or false"}
        empty = " or empty" if self.optional else ""
        raise ValueError(f"{self.name} must be {expected[self.kind]}{empty}, got {text!r}")

    def format(self, value: Any) -> str:
        """The text that :meth:`parse` turns back into ``value``.

        Example:
            >>> spec = next(f for f in hyperparameter_fields() if f.name == "warmup_iters")
            >>> spec.format(None), spec.format(50)
            ('auto', '50')
        """
        if value is None:
            return "auto"
        return str(value).lower() if isinstance(value, bool) else str(value)


def declare(
    default: Any = dataclasses.MISSING,
    *,
    label: str,
    help: str,
    flag: str,
    advanced: bool = False,
    choices: tuple[str, ...] = (),
    placeholder: str = "auto",
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field of ``Hyperparameters`` with its label, help text and CLI flag.

    Example (how a field is declared):
        >>> import dataclasses
        >>> @dataclasses.dataclass
        ... class Demo:
        ...     steps: int = declare(3, label="steps", help="How many.", flag="--steps")
        >>> Demo().steps
        3
    """
    metadata = {
        _SPEC: {
            "label": label,
            "help": help,
            "flag": flag,
            "advanced": advanced,
            "choices": tuple(choices),
            "placeholder": placeholder,
        }
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Hyperparameters:
    """What a training run does, checked on creation (``ValueError`` names the bad field).

    ``gamma`` multiplies the learning rate every ``gamma_epochs`` epochs ("epochs for gamma").
    ``split_ratio`` is used only when no test folder is given: the training folders are then
    split deterministically by ``seed``. ``image_size`` is the shorter image side the model
    sees (``None``: the base model's own input size). ``warmup_iters=None`` warms the learning
    rate up linearly over the first epoch (at most 1000 steps), ``0`` disables warm-up.
    ``workers`` is the number of DataLoader processes that decode and augment images
    (``None``: sized to the machine, see :func:`annowidget.train.loader.auto_workers`; ``0``:
    in the training thread). ``precision`` is ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see
    :mod:`annowidget.train.precision`; ``auto``: bf16 on a GPU that has it, else fp32).
    ``learning_rate=None`` (the default) means :func:`scaled_learning_rate` of the batch size
    (0.005 at batch 4); a copy made with :meth:`replace` and another batch size rescales it
    unless a rate was given. ``grad_clip_norm`` caps the gradients' total norm at every step
    (``0``: no clipping); with the warm-up it keeps the first steps of a fresh head from
    blowing the loss up to NaN.

    Example:
        >>> hp = Hyperparameters(epochs=2, batch_size=2)
        >>> Hyperparameters.from_dict(hp.to_dict()) == hp
        True
        >>> hp.learning_rate, hp.replace(batch_size=8).learning_rate
        (0.0025, 0.01)
        >>> Hyperparameters(batch_size=0)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be a positive integer, got 0
    """

    # The form shows the fields in this order: the first block up front, advanced=True ones
    # folded away.
    batch_size: int = declare(
        4,
        label="batch size",
        help="Images per training step. Lower it if memory runs out.",
        flag="--batch-size",
    )
    epochs: int = declare(
        12, label="epochs", help="Passes over the training images.", flag="--epochs"
    )
    # None (the default) becomes the linear scaling rule's rate in __post_init__: always a
    # float afterwards, so the form shows the number and the CLI takes one.
    learning_rate: float = declare(
        None,
        label="learning rate",
        help="SGD step size: 0.02 for batch 16, scaled linearly (0.005 at batch 4); it follows "
        "the batch size unless you give one.",
        flag="--lr",
    )
    gamma: float = declare(
        0.5,
        label="gamma",
        help="The learning rate is multiplied by gamma every 'epochs for gamma'.",
        flag="--gamma",
    )
    gamma_epochs: int = declare(
        5,
        label="epochs for gamma",
        help="Epochs between two learning-rate drops.",
        flag="--gamma-epochs",
    )
    rois_per_image: int = declare(
        512,
        label="RoIs per image",
        help="Region proposals sampled per image to train the box head (R-CNN models).",
        flag="--rois-per-image",
    )
    eval_period: int = declare(
        12,
        label="evaluation period",
        help="Every N epochs: write a checkpoint and measure mAP on the test folders.",
        flag="--eval-period",
    )
    split_ratio: float = declare(
        0.8,
        label="train/test split",
        help="Only when no test folder is picked: the share of training images trained on.",
        flag="--split-ratio",
    )
    device: str = declare(
        "auto",
        label="device",
        help="auto: the GPU when there is one, else the CPU (or cpu, cuda, cuda:N, mps).",
        flag="--device",
        choices=DEVICES,
    )
    seed: int = declare(
        0,
        label="seed",
        help="Same seed, same split and augmentation: runs can be compared.",
        flag="--seed",
        advanced=True,
    )
    image_size: int | None = declare(
        None,
        label="image size",
        help="Shorter image side the model sees. auto (left empty): the model's own.",
        flag="--image-size",
        advanced=True,
    )
    augment: bool = declare(
        True,
        label="augment",
        help="Random flips and colour jitter on training images.",
        flag="--augment",
        advanced=True,
    )
    momentum: float = declare(
        0.9, label="momentum", help="SGD momentum.", flag="--momentum", advanced=True
    )
    weight_decay: float = declare(
        1e-4,
        label="weight decay",
        help="L2 penalty on the weights.",
        flag="--weight-decay",
        advanced=True,
    )
    warmup_iters: int | None = declare(
        None,
        label="warm-up steps",
        help="Learning-rate warm-up. auto (left empty): over the first epoch; 0: none.",
        flag="--warmup-steps",
        advanced=True,
    )
    num_threads: int = declare(
        label="CPU threads",
        help="Threads for training; the default leaves one core free.",
        flag="--threads",
        advanced=True,
        default_factory=default_num_threads,
    )
    workers: int | None = declare(
        None,
        label="data workers",
        help="Processes that decode and augment images. auto (left empty): sized to the "
        "machine; 0: none.",
        flag="--workers",
        advanced=True,
    )
    precision: str = declare(
        "auto",
        label="precision",
        help="auto: bf16 on a GPU that has it, else fp32. fp16 (CUDA) scales the gradients.",
        flag="--precision",
        choices=PRECISIONS,
        advanced=True,
    )
    grad_clip_norm: float = declare(
        10.0,
        label="gradient clipping",
        help="Caps the gradients' total norm at every step (0: no clipping).",
        flag="--grad-clip",
        advanced=True,
    )

    def __post_init__(self) -> None:
        # Not a field: whether learning_rate came from the scaling rule (replace() rescales it).
        self._scaled_lr = self.learning_rate is None
        for name in ("batch_size", "epochs", "gamma_epochs", "rois_per_image", "eval_period"):
            _positive_int(self, name)
        for name in ("image_size",):
            if getattr(self, name) is not None:
                _positive_int(self, name)
        _positive_int(self, "num_threads")
        _non_negative_int(self, "seed")
        if self.warmup_iters is not None:
            _non_negative_int(self, "warmup_iters")
        if self.workers is not None:
            _non_negative_int(self, "workers")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self._scaled_lr:
            self.learning_rate = scaled_learning_rate(self.batch_size)
        _positive_float(self, "learning_rate")
        _positive_float(self, "gamma")
        for name in ("momentum", "weight_decay", "grad_clip_norm"):
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
        self.device = check_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (what the model card stores).

        Example:
            >>> Hyperparameters().to_dict()["learning_rate"]
            0.005
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
        if self._scaled_lr and "learning_rate" not in changes:
            changes["learning_rate"] = None  # follow the new batch size
        return dataclasses.replace(self, **changes)


def hyperparameter_fields() -> tuple[HyperparameterField, ...]:
    """Every ``Hyperparameters`` field with its declaration, in the dataclass's order.

    Example:
        >>> [f.flag for f in hyperparameter_fields()][:3]
        ['--batch-size', '--epochs', '--lr']
    """
    hints = typing.get_type_hints(Hyperparameters)
    specs = []
    for item in dataclasses.fields(Hyperparameters):
        if _SPEC not in item.metadata:
            raise TypeError(f"Hyperparameters.{item.name} is not declared with declare()")
        kind, optional = _kind(hints[item.name])
        if item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            default = item.default
        specs.append(
            HyperparameterField(
                name=item.name,
                kind=kind,
                optional=optional,
                default=default,
                **item.metadata[_SPEC],
            )
        )
    return tuple(specs)


def _kind(hint: Any) -> tuple[str, bool]:
    """``int | None`` -> ("int", True); ``float`` -> ("float", False)."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    optional = type(None) in args
    (base,) = [a for a in args if a is not type(None)]
    return base.__name__, optional


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
