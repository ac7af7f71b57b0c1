"""The training part of a spec: loss, optimizer, schedule, batches, metrics.

The formulas behind every name are in ``archspec/reference/`` and
``docs/semantics.md``; every backend implements exactly those.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, Strict, model_validator

from archspec.spec.common import Integer, Number, PositiveInteger, StrictModel

LossName = Literal[
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "mse",
    "mae",
]
MetricName = Literal["accuracy", "precision", "recall", "f1", "auc", "mse", "mae"]

CROSS_ENTROPY_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")


class _Optimizer(StrictModel):
    learning_rate: Number = Field(gt=0)


class SGD(_Optimizer):
    """``buf = momentum * buf + g`` (``buf = g`` at the first step);
    ``w -= lr * (g + momentum * buf if nesterov else buf)``; weight decay adds ``wd * w`` to g."""

    type: Literal["sgd"]
    learning_rate: Number = Field(default=0.01, gt=0)
    momentum: Number = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: Number = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum == 0:
            raise ValueError("expected momentum > 0 with nesterov: true, received momentum=0")
        return self


class Adam(_Optimizer):
    """Adam as in Kingma & Ba (Algorithm 1) and ``torch.optim.Adam``: epsilon is
    added to the bias-corrected ``sqrt(v_hat)``; weight decay is added to the gradient."""

    type: Literal["adam"]
    learning_rate: Number = Field(default=1e-3, gt=0)
    beta_1: Number = Field(default=0.9, ge=0, lt=1)
    beta_2: Number = Field(default=0.999, ge=0, lt=1)
    epsilon: Number = Field(default=1e-8, gt=0)
    weight_decay: Number = Field(default=0.0, ge=0)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w -= lr * wd * w`` before the Adam step."""

    type: Literal["adamw"]  # type: ignore[assignment]
    weight_decay: Number = Field(default=0.01, ge=0)


class RMSprop(_Optimizer):
    """``v = rho * v + (1 - rho) * g**2``; ``w -= lr * g / (sqrt(v) + epsilon)``
    (with momentum: ``buf = momentum * buf + g / (sqrt(v) + eps)``, ``w -= lr * buf``)."""

    type: Literal["rmsprop"]
    learning_rate: Number = Field(default=1e-2, gt=0)
    rho: Number = Field(default=0.99, ge=0, lt=1)
    epsilon: Number = Field(default=1e-8, gt=0)
    momentum: Number = Field(default=0.0, ge=0, lt=1)


class Adadelta(_Optimizer):
    """Zeiler's Adadelta as in ``torch.optim.Adadelta``."""

    type: Literal["adadelta"]
    learning_rate: Number = Field(default=1.0, gt=0)
    rho: Number = Field(default=0.9, ge=0, lt=1)
    epsilon: Number = Field(default=1e-6, gt=0)


Optimizer = Annotated[SGD | Adam | AdamW | RMSprop | Adadelta, Field(discriminator="type")]


class ConstantSchedule(StrictModel):
    """The optimizer's learning rate at every step."""

    type: Literal["constant"]


class StepSchedule(StrictModel):
    """``lr * gamma ** (step // step_size)``."""

    type: Literal["step"]
    step_size: PositiveInteger
    gamma: Number = Field(default=0.1, gt=0)


class ExponentialSchedule(StrictModel):
    """``lr * decay_rate ** (step / decay_steps)`` (floored exponent with ``staircase``)."""

    type: Literal["exponential"]
    decay_steps: PositiveInteger
    decay_rate: Number = Field(gt=0)
    staircase: bool = False


class CosineSchedule(StrictModel):
    """Keras' CosineDecay: ``lr * ((1 - alpha) * (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2 + alpha)``."""

    type: Literal["cosine"]
    decay_steps: PositiveInteger
    alpha: Number = Field(default=0.0, ge=0, le=1)


class PiecewiseSchedule(StrictModel):
    """Keras' PiecewiseConstantDecay: ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``
    (``values[0]`` up to and including ``boundaries[0]``, the last value after the last boundary).
    The values are learning rates themselves: the optimizer's ``learning_rate`` is not used."""

    type: Literal["piecewise"]
    boundaries: list[Annotated[int, Strict(), Field(ge=0)]] = Field(min_length=1)
    values: list[Annotated[Number, Field(gt=0)]] = Field(min_length=2)

    @model_validator(mode="after")
    def _shapes(self):
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"expected strictly increasing boundaries, received {self.boundaries}")
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"expected one value more than boundaries ({len(self.boundaries) + 1}), received {len(self.values)}"
            )
        return self


Schedule = Annotated[
    ConstantSchedule | StepSchedule | ExponentialSchedule | CosineSchedule | PiecewiseSchedule,
    Field(discriminator="type"),
]


