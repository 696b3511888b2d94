"""The model comparison report: two models, the same test folder, COCO AP side by side.

Both models are scored on the reviewed annotations of the same folder by the package's one
evaluator (:func:`annowidget.train.scoring.evaluate_model`, pycocotools' ``COCOeval`` on
boxes), each at the input size it was trained for (a COCO-pretrained base at
its catalog size), so a trained model's numbers here equal those its training run wrote
into its model card for the same folder.

A model's classes are matched to the project's by name, case-insensitively, as smart
prediction matches them (a COCO-pretrained base's ``"dog"`` scores the project's ``"Dog"``);
detections of classes the project lacks are dropped. A project class a model does not know
scores 0 AP for that model where the folder holds boxes of it.

Differences are ``b - a``: in points (AP x 100) and relative to ``a`` in percent (``None``
when ``a`` is 0 or either side was not measured).

Example:
    >>> # report = compare_models(project, "fasterrcnn_mobilenet_v3_large_320_fpn",
    >>> #                         "raccoons-v2", folder="test")
    >>> # print(report.table()); report.figure().show()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from annowidget.models.card import ModelCard
from annowidget.models.registry import ModelRegistry
from annowidget.store import Project
from annowidget.train import engine
from annowidget.train.scoring import evaluate_model

__all__ = ["OVERALL_METRICS", "ClassComparison", "Comparison", "Delta", "compare_models"]

#: The overall numbers compared (COCOeval's AP@[.5:.95], AP@.5, AP@.75).
OVERALL_METRICS = ("AP", "AP50", "AP75")
_BOX_TASKS = frozenset({"detection", "instance_segmentation", "keypoints"})


@dataclass(frozen=True)
class Delta:
    """One metric for both models: values in [0, 1] (``None``: not measured) and ``b - a``.

    Example:
        >>> d = Delta(0.50, 0.63)
        >>> round(d.points, 1), round(d.relative_percent, 1)
        (13.0, 26.0)
    """

    a: float | None
    b: float | None

    @property
    def points(self) -> float | None:
        """``b - a`` in AP points (x 100)."""
        if self.a is None or self.b is None:
            return None
        return (self.b - self.a) * 100.0

    @property
    def relative_percent(self) -> float | None:
        """``(b - a) / a`` in percent; ``None`` when ``a`` is 0 or a side is missing."""
        if self.a is None or self.b is None or self.a == 0:
            return None
        return (self.b - self.a) / self.a * 100.0

    def to_dict(self) -> dict[str, float | None]:
        return {
            "a": self.a,
            "b": self.b,
            "delta_points": _round(self.points),
            "delta_relative_percent": _round(self.relative_percent),
        }


@dataclass(frozen=True)
class ClassComparison:
    """AP and AP50 of one project class for both models, and whether each model knows it."""

    name: str
    ap: Delta
    ap50: Delta
    known_by_a: bool = True
    known_by_b: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "AP": self.ap.to_dict(),
            "AP50": self.ap50.to_dict(),
            "known_by_a": self.known_by_a,
            "known_by_b": self.known_by_b,
        }


@dataclass(frozen=True)
class Comparison:
    """Two models scored on the same folder: overall AP/AP50/AP75 and per-class AP/AP50.

    ``metrics_a`` / ``metrics_b`` keep COCOeval's full output for each model.

    Example:
        >>> c = Comparison.from_metrics("base", "tuned", "test",
        ...     {"AP": 0.2, "AP50": 0.5, "AP75": 0.1, "images": 4,
        ...      "per_class": {"cat": 0.2}, "per_class_AP50": {"cat": 0.5}},
        ...     {"AP": 0.3, "AP50": 0.6, "AP75": 0.2, "images": 4,
        ...      "per_class": {"cat": 0.3}, "per_class_AP50": {"cat": 0.6}})
        >>> round(c.overall["AP50"].points, 1)
        10.0
    """

    model_a: str
    model_b: str
    folder: str
    images: int
    boxes: int
    overall: dict[str, Delta]
    per_class: list[ClassComparison]
    metrics_a: dict[str, Any] = field(default_factory=dict, repr=False)
    metrics_b: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_metrics(
        cls,
        model_a: str,
        model_b: str,
        folder: str,
        metrics_a: dict[str, Any],
        metrics_b: dict[str, Any],
        *,
        boxes: int = 0,
        known_a: Sequence[str] | None = None,
        known_b: Sequence[str] | None = None,
    ) -> Comparison:
        """Build the report from two COCO metrics dicts (``engine.evaluate``'s output).

        Classes measured for neither model (no box of them in the folder) are left out.
        ``known_a`` / ``known_b``: the project classes each model can detect (all if None).
        """
        overall = {m: Delta(metrics_a.get(m), metrics_b.get(m)) for m in OVERALL_METRICS}
        names = list(
            dict.fromkeys([*metrics_a.get("per_class", {}), *metrics_b.get("per_class", {})])
        )
        rows = []
        for name in names:
            ap = Delta(
                _per_class(metrics_a, "per_class", name), _per_class(metrics_b, "per_class", name)
            )
            ap50 = Delta(
                _per_class(metrics_a, "per_class_AP50", name),
                _per_class(metrics_b, "per_class_AP50", name),
            )
            if ap.a is None and ap.b is None:
                continue
            rows.append(
                ClassComparison(
                    name,
                    ap,
                    ap50,
                    known_by_a=known_a is None or name in known_a,
                    known_by_b=known_b is None or name in known_b,
                )
            )
        return cls(
            model_a=model_a,
            model_b=model_b,
            folder=folder,
            images=int(metrics_a.get("images") or metrics_b.get("images") or 0),
            boxes=boxes,
            overall=overall,
            per_class=rows,
            metrics_a=metrics_a,
            metrics_b=metrics_b,
        )

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (AP as fractions, deltas in points and percent).

        Example:
            >>> # json.dumps(report.to_dict())
        """
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "folder": self.folder,
            "images": self.images,
            "boxes": self.boxes,
            "overall": {name: delta.to_dict() for name, delta in self.overall.items()},
            "per_class": {row.name: row.to_dict() for row in self.per_class},
        }

    def table(self) -> str:
        """A plain-text table: AP values in points, then ``b - a`` in points and percent.

        Example:
            >>> # print(report.table())
        """
        label_width = max([len("AP75"), *(len(r.name) + 6 for r in self.per_class)]) + 2
        header = (
            f"{'':<{label_width}}{'A':>8}{'B':>8}{'B-A':>9}{'B-A %':>10}\n"
            f"{'':<{label_width}}{'(pts)':>8}{'(pts)':>8}{'(pts)':>9}{'':>10}"
        )
        lines = [
            f"Model comparison on folder {self.folder!r}: "
            f"{self.images} images, {self.boxes} boxes (COCOeval, boxes)",
            f"  A = {self.model_a}",
            f"  B = {self.model_b}",
            "",
            header,
        ]
        lines += [_row(name, delta, label_width) for name, delta in self.overall.items()]
        if self.per_class:
            lines.append("per class:")
        for row in self.per_class:
            sides = (("A", row.known_by_a), ("B", row.known_by_b))
            unknown = [side for side, known in sides if not known]
            note = f"  (unknown to {' and '.join(unknown)})" if unknown else ""
            lines.append(_row(f"{row.name} AP", row.ap, label_width) + note)
            lines.append(_row(f"{row.name} AP50", row.ap50, label_width))
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return self.table()

    def figure(self, metric: str = "AP") -> Any:
        """Grouped bars per class (and all classes), A vs B, with ``b - a`` written above.

        ``metric`` is ``"AP"`` or ``"AP50"``. Returns a ``plotly.graph_objects.Figure``.

        Example:
            >>> # report.figure("AP50").show()
        """
        import plotly.graph_objects as go

        if metric not in ("AP", "AP50"):
            raise ValueError(f"metric must be 'AP' or 'AP50', got {metric!r}")
        groups = [("all classes", self.overall[metric])]
        groups += [(r.name, r.ap if metric == "AP" else r.ap50) for r in self.per_class]
        names = [name for name, _ in groups]
        figure = go.Figure()
        for side, label in (("a", self.model_a), ("b", self.model_b)):
            values = [getattr(delta, side) for _, delta in groups]
            figure.add_bar(
                name=f"{side.upper()}: {label}",
                x=names,
                y=[None if v is None else v * 100 for v in values],
                text=["n/a" if v is None else f"{v * 100:.1f}" for v in values],
                textposition="outside",
            )
        tops = [max((d.a or 0.0), (d.b or 0.0)) * 100 for _, d in groups]
        for (name, delta), top in zip(groups, tops, strict=True):
            figure.add_annotation(
                x=name,
                y=top,
                yshift=28,
                text=_delta_text(delta),
                showarrow=False,
                font={"color": _delta_color(delta.points)},
            )
        figure.update_layout(
            barmode="group",
            title=f"{metric} on folder {self.folder!r}: {self.model_a} (A) vs {self.model_b} (B)",
            yaxis={"title": f"{metric} (points)", "range": [0, max([*tops, 1.0]) * 1.25 + 5]},
            legend={"orientation": "h", "y": -0.15},
            margin={"t": 60},
        )
        return figure


