"""Training data against the model it trains: input shapes, and the targets each loss reads.

``archspec.data.splits`` checks what any data set must be (numeric, finite, aligned, labels
inside the classes); this module checks what this spec's input and loss need on top of that,
so bad data is refused before training with one DataError naming the split and array.
"""

from __future__ import annotations

import math

import numpy as np

from archspec.data.files.common import Target
from archspec.errors import DataError, UsageError
from archspec.graph import ModelGraph, resolve


def prepare_targets(y: np.ndarray, loss: str, num_classes: int | None, dtype: str) -> np.ndarray:
    """Labels in the form the loss reads: int64 (N,) for sparse CE, one-hot for
    categorical CE, float (N, k) otherwise."""
    if loss == "sparse_categorical_crossentropy":
        if y.ndim != 1:
            raise DataError(f"{loss} expected integer class labels of shape (N,), received shape {list(y.shape)}")
        return y.astype(np.int64)
    if loss == "categorical_crossentropy":
        if y.ndim == 1:
            if num_classes is None:
                raise DataError(f"{loss} with integer labels needs a known number of classes")
            return np.eye(num_classes, dtype=dtype)[y.astype(np.int64)]
        return y.astype(dtype)
    target = y.astype(dtype)
    return target.reshape(len(target), -1)


def check_data_fits(graph: ModelGraph, splits) -> None:
    """Refuse ``splits`` (checked ``Splits``) that do not fit ``graph``'s input or loss."""
    spec = graph.spec
    if spec.training is None:  # refused before any data is read (archspec.training.run)
        raise UsageError(f"spec '{spec.name}' has no 'training' section")
    loss = spec.training.loss
    if len(spec.inputs) != 1:
        raise DataError(f"training data feeds one input, but spec '{spec.name}' has inputs {list(spec.inputs)}")
    ((name, model_input),) = spec.inputs.items()
    output_shape = graph.output_shape(graph.outputs[0])
    for split, (x, y) in splits.as_dict().items():
        if tuple(x.shape[1:]) != tuple(model_input.shape):
            raise DataError(
                f"{split}.x: input '{name}' expected samples of shape {list(model_input.shape)}, "
                f"received {list(x.shape[1:])} (x has shape {list(x.shape)})"
            )
        if model_input.dtype != "float" and x.dtype.kind not in "iu":
            raise DataError(
                f"{split}.x: input '{name}' ({model_input.dtype}) expected integer ids, received an array of {x.dtype}"
            )
        check_targets(y, loss, output_shape, f"{split}.y")


def check_targets(y: np.ndarray, loss: str, output_shape: tuple[int, ...], where: str) -> None:
    """Refuse targets ``y`` (N, ...) that ``loss`` cannot read against an output of ``output_shape``."""
    outputs = math.prod(output_shape)
    if y.ndim > 2:
        raise DataError(f"{where}: expected targets of shape (N,) or (N, outputs), received shape {list(y.shape)}")
    if loss == "sparse_categorical_crossentropy":
        if y.ndim != 1:
            raise DataError(
                f"{where}: {loss} expected class labels of shape (N,), received shape {list(y.shape)} "
                f"(one-hot targets need categorical_crossentropy)"
            )
        if y.dtype.kind not in "biu":
            raise DataError(
                f"{where}: {loss} expected integer class labels, received {y.dtype} labels "
                f"(cast them with y.astype(int), or use categorical_crossentropy)"
            )
    elif loss == "categorical_crossentropy":
        if y.ndim == 1 and y.dtype.kind not in "biu":
            raise DataError(
                f"{where}: {loss} expected integer class labels (N,) or one-hot rows (N, {outputs}), "
                f"received {y.dtype} labels of shape {list(y.shape)}"
            )
        if y.ndim == 2:
            if y.shape[1] != outputs:
                raise DataError(
                    f"{where}: {loss} expected one-hot rows of width {outputs} (the output's classes), "
                    f"received width {y.shape[1]}"
                )
            sums = y.sum(axis=1, dtype=np.float64)
            bad = np.flatnonzero(sums != 1)
            if len(bad):
                raise DataError(
                    f"{where}: {loss} expected one-hot rows (a single 1, the rest 0), "
                    f"received row {int(bad[0])} = {y[bad[0]].tolist()}"
                )
    elif loss == "binary_crossentropy":
        if y.ndim == 2 and y.shape[1] != 1:
            raise DataError(f"{where}: {loss} expected targets of shape (N,) or (N, 1), received shape {list(y.shape)}")
        # Values 0/1: checked by Splits with num_classes=2.
    else:
        width = 1 if y.ndim == 1 else y.shape[1]
        if width != outputs:
            raise DataError(
                f"{where}: {loss} expected {outputs} target value(s) per sample (the output shape "
                f"{list(output_shape)}), received shape {list(y.shape)}"
            )


def file_target(spec) -> Target:
    """What a data file must give the spec's (one) input and output, and the loss that reads it."""
    graph = resolve(spec)
    output = graph.outputs[0]
    return Target(next(iter(spec.inputs)), output, math.prod(graph.output_shape(output)), spec.training.loss)
