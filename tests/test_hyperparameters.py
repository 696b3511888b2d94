"""Hyperparameters: the seed's defaults, validation naming the field, JSON round-trip."""

from __future__ import annotations

import json
import math
import os

import pytest

from annowidget.train.hyperparameters import Hyperparameters, default_num_threads


def test_defaults_are_the_documented_ones() -> None:
    hp = Hyperparameters()
    # the seed's 0.02 is the rate for batch 16: the default scales linearly (issue 11 item 2)
    assert (hp.batch_size, hp.epochs, hp.learning_rate) == (4, 12, 0.005)
    assert Hyperparameters(batch_size=16).learning_rate == 0.02
    assert hp.grad_clip_norm == 10.0
    assert (hp.gamma, hp.gamma_epochs, hp.rois_per_image) == (0.5, 5, 512)
    assert (hp.eval_period, hp.split_ratio, hp.device) == (12, 0.8, "auto")
    assert (hp.seed, hp.image_size, hp.augment) == (0, None, True)
    assert (hp.momentum, hp.weight_decay, hp.warmup_iters) == (0.9, 1e-4, None)
    assert hp.num_threads == max(1, (os.cpu_count() or 1) - 1) == default_num_threads()


def test_the_default_learning_rate_follows_the_batch_size_unless_one_was_given() -> None:
    assert Hyperparameters(batch_size=2).learning_rate == 0.0025
    assert Hyperparameters().replace(batch_size=8).learning_rate == 0.01
    typed = Hyperparameters(learning_rate=0.03)
    assert typed.replace(batch_size=8).learning_rate == 0.03
    assert Hyperparameters.from_dict(Hyperparameters().to_dict()).learning_rate == 0.005
    with pytest.raises(ValueError, match="grad_clip_norm must be >= 0"):
        Hyperparameters(grad_clip_norm=-1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 0, "batch_size must be a positive integer, got 0"),
        ("batch_size", -2, "batch_size must be a positive integer, got -2"),
        ("batch_size", 2.5, "batch_size must be a positive integer, got 2.5"),
        ("batch_size", True, "batch_size must be a positive integer, got True"),
        ("epochs", 0, "epochs must be a positive integer"),
        ("gamma_epochs", -1, "gamma_epochs must be a positive integer"),
        ("rois_per_image", 0, "rois_per_image must be a positive integer"),
        ("eval_period", 0, "eval_period must be a positive integer"),
        ("image_size", 0, "image_size must be a positive integer"),
        ("num_threads", 0, "num_threads must be a positive integer"),
        ("seed", -1, "seed must be a non-negative integer"),
        ("warmup_iters", -5, "warmup_iters must be a non-negative integer"),
        ("learning_rate", math.nan, "learning_rate must be a finite number, got nan"),
        ("learning_rate", math.inf, "learning_rate must be a finite number, got inf"),
        ("learning_rate", -0.1, "learning_rate must be a positive number, got -0.1"),
        ("learning_rate", 0, "learning_rate must be a positive number, got 0.0"),
        ("learning_rate", "0.1", "learning_rate must be a finite number, got '0.1'"),
        ("gamma", 0.0, "gamma must be a positive number"),
        ("gamma", math.nan, "gamma must be a finite number"),
        ("momentum", 1.0, "momentum must be below 1"),
        ("momentum", -0.1, "momentum must be >= 0"),
        ("weight_decay", -1e-4, "weight_decay must be >= 0"),
        ("split_ratio", 0.0, "split_ratio must be between 0 and 1"),
        ("split_ratio", 1.0, "split_ratio must be between 0 and 1"),
        ("split_ratio", math.nan, "split_ratio must be a finite number"),
        ("device", "tpu", "device must be one of auto, cpu, cuda, mps (or cuda:N), got 'tpu'"),
        ("device", "cuda:x", "device must be one of"),
        ("augment", "yes", "augment must be True or False"),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        Hyperparameters(**{field: value})


def test_valid_edge_values_are_accepted() -> None:
    hp = Hyperparameters(
        batch_size=1,
        epochs=1,
        gamma=3.0,
        momentum=0.0,
        weight_decay=0.0,
        warmup_iters=0,
        image_size=32,
        device="cuda:1",
        learning_rate=1,
    )
    assert hp.learning_rate == 1.0
    assert isinstance(hp.learning_rate, float)
    assert hp.device == "cuda:1"


def test_round_trips_through_json() -> None:
    hp = Hyperparameters(epochs=3, batch_size=2, image_size=96, device="cpu", augment=False)
    again = Hyperparameters.from_dict(json.loads(json.dumps(hp.to_dict())))
    assert again == hp
    assert again.to_dict()["image_size"] == 96


def test_from_dict_refuses_unknown_and_invalid_fields() -> None:
    with pytest.raises(ValueError, match="unknown hyperparameter\\(s\\): lr"):
        Hyperparameters.from_dict({"lr": 0.1})
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        Hyperparameters.from_dict({"epochs": -3})
    with pytest.raises(ValueError, match="must be a dict"):
        Hyperparameters.from_dict([("epochs", 1)])  # type: ignore[arg-type]


