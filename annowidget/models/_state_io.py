"""Reading and writing weights without pickle: safetensors, or ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from annowidget._io import atomic_write_bytes
from annowidget.models.card import CheckpointError

__all__ = ["CheckpointError", "load_state_dict", "save_state_dict"]

_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def _plain_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage (tied weights, views); give each its own.
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"state dict entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        tensor = value.detach().to("cpu")
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        shares = ptr in seen or storage.nbytes() != tensor.numel() * tensor.element_size()
        if tensor.numel() and shares:
            tensor = tensor.clone()
        elif not tensor.is_contiguous():
            tensor = tensor.contiguous()
        if tensor.numel():
            seen.add(tensor.untyped_storage().data_ptr())
        out[str(key)] = tensor
    return out


def save_state_dict(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``state_dict`` to ``path`` as safetensors, atomically (temp file + rename).

    Example:
        >>> import tempfile, pathlib, torch
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "weights.safetensors"
        >>> save_state_dict(p, {"w": torch.ones(2)}).name
        'weights.safetensors'
    """
    data = _st_save(_plain_tensors(state_dict), metadata=dict(metadata) if metadata else None)
    return atomic_write_bytes(path, data)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or (pickle-free) ``.pt``/``.pth``, onto the CPU.

    Files holding arbitrary pickled objects are refused with :class:`CheckpointError`; nothing
    in them is executed (``torch.load(..., weights_only=True)``).

    Example:
        >>> import tempfile, pathlib, torch
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> _ = save_state_dict(p, {"w": torch.ones(2)})
        >>> load_state_dict(p)["w"].tolist()
        [1.0, 1.0]
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"weights file not found: {file}")
    suffix = file.suffix.lower()
    if suffix == ".safetensors":
        try:
            return _st_load(file.read_bytes())
        except Exception as exc:  # safetensors raises its own SafetensorError on bad headers
            raise CheckpointError(f"{file} is not a valid safetensors file: {exc}") from exc
    if suffix not in _TORCH_SUFFIXES:
        raise CheckpointError(
            f"{file}: unknown weights format {suffix!r} (expected .safetensors, .pt or .pth)"
        )
    try:
        value = torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as exc:
        raise CheckpointError(
            f"refused to load {file}: it is not a plain tensor state dict "
            f"(loading it would unpickle arbitrary objects). Details: {exc}"
        ) from exc
    if not isinstance(value, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in value.values()
    ):
        raise CheckpointError(f"{file} does not hold a state dict (a mapping of names to tensors)")
    return {str(k): v for k, v in value.items()}
