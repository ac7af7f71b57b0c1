"""Fuzzing: random shapes, dtypes and values as training data, for every kind of loss and input.

``archspec.train(spec, data=..., max_steps=1)`` either trains its one step or raises
DataError or UsageError with a one-line message; never another exception. Data that fits
the spec (in any dtype and label layout its loss accepts) always trains.
"""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import archspec
from archspec.errors import DataError, UsageError

HEAD = "name: fuzz\ntraining: {{loss: {loss}, optimizer: {{type: sgd, learning_rate: 0.1}}, batch_size: 4, seed: 0}}\n"
SPECS = {
    "sparse": HEAD.format(loss="sparse_categorical_crossentropy") + "inputs: {x: {shape: [3]}}\n"
    "layers: [{type: dense, units: 3, activation: softmax}]\n",
    "categorical": HEAD.format(loss="categorical_crossentropy") + "inputs: {x: {shape: [3]}}\n"
    "layers: [{type: dense, units: 3, activation: softmax}]\n",
    "binary": HEAD.format(loss="binary_crossentropy") + "inputs: {x: {shape: [3]}}\n"
    "layers: [{type: dense, units: 1, activation: sigmoid}]\n",
    "mse": HEAD.format(loss="mse") + "inputs: {x: {shape: [2, 2]}}\n"
    "layers: [{type: flatten}, {type: dense, units: 2}]\n",
    "embedding": HEAD.format(loss="sparse_categorical_crossentropy") + "inputs: {x: {shape: [3], dtype: int64}}\n"
    "layers: [{type: embedding, input_dim: 5, output_dim: 2}, {type: flatten}, "
    "{type: dense, units: 3, activation: softmax}]\n",
}
SAMPLE_SHAPES = {"sparse": (3,), "categorical": (3,), "binary": (3,), "mse": (2, 2), "embedding": (3,)}
DTYPES = ["float64", "float32", "float16", "int64", "int32", "uint8", "bool", "complex64", "<U2"]


def _elements(dtype: np.dtype, finite: bool = False):
    if dtype.kind == "f":
        width = dtype.itemsize * 8
        if finite:
            return st.floats(-100, 100, width=width)
        return st.one_of(st.floats(-100, 100, width=width), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0]))
    if dtype.kind in "iu":
        return st.integers(max(-3, int(np.iinfo(dtype).min)), 7)
    return None


@st.composite
def arrays(draw, sample_shape, as_labels=False):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    count = draw(st.integers(0, 6))
    if as_labels:
        tail = draw(st.sampled_from([(), (1,), (3,), (2,), (1, 1)]))
    else:
        tail = draw(st.one_of(st.just(sample_shape), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
    shape = (count, *tail)
    return draw(hnp.arrays(dtype, shape, elements=_elements(dtype)))


@st.composite
def valid_pair(draw, kind):
    """Data that fits ``kind``'s spec, in any of the dtypes and layouts it accepts."""
    count = draw(st.integers(1, 6))
    shape = (count, *SAMPLE_SHAPES[kind])
    if kind == "embedding":
        x = draw(hnp.arrays(draw(st.sampled_from(["int64", "int32", "uint8"])), shape, elements=st.integers(0, 4)))
    else:
        dtype = np.dtype(draw(st.sampled_from(["float64", "float32", "float16", "int32", "uint8", "bool"])))
        x = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, finite=True)))
    labels = draw(hnp.arrays(draw(st.sampled_from(["int64", "int32", "uint8"])), (count,), elements=st.integers(0, 2)))
    if kind == "categorical" and draw(st.booleans()):
        return x, np.eye(3, dtype=draw(st.sampled_from(["float32", "int64"])))[labels]
    if kind == "binary":
        y = (labels % 2).astype(draw(st.sampled_from(["float64", "float32", "int64", "bool"])))
        return x, y.reshape(count, 1) if draw(st.booleans()) else y
    if kind == "mse":
        return x, draw(
            hnp.arrays(draw(st.sampled_from(["float64", "float32", "int64"])), (count, 2), elements=st.integers(-5, 5))
        )
    return x, labels


@st.composite
def data_arguments(draw, kind):
    """Valid data, valid data with one thing broken, or arrays drawn at random."""
    how = draw(st.sampled_from(["valid", "valid", "broken", "random"]))
    x, y = draw(valid_pair(kind))
    if how == "broken":
        which = draw(st.sampled_from(["x", "y"]))
        array = (x if which == "x" else y).astype(draw(st.sampled_from(DTYPES[:3] + ["complex64", "int64"])))
        if array.size:
            index = tuple(draw(st.integers(0, side - 1)) for side in array.shape)
            array[index] = (
                draw(st.sampled_from([np.nan, np.inf, -1, 3, 7, 0.5, 2]))
                if array.dtype.kind in "fc"
                else draw(st.sampled_from([-1, 3, 7, 2]))
            )
        x, y = (array, y) if which == "x" else (x, array)
    elif how == "random":
        x = draw(arrays(SAMPLE_SHAPES[kind]))
        y = draw(arrays(SAMPLE_SHAPES[kind], as_labels=True))
    layout = draw(st.sampled_from(["pair", "pair", "pair", "splits", "junk"]))
    if layout == "pair":
        return (x, y), how == "valid"
    if layout == "splits":
        return {"train": (x, y), "validation": (draw(arrays(SAMPLE_SHAPES[kind])), y)}, False
    return draw(st.sampled_from([(x,), [x, y, y], "text", None, {"train": None}, {"tran": (x, y)}])), False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), kind=st.sampled_from(sorted(SPECS)))
def test_random_training_data_trains_or_is_refused_cleanly(data, kind):
    arguments, fits = data.draw(data_arguments(kind))
    try:
        result = archspec.train(SPECS[kind], backend="torch", data=arguments, max_steps=1, evaluate_every_epoch=False)
    except (DataError, UsageError) as error:
        message = str(error)
        assert message and "\n" not in message
        assert not fits, f"data that fits the spec was refused: {message}"
    else:
        assert result.steps == 1 and math.isfinite(result.step_losses[0])
