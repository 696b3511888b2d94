"""Hyperparameters: the seed's defaults, validation naming the field, JSON round-trip."""

from __future__ import annotations

import json
import math
import os

import pytest

from annowidget.train.hyperparameters import Hyperparameters, default_num_threads


def test_defaults_are_the_documented_ones() -> None:
    hp = Hyperparameters()
    assert (hp.batch_size, hp.epochs, hp.learning_rate) == (4, 12, 0.02)
    assert (hp.gamma, hp.gamma_epochs, hp.rois_per_image) == (0.5, 5, 512)
    assert (hp.eval_period, hp.split_ratio, hp.device) == (12, 0.8, "auto")
    assert (hp.seed, hp.image_size, hp.augment) == (0, None, True)
    assert (hp.momentum, hp.weight_decay, hp.warmup_iters) == (0.9, 1e-4, None)
    assert hp.num_threads == max(1, (os.cpu_count() or 1) - 1) == default_num_threads()


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
