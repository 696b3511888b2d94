"""Mixed precision: which dtype a run computes in, ``torch.autocast`` and fp16 grad scaling.

The ``precision`` hyperparameter is one of :data:`PRECISIONS`:

- ``fp32``: plain float32, the code path of a run without mixed precision;
- ``bf16``: autocast to bfloat16 (same exponent range as float32: no loss scaling needed).
  Native on NVIDIA GPUs of compute capability 8.0 (Ampere) and newer; on the CPU it runs
  but is rarely faster;
- ``fp16``: autocast to float16 with a ``torch.amp.GradScaler`` (CUDA only), for GPUs
  without bfloat16;
- ``auto``: bf16 on a GPU that has it natively, fp32 everywhere else.

Only the training steps are autocast; evaluation and prediction run in float32 unless asked
(box coordinates in bfloat16 would be rounded to 2 pixels at 512).

Example:
    >>> choose_precision("auto", "cuda", (9, 0)), choose_precision("auto", "cpu")
    ('bf16', 'fp32')
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from annowidget.train.hyperparameters import PRECISIONS

#: Compute capability from which NVIDIA GPUs do bfloat16 natively (Ampere).
BF16_CAPABILITY = (8, 0)

_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def choose_precision(
    setting: str, device_type: str, capability: tuple[int, int] | None = None
) -> str:
    """The precision a run on ``device_type`` uses for ``setting`` (``fp32``, ``bf16`` or
    ``fp16``); ``capability`` is the CUDA GPU's compute capability. ``ValueError`` when the
    device cannot do what was asked.

    Example:
        >>> choose_precision("auto", "cuda", (7, 5)), choose_precision("fp16", "cuda", (7, 5))
        ('fp32', 'fp16')
        >>> choose_precision("fp16", "cpu")
        Traceback (most recent call last):
        ...
        ValueError: precision fp16 needs a CUDA GPU: use fp32 or bf16 on cpu
    """
    if setting not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {setting!r}")
    native_bf16 = device_type == "cuda" and (capability or (0, 0)) >= BF16_CAPABILITY
    if setting == "auto":
        return "bf16" if native_bf16 else "fp32"
    if setting == "fp16" and device_type != "cuda":
        raise ValueError(f"precision fp16 needs a CUDA GPU: use fp32 or bf16 on {device_type}")
    if setting == "bf16" and device_type == "cuda" and not native_bf16:
        major, minor = capability or (0, 0)
        raise ValueError(
            f"precision bf16 needs a GPU of compute capability 8.0 (Ampere) or newer; this one "
            f"is {major}.{minor}: use fp16 or fp32"
        )
    if setting == "bf16" and device_type not in ("cuda", "cpu"):
        raise ValueError(f"precision bf16 is not supported on {device_type}: use fp32")
    return setting


class MixedPrecision:
    """Autocast and (for fp16) gradient scaling for the steps of one run.

    With ``fp32`` every method is the plain float32 step: ``loss.backward()``,
    ``optimizer.step()``, no autocast.

    Example:
        >>> amp = MixedPrecision("fp32", torch.device("cpu"))
        >>> with amp.autocast():
        ...     y = torch.ones(2) * 2
        >>> y.dtype, amp.scaler is None
        (torch.float32, True)
    """

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in _DTYPES:
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {name!r}")
        self.name = name
        self.device_type = device.type
        self.dtype = _DTYPES[name]
        # fp16's narrow range underflows small gradients: scale the loss, unscale before the
        # step, skip steps whose gradients overflowed (torchvision's --amp does the same).
        self.scaler: Any = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def __repr__(self) -> str:
        return f"MixedPrecision({self.name!r}, {self.device_type!r})"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which the forward pass runs in the run's precision."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, on the scaled loss with fp16."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring fp16's scaled gradients back to their true size (before clipping them)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; with fp16 skipped when the gradients overflowed."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()


def resolve_precision(setting: str, device: torch.device) -> MixedPrecision:
    """The :class:`MixedPrecision` of a run on ``device`` (``auto`` looks at the GPU).

    Example:
        >>> resolve_precision("auto", torch.device("cpu")).name
        'fp32'
    """
    return MixedPrecision(choose_precision(setting, device.type, _capability(device)), device)


def autocast_for(
    setting: str, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of autocast contexts for inference in ``setting`` (no scaler needed).

    Example:
        >>> with autocast_for("fp32", torch.device("cpu"))():
        ...     pass
    """
    name = choose_precision(setting, device.type, _capability(device))
    dtype = _DTYPES[name]
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def _capability(device: torch.device) -> tuple[int, int] | None:
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return major, minor


__all__ = [
    "PRECISIONS",
    "MixedPrecision",
    "autocast_for",
    "choose_precision",
    "resolve_precision",
]
