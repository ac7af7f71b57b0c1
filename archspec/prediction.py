"""``predict``: a trained run on new files, with the run's own preprocessing.

A run trained on data files keeps ``preprocessing.json`` beside ``weights.safetensors``
(columns, categories, normalisation, image size, window). ``predict`` reads a new file of the
same format through it (refusing, by row, what it cannot handle: an unseen category, a missing
value) and writes one row per sample: what names the sample, the predicted class name (or the
predicted values) and, for classes, the probability of each.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archspec.api import compile as compile_spec
from archspec.api import load_weights, load_with_graph
from archspec.data.files import PREPROCESSING_FILE, read_for_prediction, read_preprocessing
from archspec.errors import DataError, UsageError
from archspec.weights import atomic_write_bytes, read_weights


@dataclass(frozen=True)
class Predictions:
    """One entry per sample. ``samples``: a CSV row's file line, an image's path or an array
    index. ``classes``: the class names (None for values); ``predicted``: the class name of
    each sample, or its values (N, k); ``probabilities`` (N, classes) or None; ``outputs``: the
    model's raw output (N, ...)."""

    samples: list
    classes: list[str] | None
    predicted: list[str] | np.ndarray
    probabilities: np.ndarray | None
    outputs: np.ndarray
    value_names: list[str]

    def to_csv(self) -> str:
        """``sample,predicted,p_CLASS...`` (classes) or ``sample,NAME...`` (values); floats as repr."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self.classes is not None:
            assert self.probabilities is not None
            writer.writerow(["sample", "predicted", *(f"p_{name}" for name in self.classes)])
            for sample, name, row in zip(self.samples, self.predicted, self.probabilities, strict=True):
                writer.writerow([sample, name, *(repr(float(p)) for p in row)])
        else:
            writer.writerow(["sample", *self.value_names])
            for sample, row in zip(self.samples, np.asarray(self.predicted), strict=True):
                writer.writerow([sample, *(repr(float(v)) for v in np.ravel(row))])
        return buffer.getvalue()


def predict(spec, weights, data, *, backend: str = "torch", out=None, batch_size: int = 1024) -> Predictions:
    """Run the trained ``spec`` (``weights``: a run's ``weights.safetensors``, with the run's
    ``preprocessing.json`` beside it) on the file ``data``; with ``out``, also write the CSV.

    Raises DataError naming the file and row (or image) for a sample the run's preprocessing
    cannot handle, CheckpointError for missing or foreign weights or preprocessing; nothing is
    written then, and no framework is loaded before the data is read.
    """
    spec = load_with_graph(spec)[0]
    weights = Path(weights)
    arrays, _ = read_weights(weights)
    preprocessing = read_preprocessing(weights.parent / PREPROCESSING_FILE)
    x, samples = read_for_prediction(preprocessing, data)
    ((input_name, model_input),) = spec.inputs.items() if len(spec.inputs) == 1 else (_several(spec),)
    if tuple(x.shape[1:]) != tuple(model_input.shape):
        raise DataError(
            f"{data}: input '{input_name}' expected samples of shape {list(model_input.shape)}, "
            f"received {list(x.shape[1:])}"
        )
    dtypes = {str(array.dtype) for array in arrays.values()}
    dtype = "float64" if dtypes == {"float64"} else "float32"
    model = compile_spec(spec, backend=backend, dtype=dtype, device="cpu")
    load_weights(model, weights)
    outputs = model.predict({input_name: x.astype(dtype)}, batch_size=batch_size)
    assert isinstance(outputs, np.ndarray)  # one output (the spec was checked above)
    outputs = outputs.reshape(len(outputs), -1).astype(np.float64)
    classes = preprocessing.get("class_names")
    if classes is not None:
        if outputs.shape[1] == 1:  # one sigmoid unit: the probability of the second class
            probabilities = np.concatenate([1.0 - outputs, outputs], axis=1)
        else:
            probabilities = outputs
        predicted: list[str] | np.ndarray = [classes[k] for k in np.argmax(probabilities, axis=1)]
        result = Predictions(samples, list(classes), predicted, probabilities, outputs, [])
    else:
        names = list(preprocessing.get("targets") or [preprocessing.get("target", {}).get("column", "prediction")])
        if len(names) != outputs.shape[1]:
            names = [f"prediction_{k}" for k in range(outputs.shape[1])]
        result = Predictions(samples, None, outputs, None, outputs, names)
    if out is not None:
        atomic_write_bytes(Path(out), result.to_csv().encode())
    return result


def _several(spec):
    raise UsageError(f"predict feeds one input; spec '{spec.name}' has inputs {list(spec.inputs)}")
