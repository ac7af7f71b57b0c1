"""The training section of an imported spec, from Keras' compile settings (plain data, no framework).

Keras serialises its ``compile()`` arguments (``Model.get_compile_config()``) as names and
config dicts; this module maps them to archspec's optimizers, losses and metrics, and says in
notes what the user should review (conventions that differ, settings archspec lacks).
"""

from __future__ import annotations

import re
from typing import Any, get_args

import numpy as np

from archspec.spec.training import LossName, MetricName

LOSSES: tuple[str, ...] = get_args(LossName)
METRICS: tuple[str, ...] = get_args(MetricName)

_LOSS_ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae"}
_METRIC_ALIASES = {
    "acc": "accuracy",
    "sparse_categorical_accuracy": "accuracy",
    "categorical_accuracy": "accuracy",
    "binary_accuracy": "accuracy",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "f1_score": "f1",
}
# Keras optimizer option -> archspec option, per archspec optimizer type.
_OPTIMIZER_OPTIONS = {
    "sgd": ("learning_rate", "momentum", "nesterov"),
    "adam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
    "adamw": ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay"),
    "rmsprop": ("learning_rate", "rho", "epsilon", "momentum"),
    "adadelta": ("learning_rate", "rho", "epsilon"),
}
_ADAM = {"type": "adam", "learning_rate": 0.001}


def default_training(activation: str | None, units: int) -> dict[str, Any]:
    """What an uncompiled model most likely trains with, from its output: softmax over classes,
    one sigmoid unit, or a regression."""
    if activation == "softmax" and units >= 2:
        return {"loss": "sparse_categorical_crossentropy", "optimizer": dict(_ADAM), "metrics": ["accuracy"]}
    if activation == "sigmoid" and units == 1:
        return {"loss": "binary_crossentropy", "optimizer": dict(_ADAM), "metrics": ["accuracy"]}
    return {"loss": "mse", "optimizer": dict(_ADAM), "metrics": ["mae"]}


def shortest(value: float) -> float:
    """A float32 hyperparameter as its shortest float32 text (Keras keeps 0.001 as 0.0010000000474974513)."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


_OPTIMIZER_CLASSES = {"SGD": "sgd", "Adam": "adam", "AdamW": "adamw", "RMSprop": "rmsprop", "Adadelta": "adadelta"}
_REGRESSION = ("mse", "mae")


def _name(entry: Any) -> tuple[str | None, dict]:
    """(name, config) of a serialised Keras object: a string, or ``{"class_name", "config"}``,
    named after its class (``SparseCategoricalCrossentropy`` -> ``sparse_categorical_crossentropy``;
    its config's ``name`` is the instance's, ``adam_3``)."""
    if isinstance(entry, str):
        return entry.lower(), {}
    if isinstance(entry, dict):
        found = entry.get("config")
        config: dict = found if isinstance(found, dict) else {}
        class_name = str(entry.get("class_name", ""))
        if class_name in _OPTIMIZER_CLASSES:
            return _OPTIMIZER_CLASSES[class_name], config
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower(), config
    return None, {}


def training_from_compile(
    compile_config: dict | None, activation: str | None = "softmax", units: int = 2
) -> tuple[dict[str, Any], list[str]]:
    """The spec's ``training`` section and notes, from ``get_compile_config()`` (None: not
    compiled); ``activation`` and ``units`` describe the (first) output, for the defaults."""
    default = default_training(activation, units)
    if not compile_config:
        return default, [
            f"the model was not compiled: training is a default (adam 0.001, {default['loss']}, "
            f"{', '.join(default['metrics'])}); review it before training"
        ]
    notes: list[str] = []
    training: dict[str, Any] = {}
    loss, loss_config = _name(compile_config.get("loss"))
    loss = _LOSS_ALIASES.get(loss or "", loss)
    if loss in LOSSES:
        training["loss"] = loss
        if loss_config.get("from_logits"):
            notes.append(
                f"the loss was compiled with from_logits=True; archspec reads {loss} from the output's "
                "pre-activation only when the last layer applies softmax or sigmoid: review the output layer"
            )
    else:
        training["loss"] = default["loss"]
        notes.append(
            f"expected a loss among {', '.join(LOSSES)}, received {loss!r}: {default['loss']} instead; review it"
        )
    optimizer, notes_of_optimizer = _optimizer(compile_config.get("optimizer"))
    training["optimizer"] = optimizer
    _, optimizer_config = _name(compile_config.get("optimizer"))
    # archspec clips the norm of all gradients together (Keras' global_clipnorm) or each value.
    for keras_option, option in (("global_clipnorm", "clip_norm"), ("clipvalue", "clip_value")):
        if isinstance(optimizer_config.get(keras_option), (int, float)):
            training[option] = shortest(optimizer_config[keras_option])
    notes += notes_of_optimizer
    metrics = []
    regression = training["loss"] in _REGRESSION
    for entry in compile_config.get("metrics") or []:
        name, _ = _name(entry)
        name = _METRIC_ALIASES.get(name or "", name)
        if name not in METRICS:
            notes.append(f"metric {name!r} has no archspec counterpart and was left out")
        elif (name in _REGRESSION) != regression:
            notes.append(f"metric {name!r} does not go with the loss {training['loss']} in archspec and was left out")
        else:
            metrics.append(name)
    training["metrics"] = list(dict.fromkeys(metrics))
    return training, notes


def _optimizer(entry: Any) -> tuple[dict[str, Any], list[str]]:
    name, config = _name(entry)
    if name not in _OPTIMIZER_OPTIONS:
        return dict(_ADAM), [
            f"expected an optimizer among {', '.join(_OPTIMIZER_OPTIONS)}, received {name!r}: adam 0.001 instead; review it"
        ]
    optimizer: dict[str, Any] = {"type": name}
    for option in _OPTIMIZER_OPTIONS[name]:
        value = config.get(option)
        if isinstance(value, bool):
            optimizer[option] = value
        elif isinstance(value, (int, float)):
            optimizer[option] = shortest(value)
    notes = []
    if not isinstance(config.get("learning_rate", 0.0), (int, float)):
        notes.append("the learning rate is a Keras schedule: the spec keeps a constant rate; add a 'schedule'")
        optimizer.pop("learning_rate", None)
    if name in ("adam", "adamw", "rmsprop") and "epsilon" in optimizer:
        notes.append(
            f"{name}: Keras adds epsilon to an uncorrected sqrt(v) (rmsprop: inside the root), archspec as "
            "PyTorch does; the updates differ at the scale of epsilon"
        )
    if name == "sgd" and optimizer.get("nesterov") and not optimizer.get("momentum"):
        optimizer.pop("nesterov")
    for unsupported in ("clipnorm", "weight_decay", "use_ema"):
        if config.get(unsupported) and not (unsupported == "weight_decay" and name == "adamw"):
            notes.append(f"optimizer option {unsupported}={config[unsupported]} was not carried over; review it")
    if config.get("amsgrad"):
        notes.append("amsgrad=True was not carried over (archspec's adam has no amsgrad)")
    return optimizer, notes
