"""Swap BatchNorm2d <-> FrozenBatchNorm2d so a randomly initialised model has exactly the
architecture (and state-dict keys) of its pretrained twin, or trains its norms from scratch."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d


def _swap(module: nn.Module, make: type[nn.Module], wanted: type[nn.Module]) -> int:
    swapped = 0
    for name, child in module.named_children():
        if isinstance(child, make) and not isinstance(child, wanted):
            setattr(module, name, _convert(child, wanted))
            swapped += 1
        else:
            swapped += _swap(child, make, wanted)
    return swapped


def _convert(norm: nn.Module, wanted: type[nn.Module]) -> nn.Module:
    features = norm.weight.shape[0]
    eps = float(norm.eps)
    new = (
        FrozenBatchNorm2d(features, eps=eps)
        if wanted is FrozenBatchNorm2d
        else nn.BatchNorm2d(features, eps=eps)
    )
    with torch.no_grad():
        for key in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, key).copy_(getattr(norm, key))
    return new


def freeze_batchnorm(module: nn.Module) -> int:
    """Replace every ``BatchNorm2d`` under ``module`` by a ``FrozenBatchNorm2d``; returns count.

    Example:
        >>> freeze_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
        1
    """
    return _swap(module, nn.BatchNorm2d, FrozenBatchNorm2d)


def unfreeze_batchnorm(module: nn.Module) -> int:
    """Replace every ``FrozenBatchNorm2d`` under ``module`` by a trainable ``BatchNorm2d``.

    Example:
        >>> unfreeze_batchnorm(nn.Sequential(FrozenBatchNorm2d(4)))
        1
    """
    return _swap(module, FrozenBatchNorm2d, nn.BatchNorm2d)
