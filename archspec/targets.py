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
    """Refuse ``splits`` (checked ``Splits``) that do not fit ``graph``'s inputs or losses."""
    spec = graph.spec
    training = spec.training
    if training is None:  # refused before any data is read (archspec.training.run)
        raise UsageError(f"spec '{spec.name}' has no 'training' section")
    for split, (x, y) in splits.as_dict().items():
        for name, (where, array) in by_name(x, list(spec.inputs), f"{split}.x", "input").items():
            model_input = spec.inputs[name]
            if tuple(array.shape[1:]) != tuple(model_input.shape):
                raise DataError(
                    f"{where}: input '{name}' expected samples of shape {list(model_input.shape)}, "
                    f"received {list(array.shape[1:])} (x has shape {list(array.shape)})"
                )
            if model_input.dtype != "float" and array.dtype.kind not in "iu":
                raise DataError(
                    f"{where}: input '{name}' ({model_input.dtype}) expected integer ids, received an array of {array.dtype}"
                )
        for output, (where, target) in by_name(y, list(graph.outputs), f"{split}.y", "output").items():
            loss, shape = training.loss_of(output), graph.output_shape(output)
            check_targets(target, loss, shape, where)
            if splits.num_classes is None and loss in CLASS_LOSSES:
                check_labels(target, loss, shape, where)


CLASS_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")


def by_name(arrays, names: list[str], where: str, what: str) -> dict[str, tuple[str, np.ndarray]]:
    """``arrays`` (one array or a dict) by the model's input or output ``names``: name -> (where, array)."""
    if not isinstance(arrays, dict):
        if len(names) != 1:
            raise DataError(
                f"{where}: expected a dict of arrays by {what} name ({', '.join(names)}), received one array"
            )
        return {names[0]: (where, arrays)}
    unknown = [key for key in arrays if key not in names]
    if unknown:
        raise DataError(
            f"{where}: expected arrays for the model's {what}s ({', '.join(names)}), received {unknown[0]!r}"
        )
    missing = [name for name in names if name not in arrays]
    if missing:
        raise DataError(
            f"{where}: expected an array for every model {what} ({', '.join(names)}), missing {missing[0]!r}"
        )
    return {name: (f"{where}[{name!r}]", arrays[name]) for name in names}


def check_labels(y: np.ndarray, loss: str, output_shape: tuple[int, ...], where: str) -> None:
    """Class targets inside the output's classes (0/1 for binary cross-entropy)."""
    classes = 2 if loss == "binary_crossentropy" else math.prod(output_shape)
    if loss == "categorical_crossentropy" and y.ndim == 2:
        return  # one-hot rows: checked by check_targets
    valid = (y >= 0) & (y < classes) & (y == np.floor(y))
    if not valid.all():
        first = tuple(int(i) for i in np.argwhere(~valid)[0])
        raise DataError(
            f"{where}: expected class labels 0..{classes - 1}, received {y[first].item()!r} at index {first}"
        )


def named_targets(y, graph: ModelGraph, training, num_classes: int | None, dtype: str) -> dict[str, np.ndarray]:
    """Every output's targets in the form its loss reads (``prepare_targets``), by output name."""
    outputs = list(graph.outputs)
    arrays = y if isinstance(y, dict) else {outputs[0]: y}
    prepared = {}
    for output in outputs:
        loss = training.loss_of(output)
        classes = num_classes
        if classes is None and loss == "categorical_crossentropy":
            classes = math.prod(graph.output_shape(output))
        prepared[output] = prepare_targets(np.asarray(arrays[output]), loss, classes, dtype)
    return prepared


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
    return Target(next(iter(spec.inputs)), output, math.prod(graph.output_shape(output)), spec.training.loss_of(output))


def file_targets(spec) -> dict[str, Target]:
    """``file_target`` of every output of the spec, by output name."""
    graph = resolve(spec)
    first_input = next(iter(spec.inputs))
    return {
        output: Target(first_input, output, math.prod(graph.output_shape(output)), spec.training.loss_of(output))
        for output in graph.outputs
    }
