"""Warm start: a new model begins from a trained model's weights, categories matched by name.

Every layer that does not depend on the categories is copied as it is. In the layers that
do (the class scores, the per-class box deltas and mask logits, the keypoint heatmaps), the
rows of a category known to the parent keep the parent's values, a new category keeps the
fresh rows of the new model, and a category the parent knew but the new run does not have
is dropped. Label 0 (background) always maps to label 0.

Example:
    >>> # model = zoo.build_model(card.base_model, 3, **registry.build_kwargs(card))
    >>> # report = transfer_weights(model, load_state_dict(path), card.categories,
    >>> #                           ["raccoon", "dog"])
    >>> # report.kept, report.new, report.dropped -> (['raccoon'], ['dog'], [])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.ssd import SSD
from torchvision.models.segmentation.deeplabv3 import DeepLabV3
from torchvision.models.segmentation.lraspp import LRASPP

__all__ = ["WarmStart", "class_layers", "keypoint_layers", "transfer_weights"]


@dataclass(frozen=True)
class _Layout:
    """Where the class axis of one tensor is: ``dim`` has ``outer * classes * inner`` entries
    (``outer``: anchors of a dense head; ``inner``: 4 box deltas per class)."""

    dim: int
    inner: int = 1
    small_init: float | None = None  # std of a fresh row (softmax heads); None: keep as built


@dataclass
class WarmStart:
    """What :func:`transfer_weights` did, in words for the card and the panel."""

    kept: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    keypoints_new: list[str] = field(default_factory=list)
    keypoints_dropped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: which categories (and keypoints) were kept, added and dropped.

        Example:
            >>> WarmStart(kept=["cat"], new=["dog"]).describe()
            'kept 1 category (cat); new: dog'
        """
        plural = "y" if len(self.kept) == 1 else "ies"
        parts = [f"kept {len(self.kept)} categor{plural} ({', '.join(self.kept) or 'none'})"]
        if self.new:
            parts.append(f"new: {', '.join(self.new)}")
        if self.dropped:
            parts.append(f"dropped: {', '.join(self.dropped)}")
        if self.keypoints_new:
            parts.append(f"new keypoints: {', '.join(self.keypoints_new)}")
        if self.keypoints_dropped:
            parts.append(f"dropped keypoints: {', '.join(self.keypoints_dropped)}")
        return "; ".join(parts)


def _names_of(model: nn.Module) -> dict[int, str]:
    return {id(module): name for name, module in model.named_modules()}


def _entries(
    model: nn.Module, modules: list[tuple[nn.Module | None, _Layout, _Layout]]
) -> dict[str, _Layout]:
    names = _names_of(model)
    out: dict[str, _Layout] = {}
    for module, weight, bias in modules:
        if module is None:
            continue
        prefix = names[id(module)]
        out[f"{prefix}.weight"] = weight
        if getattr(module, "bias", None) is not None:
            out[f"{prefix}.bias"] = bias
    return out


def class_layers(model: nn.Module) -> dict[str, _Layout]:
    """State-dict keys whose size follows the number of classes, with their class axis.

    Example:
        >>> from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn as b
        >>> sorted(class_layers(b(weights=None, weights_backbone=None)))[0]
        'roi_heads.box_predictor.bbox_pred.bias'
    """
    rows = _Layout(0)
    if isinstance(model, GeneralizedRCNN):
        heads = model.roi_heads
        scores = _Layout(0, small_init=0.01)
        deltas = _Layout(0, inner=4, small_init=0.001)
        mask = getattr(heads, "mask_predictor", None)
        return _entries(
            model,
            [
                (heads.box_predictor.cls_score, scores, scores),
                (heads.box_predictor.bbox_pred, deltas, deltas),
                (None if mask is None else mask.mask_fcn_logits, rows, rows),
            ],
        )
    if isinstance(model, RetinaNet | FCOS):
        return _entries(model, [(model.head.classification_head.cls_logits, rows, rows)])
    if isinstance(model, SSD):
        blocks = model.head.classification_head.module_list
        return _entries(model, [(block[-1], rows, rows) for block in blocks])
    if isinstance(model, DeepLabV3):
        aux = model.aux_classifier
        return _entries(
            model, [(model.classifier[-1], rows, rows), (aux[-1] if aux else None, rows, rows)]
        )
    if isinstance(model, LRASPP):
        head = model.classifier
        return _entries(
            model, [(head.low_classifier, rows, rows), (head.high_classifier, rows, rows)]
        )
    raise TypeError(f"do not know the class layers of a {type(model).__name__}")


