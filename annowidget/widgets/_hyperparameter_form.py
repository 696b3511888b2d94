"""Hyperparameter inputs built from the engine's ``Hyperparameters`` dataclass.

Defaults and validation come from the dataclass itself (one source of truth); this module
only adds labels, short help text and the widget for each field's type.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ipywidgets as widgets

from annowidget.train.hyperparameters import DEVICES, Hyperparameters

# field -> (label, short help). The first block is the seed's form; the rest is "advanced".
MAIN_FIELDS: dict[str, tuple[str, str]] = {
    "batch_size": ("batch size", "Images per training step. Lower it if memory runs out."),
    "epochs": ("epochs", "Passes over the training images."),
    "learning_rate": (
        "learning rate",
        "SGD step size. 0.02 suits batch size 4 on a pre-trained model.",
    ),
    "gamma": ("gamma", "The learning rate is multiplied by gamma every 'epochs for gamma'."),
    "gamma_epochs": ("epochs for gamma", "Epochs between two learning-rate drops."),
    "rois_per_image": (
        "RoIs per image",
        "Region proposals sampled per image to train the box head (R-CNN models).",
    ),
    "eval_period": (
        "evaluation period",
        "Every N epochs: write a checkpoint and measure mAP on the test folders.",
    ),
    "split_ratio": (
        "train/test split",
        "Only when no test folder is picked: the share of training images trained on.",
    ),
    "device": ("device", "auto: the GPU when there is one, else the CPU."),
}
ADVANCED_FIELDS: dict[str, tuple[str, str]] = {
    "seed": ("seed", "Same seed, same split and augmentation: runs can be compared."),
    "image_size": ("image size", "Shorter image side the model sees. Empty: the model's own."),
    "augment": ("augment", "Random flips and colour jitter on training images."),
    "momentum": ("momentum", "SGD momentum."),
    "weight_decay": ("weight decay", "L2 penalty on the weights."),
    "warmup_iters": (
        "warm-up steps",
        "Learning-rate warm-up. Empty: over the first epoch; 0: none.",
    ),
    "num_threads": ("CPU threads", "Threads for training; the default leaves one core free."),
}
_STYLE = {"description_width": "130px"}
_LAYOUT = widgets.Layout(width="250px")


def _widget_for(field: dataclasses.Field[Any], value: Any, label: str) -> widgets.ValueWidget:
    annotation = str(field.type)
    if field.name == "device":
        options = list(DEVICES)
        if value not in options:
            options.append(value)
        return widgets.Dropdown(
            options=options, value=value, description=label, style=_STYLE, layout=_LAYOUT
        )
    if "None" in annotation:  # optional number: empty text means "let the engine choose"
        return widgets.Text(
            value="" if value is None else str(value),
            placeholder="auto",
            description=label,
            style=_STYLE,
            layout=_LAYOUT,
        )
    if annotation == "bool":
        return widgets.Checkbox(value=bool(value), description=label, indent=False)
    if annotation == "int":
        return widgets.IntText(value=int(value), description=label, style=_STYLE, layout=_LAYOUT)
    if annotation == "float":
        return widgets.FloatText(
            value=float(value), description=label, style=_STYLE, layout=_LAYOUT
        )
    return widgets.Text(value=str(value), description=label, style=_STYLE, layout=_LAYOUT)


class HyperparameterForm:
    """One input per ``Hyperparameters`` field, seeded with its defaults (or ``initial``).

    Example:
        >>> form = HyperparameterForm({"epochs": 2})
        >>> form.inputs["epochs"].value, form.read().batch_size
        (2, 4)
    """

    def __init__(self, initial: Hyperparameters | dict[str, Any] | None = None) -> None:
        if isinstance(initial, Hyperparameters):
            start = initial
        else:
            start = Hyperparameters.from_dict(dict(initial or {}))
        self.inputs: dict[str, widgets.ValueWidget] = {}
        self.help: dict[str, str] = {}
        self._optional = {
            f.name for f in dataclasses.fields(Hyperparameters) if "None" in str(f.type)
        }
        main, advanced = [], []
        for field in dataclasses.fields(Hyperparameters):
            label, text = MAIN_FIELDS.get(field.name) or ADVANCED_FIELDS.get(
                field.name, (field.name.replace("_", " "), "")
            )
            widget = _widget_for(field, getattr(start, field.name), label)
            widget.tooltip = text
            self.inputs[field.name] = widget
            self.help[field.name] = text
            row = widgets.HBox(
                [widget, widgets.HTML(f"<small style='color:#666'>{text}</small>")],
                layout=widgets.Layout(align_items="center"),
            )
            (main if field.name in MAIN_FIELDS else advanced).append(row)
        self.advanced = widgets.Accordion([widgets.VBox(advanced)], selected_index=None)
        self.advanced.set_title(0, "advanced")
        self.box = widgets.VBox([*main, self.advanced])

    def values(self) -> dict[str, Any]:
        """The raw values typed in; optional numbers left empty are ``None``.

        ``ValueError`` names the field when an optional number is not a whole number.
        """
        values: dict[str, Any] = {}
        for name, widget in self.inputs.items():
            value = widget.value
            if name in self._optional:
                text = value.strip()
                if text == "":
                    value = None
                else:
                    try:
                        value = int(text)
                    except ValueError:
                        raise ValueError(
                            f"{name} must be a whole number or empty, got {text!r}"
                        ) from None
            values[name] = value
        return values

    def read(self) -> Hyperparameters:
        """The form as validated ``Hyperparameters`` (``ValueError`` names the bad field)."""
        return Hyperparameters(**self.values())

    def set(self, hyperparameters: Hyperparameters | dict[str, Any]) -> None:
        """Fill the form from ``hyperparameters`` (fields not given keep their value)."""
        data = (
            hyperparameters.to_dict()
            if isinstance(hyperparameters, Hyperparameters)
            else dict(hyperparameters)
        )
        unknown = sorted(set(data) - set(self.inputs))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {', '.join(unknown)}")
        for name, value in data.items():
            widget = self.inputs[name]
            if name in self._optional:
                widget.value = "" if value is None else str(value)
            else:
                widget.value = value

    def set_disabled(self, disabled: bool) -> None:
        for widget in self.inputs.values():
            widget.disabled = disabled
