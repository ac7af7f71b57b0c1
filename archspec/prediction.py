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
from archspec.data.files.common import CLASSIFICATION_LOSSES
from archspec.errors import DataError, UsageError
from archspec.weights import atomic_write_bytes, read_weights


@dataclass(frozen=True)
class OutputPredictions:
    """One output's predictions. ``classes``: the class names (None for values);
    ``predicted``: the class name of each sample, or its values (N, k); ``probabilities``
    (N, classes) or None; ``outputs``: the model's raw output (N, k) in float64;
    ``value_names``: the names of the values (the target columns) when there are no classes."""

    classes: list[str] | None
    predicted: list[str] | np.ndarray
    probabilities: np.ndarray | None
    outputs: np.ndarray
    value_names: list[str]

    def header(self, output: str | None) -> list[str]:
        """The column names; with ``output`` (one of several), each starts with it: a class
        output's ``OUTPUT_predicted``, ``OUTPUT_p_CLASS``; one value is ``OUTPUT`` itself."""
        prefix = "" if output is None else f"{output}_"
        if self.classes is not None:
            return [f"{prefix}predicted", *(f"{prefix}p_{name}" for name in self.classes)]
        if output is not None and len(self.value_names) == 1:
            return [output]
        return [f"{prefix}{name}" for name in self.value_names]

    def cells(self, k: int) -> list[str]:
        """Sample ``k``'s cells; floats as repr (they read back exactly)."""
        if self.probabilities is not None:
            return [str(self.predicted[k]), *(repr(float(p)) for p in self.probabilities[k])]
        return [repr(float(v)) for v in np.ravel(np.asarray(self.predicted)[k])]


@dataclass(frozen=True)
class Predictions:
    """One entry per sample (``samples``: a CSV row's file line, an image's path or an array
    index) for every output (``by_output``, in the spec's order). With one output,
    ``classes``, ``predicted``, ``probabilities``, ``outputs`` and ``value_names`` are its
    own; with several, ``predictions[OUTPUT]`` has them."""

    samples: list
    by_output: dict[str, OutputPredictions]

    def __getitem__(self, output: str) -> OutputPredictions:
        if output not in self.by_output:
            raise UsageError(f"expected one of the outputs {list(self.by_output)}, received {output!r}")
        return self.by_output[output]

    @property
    def only(self) -> OutputPredictions:
        if len(self.by_output) != 1:
            raise UsageError(
                f"the model has outputs {list(self.by_output)}: expected predictions[OUTPUT] for one of them"
            )
        return next(iter(self.by_output.values()))

    @property
    def classes(self) -> list[str] | None:
        return self.only.classes

    @property
    def predicted(self) -> list[str] | np.ndarray:
        return self.only.predicted

    @property
    def probabilities(self) -> np.ndarray | None:
        return self.only.probabilities

    @property
    def outputs(self) -> np.ndarray:
        return self.only.outputs

    @property
    def value_names(self) -> list[str]:
        return self.only.value_names

    def to_csv(self) -> str:
        """``sample`` then every output's columns: ``predicted,p_CLASS...`` (classes) or the
        value names; with several outputs each column starts with its output's name."""
        several = len(self.by_output) > 1
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = [c for name, out in self.by_output.items() for c in out.header(name if several else None)]
        writer.writerow(["sample", *header])
        for k, sample in enumerate(self.samples):
            writer.writerow([sample, *(c for out in self.by_output.values() for c in out.cells(k))])
        return buffer.getvalue()


def predict(spec, weights, data, *, backend: str = "torch", out=None, batch_size: int = 1024) -> Predictions:
    """Run the trained ``spec`` (``weights``: a run's ``weights.safetensors``, with the run's
    ``preprocessing.json`` beside it) on the file ``data``; with ``out``, also write the CSV.

    Raises DataError naming the file and row (or image) for a sample the run's preprocessing
    cannot handle, CheckpointError for missing or foreign weights or preprocessing; nothing is
    written then, and no framework is loaded before the data is read.
    """
    spec, graph = load_with_graph(spec)
    weights = Path(weights)
    arrays, _ = read_weights(weights)
    preprocessing = read_preprocessing(weights.parent / PREPROCESSING_FILE)
    x, samples = read_for_prediction(preprocessing, data)
    if set(x) != set(spec.inputs):
        raise DataError(
            f"{data}: the run's preprocessing feeds inputs {sorted(x)}, spec '{spec.name}' has {list(spec.inputs)}"
        )
    for input_name, model_input in spec.inputs.items():
        if tuple(x[input_name].shape[1:]) != tuple(model_input.shape):
            raise DataError(
                f"{data}: input '{input_name}' expected samples of shape {list(model_input.shape)}, "
                f"received {list(x[input_name].shape[1:])}"
            )
    dtypes = {str(array.dtype) for array in arrays.values()}
    dtype = "float64" if dtypes == {"float64"} else "float32"
    model = compile_spec(spec, backend=backend, dtype=dtype, device="cpu")
    load_weights(model, weights)
    feed = {name: array.astype(dtype) if spec.inputs[name].dtype == "float" else array for name, array in x.items()}
    raw = model.predict(feed, batch_size=batch_size)
    outputs = raw if isinstance(raw, dict) else {graph.outputs[0]: raw}
    by_output = {
        name: _output_predictions(name, outputs[name], preprocessing, spec.training, len(graph.outputs) > 1)
        for name in graph.outputs
    }
    result = Predictions(samples, by_output)
    if out is not None:
        atomic_write_bytes(Path(out), result.to_csv().encode())
    return result


def _output_predictions(name: str, raw: np.ndarray, preprocessing, training, several: bool) -> OutputPredictions:
    """Class names and probabilities (a classification target), or values, of one output."""
    outputs = raw.reshape(len(raw), -1).astype(np.float64)
    classes, names = _described(name, preprocessing, training, outputs.shape[1], several)
    if classes is None:
        if len(names) != outputs.shape[1]:
            names = [f"prediction_{k}" for k in range(outputs.shape[1])]
        return OutputPredictions(None, outputs, None, outputs, names)
    if outputs.shape[1] == 1:  # one sigmoid unit: the probability of the second class
        probabilities = np.concatenate([1.0 - outputs, outputs], axis=1)
    else:
        probabilities = outputs
    predicted = [classes[k] for k in np.argmax(probabilities, axis=1)]
    return OutputPredictions(list(classes), predicted, probabilities, outputs, [])


def _described(name: str, preprocessing, training, width: int, several: bool) -> tuple[list[str] | None, list[str]]:
    """An output's class names (None for values) and value names, from the run's preprocessing
    (a CSV table's ``outputs``, an NPZ's ``targets``, or the one output of a single-output run)."""
    if not several:
        classes = preprocessing.get("class_names")
        names = list(preprocessing.get("targets") or [preprocessing.get("target", {}).get("column", "prediction")])
        return classes, names
    if "outputs" in preprocessing:  # a CSV table
        info = preprocessing["outputs"][name]
        return info.get("classes"), [info["column"]]
    array = preprocessing.get("targets", {}).get(name, "prediction")  # NPZ: classes are the ids
    if training is not None and training.loss_of(name) in CLASSIFICATION_LOSSES:
        return [str(k) for k in range(2 if width == 1 else width)], []
    return None, [array] if width == 1 else [f"{array}_{k}" for k in range(width)]
