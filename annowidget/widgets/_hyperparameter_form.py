"""The TrainingPanel's hyperparameter inputs, generated from the ``Hyperparameters`` fields.

Labels, help text, defaults and which fields are "advanced" are declared once, on the
dataclass (:func:`annowidget.train.hyperparameters.hyperparameter_fields`); validation is the
dataclass's own. This module only picks the widget for each field's input kind.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from annowidget.train.hyperparameters import (
    HyperparameterField,
    Hyperparameters,
    hyperparameter_fields,
    scaled_learning_rate,
)

# Names of the fields shown up front and of those folded under "advanced", in form order.
MAIN_FIELDS: tuple[str, ...] = tuple(f.name for f in hyperparameter_fields() if not f.advanced)
ADVANCED_FIELDS: tuple[str, ...] = tuple(f.name for f in hyperparameter_fields() if f.advanced)
_STYLE = {"description_width": "130px"}
_LAYOUT = widgets.Layout(width="250px")


def _widget_for(spec: HyperparameterField, value: Any) -> widgets.ValueWidget:
    kind = spec.input
    if kind == "dropdown":
        options = list(spec.choices)
        if value not in options:  # a valid value outside the list, such as cuda:1
            options.append(value)
        return widgets.Dropdown(
            options=options, value=value, description=spec.label, style=_STYLE, layout=_LAYOUT
        )
    if kind == "checkbox":
        return widgets.Checkbox(value=bool(value), description=spec.label, indent=False)
    if kind == "int":
        return widgets.IntText(value=value, description=spec.label, style=_STYLE, layout=_LAYOUT)
    if kind == "float":
        return widgets.FloatText(value=value, description=spec.label, style=_STYLE, layout=_LAYOUT)
    # Optional numbers and free text: empty means "let the engine choose".
    return widgets.Text(
        value="" if value is None else spec.format(value),
        placeholder=spec.placeholder,
        description=spec.label,
        style=_STYLE,
        layout=_LAYOUT,
    )


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
        self.fields = {spec.name: spec for spec in hyperparameter_fields()}
        self.inputs: dict[str, widgets.ValueWidget] = {}
        self.help: dict[str, str] = {}
        main, advanced = [], []
        for spec in self.fields.values():
            widget = _widget_for(spec, getattr(start, spec.name))
            widget.tooltip = spec.help
            self.inputs[spec.name] = widget
            self.help[spec.name] = spec.help
            row = widgets.HBox(
                [widget, widgets.HTML(f"<small style='color:#666'>{spec.help}</small>")],
                layout=widgets.Layout(align_items="center"),
            )
            (advanced if spec.advanced else main).append(row)
        # the default rate follows the batch size (linear scaling) until someone types one
        self.inputs["batch_size"].observe(self._rescale_learning_rate, names="value")
        self.advanced = widgets.Accordion([widgets.VBox(advanced)], selected_index=None)
        self.advanced.set_title(0, "advanced")
        self.box = widgets.VBox([*main, self.advanced])

    def _rescale_learning_rate(self, change: dict[str, Any]) -> None:
        rate = self.inputs["learning_rate"]
        old, new = change["old"], change["new"]
        if not (isinstance(old, int) and isinstance(new, int) and old > 0 and new > 0):
            return  # a half-typed batch size: leave the rate alone
        if abs(float(rate.value) - scaled_learning_rate(old)) < 1e-12:  # not typed over
            rate.value = scaled_learning_rate(new)

    def _is_text(self, name: str) -> bool:
        return isinstance(self.inputs[name], widgets.Text)

    def values(self) -> dict[str, Any]:
        """The raw values typed in; optional numbers left empty are ``None``.

        ``ValueError`` names the field when an optional number is not a number.
        """
        values: dict[str, Any] = {}
        for name, widget in self.inputs.items():
            value = widget.value
            if self._is_text(name):
                value = self.fields[name].parse(value)
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
            if self._is_text(name):
                widget.value = "" if value is None else self.fields[name].format(value)
            elif isinstance(widget, widgets.Dropdown) and value not in widget.options:
                widget.options = [*widget.options, value]
                widget.value = value
            else:
                widget.value = value

    def set_disabled(self, disabled: bool) -> None:
        for widget in self.inputs.values():
            widget.disabled = disabled