def keypoint_layers(model: nn.Module) -> dict[str, _Layout]:
    """State-dict keys whose size follows the number of keypoints (Keypoint R-CNN only).

    Example:
        >>> keypoint_layers(nn.Linear(2, 2))
        {}
    """
    heads = getattr(model, "roi_heads", None)
    predictor = getattr(heads, "keypoint_predictor", None)
    if predictor is None:
        return {}
    # a transposed convolution: weight is (in, out, k, k), the keypoints are its outputs
    return _entries(model, [(predictor.kps_score_lowres, _Layout(1), _Layout(0))])


def _index_map(parent: Sequence[str], child: Sequence[str], offset: int) -> list[tuple[int, int]]:
    where = {name: i for i, name in enumerate(parent)}
    return [(j + offset, where[name] + offset) for j, name in enumerate(child) if name in where]


def _without(shape: torch.Size, dim: int) -> tuple[int, ...]:
    return tuple(shape[:dim]) + tuple(shape[dim + 1 :])


def _copy_rows(
    key: str,
    target: torch.Tensor,
    source: torch.Tensor,
    layout: _Layout,
    sizes: tuple[int, int],
    pairs: list[tuple[int, int]],
) -> torch.Tensor:
    child_n, parent_n = sizes
    dim, inner = layout.dim, layout.inner
    outer = target.shape[dim] // (child_n * inner)
    fits = (
        outer * child_n * inner == target.shape[dim]
        and outer * parent_n * inner == source.shape[dim]
        and _without(target.shape, dim) == _without(source.shape, dim)
    )
    if not fits:
        raise ValueError(
            f"{key}: the parent's tensor {tuple(source.shape)} does not fit "
            f"{tuple(target.shape)} for {parent_n} -> {child_n} outputs"
        )
    out = target.detach().clone()
    if layout.small_init is not None:
        if key.endswith(".weight"):
            nn.init.normal_(out, std=layout.small_init)
        else:
            nn.init.zeros_(out)
    shaped = out.unflatten(dim, (outer, child_n, inner))
    parent = source.to(out.dtype).unflatten(dim, (outer, parent_n, inner))
    if pairs:
        to = torch.tensor([j for j, _ in pairs])
        frm = torch.tensor([i for _, i in pairs])
        shaped.index_copy_(dim + 1, to, parent.index_select(dim + 1, frm))
    return shaped.flatten(dim, dim + 2)


def transfer_weights(
    model: nn.Module,
    parent_state: Mapping[str, torch.Tensor],
    parent_categories: Sequence[str],
    categories: Sequence[str],
    *,
    parent_keypoints: Sequence[str] = (),
    keypoints: Sequence[str] = (),
) -> WarmStart:
    """Load ``parent_state`` into ``model`` (same architecture), matching categories by name.

    ``model`` must be built for ``len(categories) + 1`` classes (label 0: background); the
    parent's weights were trained for ``parent_categories``. Keypoints are matched the same
    way. Any other difference between the two architectures raises ``ValueError``.

    Example:
        >>> # report = transfer_weights(model, parent_state, ["cat"], ["cat", "dog"])
        >>> # report.describe() -> 'kept 1 category (cat); new: dog'
    """
    own = model.state_dict()
    special = class_layers(model)
    points = keypoint_layers(model)
    missing = sorted(set(own) - set(parent_state))
    unexpected = sorted(set(parent_state) - set(own))
    if missing or unexpected:
        detail = ", ".join((missing or unexpected)[:3])
        raise ValueError(
            f"the parent's weights do not fit this architecture ({len(missing)} missing, "
            f"{len(unexpected)} unexpected: {detail})"
        )
    class_pairs = [(0, 0), *_index_map(parent_categories, categories, 1)]
    class_sizes = (len(categories) + 1, len(parent_categories) + 1)
    point_pairs = _index_map(parent_keypoints, keypoints, 0)
    point_sizes = (len(keypoints), len(parent_keypoints))
    merged: dict[str, torch.Tensor] = {}
    for key, value in own.items():
        source = parent_state[key]
        if key in special:
            merged[key] = _copy_rows(key, value, source, special[key], class_sizes, class_pairs)
        elif key in points and parent_keypoints:
            merged[key] = _copy_rows(key, value, source, points[key], point_sizes, point_pairs)
        elif source.shape != value.shape:
            raise ValueError(
                f"the parent's weights do not fit this architecture: {key} is "
                f"{tuple(source.shape)}, expected {tuple(value.shape)}"
            )
        else:
            merged[key] = source
    model.load_state_dict(merged)
    known = set(parent_categories)
    wanted = set(categories)
    return WarmStart(
        kept=[c for c in categories if c in known],
        new=[c for c in categories if c not in known],
        dropped=[c for c in parent_categories if c not in wanted],
        keypoints_new=[k for k in keypoints if k not in set(parent_keypoints)],
        keypoints_dropped=[k for k in parent_keypoints if k not in set(keypoints)],
    )