def _per_class(metrics: dict[str, Any], key: str, name: str) -> float | None:
    value = metrics.get(key, {}).get(name)
    return None if value is None else float(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}"


def _signed(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:+.1f}{suffix}"


def _row(label: str, delta: Delta, width: int) -> str:
    return (
        f"{label:<{width}}{_points(delta.a):>8}{_points(delta.b):>8}"
        f"{_signed(delta.points):>9}{_signed(delta.relative_percent, '%'):>10}"
    )


def _delta_text(delta: Delta) -> str:
    if delta.points is None:
        return "n/a"
    relative = delta.relative_percent
    tail = "" if relative is None else f" ({relative:+.0f}%)"
    return f"{delta.points:+.1f} pts{tail}"


def _delta_color(points: float | None) -> str:
    if points is None or abs(points) < 0.05:
        return "#555555"
    return "#2e7d32" if points > 0 else "#c62828"


# ---------------------------------------------------------------------- evaluation
def relabel(output: dict[str, torch.Tensor], mapping: dict[int, int]) -> dict[str, torch.Tensor]:
    """One detector output with labels mapped through ``mapping``; unmapped ones dropped.

    Example:
        >>> out = {"boxes": torch.zeros(2, 4), "scores": torch.tensor([0.9, 0.8]),
        ...        "labels": torch.tensor([18, 1])}
        >>> relabel(out, {18: 1})["labels"].tolist()
        [1]
    """
    labels = output["labels"].tolist()
    keep = [i for i, label in enumerate(labels) if int(label) in mapping]
    index = torch.tensor(keep, dtype=torch.long, device=output["labels"].device)
    result = {key: value.index_select(0, index) for key, value in output.items()}
    result["labels"] = torch.tensor(
        [mapping[int(labels[i])] for i in keep], dtype=torch.int64, device=index.device
    )
    return result