class _Monitor(StrictModel):
    """Watches one history key after every epoch (``archspec/definitions/controls.py``).

    ``mode``: ``min`` (lower is better), ``max``, or ``auto`` (``max`` for a key ending in
    accuracy, precision, recall, f1 or auc, ``min`` otherwise). An epoch improves when its
    value is below ``best - min_delta`` (``min``) or above ``best + min_delta`` (``max``).
    """

    monitor: str = Field("validation_loss", min_length=1)
    mode: Literal["auto", "min", "max"] = "auto"
    patience: Integer = Field(0, ge=0)
    min_delta: Number = Field(0.0, ge=0)


class EarlyStopping(_Monitor):
    """Keras' EarlyStopping: stop after ``patience`` epochs in a row without improvement;
    ``restore_best``: end with the weights of the best epoch (kept in the checkpoint)."""

    restore_best: bool = False


class ReduceOnPlateau(_Monitor):
    """Keras' ReduceLROnPlateau: after ``patience`` epochs without improvement, the learning
    rate is multiplied by ``factor`` (never below ``min_lr``), then ``cooldown`` epochs pass
    before epochs count again."""

    factor: Number = Field(0.1, gt=0, lt=1)
    patience: Integer = Field(10, ge=0)
    min_delta: Number = Field(1e-4, ge=0)
    cooldown: Integer = Field(0, ge=0)
    min_lr: Number = Field(0.0, ge=0)


def _json_class_keys(value):
    # JSON (a spec dumped for workers or compare) writes integer keys as text: read "3" as 3,
    # and only a canonical decimal integer ("03", "3.0" and " 3" stay errors).
    if isinstance(value, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() and str(int(k)) == k else k: v for k, v in value.items()}
    return value


class Training(StrictModel):
    """How the model is trained. ``step`` in schedules counts optimizer steps from 0.

    The controls (formulas in ``docs/semantics.md``): ``warmup_steps`` multiplies every
    schedule by ``min(1, step / warmup_steps)``; ``reduce_on_plateau`` and ``early_stopping``
    watch a history key after every epoch; ``clip_value`` then ``clip_norm`` clip the step's
    gradient (of the whole global batch); ``class_weight`` weights each sample's loss by its
    class; ``accumulate_steps`` sums the gradients of that many consecutive batches of
    ``batch_size`` into one optimizer step.

    Several outputs: ``loss`` is one loss for every output or ``{OUTPUT: loss}`` naming each
    output; ``loss_weights`` ``{OUTPUT: weight}`` (every output, default 1 each); ``metrics``
    one list for every output or ``{OUTPUT: [...]}``. The step loss is
    ``sum over outputs of weight * loss`` plus the penalties (``docs/semantics.md``).
    """

    loss: LossName | dict[str, LossName]
    loss_weights: dict[str, Annotated[Number, Field(ge=0)]] | None = None
    optimizer: Optimizer = Field(default_factory=lambda: Adam(type="adam"))
    schedule: Schedule = Field(default_factory=lambda: ConstantSchedule(type="constant"))
    batch_size: PositiveInteger = 32
    epochs: PositiveInteger = 1
    metrics: list[MetricName] | dict[str, list[MetricName]] = Field(default_factory=list)
    seed: Integer = Field(default=0, ge=0, lt=2**31)
    dtype: Literal["float32", "float64"] = "float32"
    shuffle: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    warmup_steps: Integer = Field(0, ge=0)
    reduce_on_plateau: ReduceOnPlateau | None = None
    early_stopping: EarlyStopping | None = None
    clip_norm: Number | None = Field(None, gt=0)
    clip_value: Number | None = Field(None, gt=0)
    class_weight: Annotated[
        dict[Annotated[int, Strict(), Field(ge=0)], Annotated[Number, Field(ge=0)]] | None,
        BeforeValidator(_json_class_keys),
    ] = None
    accumulate_steps: PositiveInteger = 1

    def loss_of(self, output: str) -> str:
        """The loss of ``output`` (one loss for every output, or the mapping's entry)."""
        return self.loss[output] if isinstance(self.loss, dict) else self.loss

    def names_loss(self, output: str) -> bool:
        """Whether ``output`` has a loss: always with one loss, else when the mapping names it."""
        return not isinstance(self.loss, dict) or output in self.loss

    def loss_weight_of(self, output: str) -> float:
        """The weight of ``output``'s loss in the step loss (1 without ``loss_weights``)."""
        return float(self.loss_weights.get(output, 1.0)) if self.loss_weights is not None else 1.0

    def metrics_of(self, output: str) -> list[str]:
        """The metrics of ``output`` (one list for every output, or the mapping's entry)."""
        if isinstance(self.metrics, dict):
            return list(self.metrics.get(output, []))
        return list(self.metrics)

    @property
    def losses(self) -> tuple[str, ...]:
        """Every loss the training section names, once each, in order."""
        names = self.loss.values() if isinstance(self.loss, dict) else (self.loss,)
        return tuple(dict.fromkeys(names))