def test_replace_validates_again() -> None:
    hp = Hyperparameters()
    assert hp.replace(epochs=2).epochs == 2
    assert hp.epochs == 12
    with pytest.raises(ValueError, match="gamma_epochs"):
        hp.replace(gamma_epochs=0)


# --- declared once: every field has its label, help, CLI flag and form input --------------
def _every_field_changed() -> Hyperparameters:
    """A value for every field that differs from its default (so a dropped one shows)."""
    return Hyperparameters(
        batch_size=3, epochs=7, learning_rate=0.0123, gamma=0.25, gamma_epochs=2,
        rois_per_image=64, eval_period=3, split_ratio=0.7, device="cuda:1", seed=5,
        image_size=96, augment=False, momentum=0.8, weight_decay=0.001, warmup_iters=17,
        num_threads=default_num_threads() + 1, workers=2, precision="bf16", grad_clip_norm=5.0,
    )  # fmt: skip


def test_every_field_is_declared_with_a_label_help_flag_and_input() -> None:
    import dataclasses

    from annowidget.train.hyperparameters import hyperparameter_fields
    from annowidget.widgets._hyperparameter_form import HyperparameterForm

    specs = hyperparameter_fields()
    assert [s.name for s in specs] == [f.name for f in dataclasses.fields(Hyperparameters)]
    assert len({s.flag for s in specs}) == len(specs)
    for spec in specs:
        assert spec.label, spec.name
        assert spec.help, spec.name
        assert spec.flag.startswith("--"), spec.name
    changed = _every_field_changed()
    assert all(getattr(changed, s.name) != getattr(Hyperparameters(), s.name) for s in specs), (
        "the round-trip value must differ from the default for every field"
    )
    form = HyperparameterForm()
    assert set(form.inputs) == {s.name for s in specs}
    for spec in specs:
        assert form.inputs[spec.name].description == spec.label
        assert form.help[spec.name] == spec.help


def test_the_cli_flags_and_the_form_round_trip_to_the_same_hyperparameters() -> None:
    from annowidget.cli import build_parser
    from annowidget.cli.models import hyperparameters_from_args
    from annowidget.train.hyperparameters import hyperparameter_fields
    from annowidget.widgets._hyperparameter_form import HyperparameterForm

    hp = _every_field_changed()
    argv = ["train", "p", "--name", "m"]
    for spec in hyperparameter_fields():
        value = getattr(hp, spec.name)
        if spec.kind == "bool":
            argv.append(spec.flag if value else "--no-" + spec.flag[2:])
        else:
            argv += [spec.flag, spec.format(value)]
    from_cli = hyperparameters_from_args(build_parser().parse_args(argv))
    assert from_cli == hp

    form = HyperparameterForm()
    form.set(hp)
    assert form.read() == hp == from_cli
    assert HyperparameterForm(hp).read() == hp


def test_the_cli_sets_what_only_the_form_could_set_before() -> None:
    from annowidget.cli import build_parser
    from annowidget.cli.models import hyperparameters_from_args

    argv = ["train", "p", "--name", "m", "--momentum", "0.5", "--weight-decay", "0"]
    argv += ["--warmup-steps", "0", "--image-size", "auto", "--no-augment"]
    hp = hyperparameters_from_args(build_parser().parse_args(argv))
    assert (hp.momentum, hp.weight_decay, hp.warmup_iters) == (0.5, 0.0, 0)
    assert (hp.image_size, hp.augment) == (None, False)
    # flags not given keep the dataclass defaults
    assert hp.replace(momentum=0.9, weight_decay=1e-4, warmup_iters=None, augment=True) == (
        Hyperparameters()
    )


def test_train_help_lists_every_field() -> None:
    import subprocess
    import sys

    from annowidget.train.hyperparameters import hyperparameter_fields

    result = subprocess.run(
        [sys.executable, "-m", "annowidget.cli", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for spec in hyperparameter_fields():
        assert spec.flag in result.stdout, spec.name
    assert "--no-augment" in result.stdout
    assert "0.02 for batch 16, scaled linearly (0.005 at batch 4)" in " ".join(
        result.stdout.split()
    )


def test_learning_rate_help_states_the_linear_scaling_rule() -> None:
    from annowidget.train.hyperparameters import hyperparameter_fields

    (spec,) = [s for s in hyperparameter_fields() if s.name == "learning_rate"]
    assert "0.02 for batch 16, scaled linearly (0.005 at batch 4)" in spec.help
    assert "suits batch size 4" not in spec.help


def test_a_field_without_a_declaration_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from annowidget.train import hyperparameters as module

    @dataclasses.dataclass
    class Undeclared(Hyperparameters):
        extra: int = 1

    monkeypatch.setattr(module, "Hyperparameters", Undeclared)
    with pytest.raises(TypeError, match=r"Hyperparameters\.extra is not declared"):
        module.hyperparameter_fields()