def _load(registry: ModelRegistry, name: str, device: str) -> tuple[nn.Module, ModelCard]:
    if not registry.exists(name):
        available = ", ".join(registry.names())
        raise ValueError(f"unknown model {name!r}: this project has {available}")
    model, card = registry.load(name, device=device)
    if card.task not in _BOX_TASKS:
        raise ValueError(
            f"model {name!r} is a {card.task} model: the comparison scores boxes "
            f"({', '.join(sorted(_BOX_TASKS))} models)"
        )
    return model, card


def _evaluate(
    project: Project,
    model: nn.Module,
    card: ModelCard,
    folders: list[str],
    device: str,
    batch_size: int,
) -> tuple[dict[str, Any], list[str]]:
    """COCO box metrics of one model on ``folders``, and the project classes it knows."""
    metrics = evaluate_model(
        project, (model, card), folders, device=device, batch_size=batch_size, task="detection"
    )
    return metrics, list(metrics.pop("known_classes"))


def compare_models(
    project: Project,
    model_a: str,
    model_b: str,
    *,
    folder: str | Sequence[str],
    device: str = "cpu",
    batch_size: int = 2,
) -> Comparison:
    """Score two models (registry names: trained or COCO-pretrained base) on the reviewed
    images of ``folder`` and put their COCO AP side by side.

    ``ValueError`` when a name is unknown, a model does not predict boxes, or the folder
    holds no reviewed image.

    Example:
        >>> # report = compare_models(project, "round-1", "round-2", folder="test")
        >>> # report.overall["AP50"].points  -> +13.0
    """
    folders = [folder] if isinstance(folder, str) else list(folder)
    label = ", ".join(folders)
    snapshot = project.snapshot(folders)
    if not snapshot.items:
        raise ValueError(
            f"folder {label!r} has no reviewed images to compare the models on "
            f"(folders: {', '.join(project.folders()) or 'none'})"
        )
    registry = ModelRegistry(project)
    device_name = str(engine.resolve_device(device))
    results = []
    for name in (model_a, model_b):
        model, card = _load(registry, name, device_name)
        results.append(_evaluate(project, model, card, folders, device_name, batch_size))
        del model  # one model in memory at a time
    (metrics_a, known_a), (metrics_b, known_b) = results
    return Comparison.from_metrics(
        model_a,
        model_b,
        label,
        metrics_a,
        metrics_b,
        boxes=snapshot.num_annotations,
        known_a=known_a,
        known_b=known_b,
    )
