"""The proof of a port: the imported spec, compiled on every backend with the imported weights,
computes what the original model computes, in float64 and in float32.

Each backend and the original run on the same inputs (MNIST test images where the spec's input
has an MNIST shape, else seeded random values); the report gives the largest difference of
the outputs per backend and dtype against the bounds. When a bound fails, the original's
output of every spec node is compared, in graph order, with archspec's numpy reference of
that node (the written meaning of every layer), which names the first layer whose output
differs: the place where the port, or a backend, went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from archspec import backend as backend_registry
from archspec.api import compile, load_with_graph
from archspec.data.mnist import load_mnist
from archspec.data.splits import first_array
from archspec.errors import DataError
from archspec.graph import ModelGraph
from archspec.porting import Imported
from archspec.reference.forward import reference_forward

BOUNDS = {"float64": 1e-12, "float32": 1e-5}
SAMPLES = 32
_MNIST_SHAPES = {(784,): "flat", (28, 28): "sequence", (28, 28, 1): "image"}


@dataclass(frozen=True)
class Comparison:
    """One backend against the original in one dtype: the largest absolute output difference."""

    backend: str
    dtype: str
    largest: float
    bound: float
    first_difference: str | None = None  # where the outputs start to differ, when the bound fails

    @property
    def passed(self) -> bool:
        return bool(self.largest <= self.bound)


@dataclass
class ProofReport:
    """Every comparison of a proof, the inputs it ran on and the import's notes."""

    name: str
    framework: str
    inputs: str
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(comparison.passed for comparison in self.comparisons)

    def __str__(self) -> str:
        lines = [f"proof of '{self.name}' (imported from {self.framework}) on {self.inputs}:"]
        lines.append(f"  {'backend':<11} {'dtype':<8} {'largest difference':>19}  {'bound':>7}  result")
        for c in self.comparisons:
            verdict = "ok" if c.passed else "FAILED"
            lines.append(f"  {c.backend:<11} {c.dtype:<8} {c.largest:>19.3e}  {c.bound:>7.0e}  {verdict}")
            if c.first_difference:
                lines.append(f"    first difference: {c.first_difference}")
        lines.append("proof passed" if self.passed else "proof FAILED")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def proof_inputs(graph: ModelGraph, seed: int = 0, samples: int = SAMPLES) -> tuple[dict[str, np.ndarray], str]:
    """Inputs for the proof (name -> batch) and what they are: MNIST test images scaled to [0, 1]
    when the model has one float input of an MNIST shape and MNIST is at hand, else seeded
    random values (standard normal floats; ids below the reading embedding's ``input_dim``)."""
    spec = graph.spec
    if len(spec.inputs) == 1:
        ((name, model_input),) = spec.inputs.items()
        view = _MNIST_SHAPES.get(tuple(model_input.shape))
        if view is not None and model_input.dtype == "float":
            try:
                test = load_mnist(view=view).test
            except DataError:
                test = None
            if test is not None:
                return {name: first_array(test[0])[:samples].astype(np.float64)}, f"{samples} MNIST test images"
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, model_input in spec.inputs.items():
        shape = (samples, *model_input.shape)
        if model_input.dtype == "float":
            arrays[name] = rng.standard_normal(shape)
        else:
            readers = [node.layer for node in graph.nodes if name in node.inputs and node.type == "embedding"]
            high = min((getattr(layer, "input_dim", 10) for layer in readers), default=10)
            arrays[name] = rng.integers(0, high, shape).astype(model_input.dtype)
    return arrays, f"{samples} random samples (seed {seed})"


def _largest(ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray], names: list[str]) -> float:
    largest = 0.0
    for name in names:
        if np.shape(ours[name]) != np.shape(theirs[name]):
            return float("inf")  # a different shape: nothing agrees
        difference = np.abs(np.asarray(ours[name], np.float64) - np.asarray(theirs[name], np.float64))
        largest = max(largest, float(np.nanmax(difference)) if difference.size else 0.0)
        if np.isnan(difference).any():
            return float("inf")
    return largest


def first_difference(imported: Imported, graph: ModelGraph, inputs: Mapping[str, np.ndarray], dtype: str) -> str:
    """The first spec node, in graph order, whose output in the original differs from the numpy
    reference by more than the dtype's bound. The padded steps of a masked output are left out:
    what a layer leaves there is no part of its meaning (``docs/semantics.md``, "Masks")."""
    bound = BOUNDS[dtype]
    theirs = dict(imported.original.intermediates(inputs, dtype))
    reference = reference_forward(graph, imported.weights, inputs)
    ours = dict(reference.tensors)
    for name, mask in reference.masks.items():
        if name in theirs and np.shape(theirs[name])[:2] == mask.shape == np.shape(ours[name])[:2]:
            valid = mask.reshape(mask.shape + (1,) * (np.ndim(ours[name]) - 2))
            ours[name] = np.where(valid, ours[name], 0.0)
            theirs[name] = np.where(valid, theirs[name], 0.0)
    for node in graph.nodes:
        if node.id not in theirs:
            continue
        if np.shape(ours[node.id]) != np.shape(theirs[node.id]):
            shapes = f"{list(np.shape(theirs[node.id])[1:])} in the original, {list(np.shape(ours[node.id])[1:])} in the spec"
            return f"layer '{node.id}' ({node.type}) has another output shape: {shapes}"
        difference = _largest(ours, theirs, [node.id])
        if difference > bound:
            return f"layer '{node.id}' ({node.type}) differs from archspec's reference by {difference:.3e}"
    return "the original agrees with archspec's reference at every layer: the backend differs from both"


def prove(imported: Imported, inputs: Mapping[str, np.ndarray] | None = None) -> ProofReport:
    """Compile ``imported`` on every backend, run it and the original in float64 and float32, and
    report the largest output difference per backend and dtype (bounds: ``BOUNDS``)."""
    spec, graph = load_with_graph(imported.document)
    if inputs is None:
        inputs, described = proof_inputs(graph)
    else:
        inputs, described = dict(inputs), f"{len(next(iter(inputs.values())))} given samples"
    comparisons = []
    for dtype in ("float64", "float32"):
        cast = {name: value.astype(dtype) if value.dtype.kind == "f" else value for name, value in inputs.items()}
        theirs = imported.original.outputs(cast, dtype)
        located: str | None = None
        for backend in backend_registry.BACKENDS:
            model = compile(spec, backend, dtype, weights=imported.weights)
            ours = model.forward(cast)
            largest = _largest(ours, theirs, list(graph.outputs))
            where = None
            if largest > BOUNDS[dtype]:
                located = located or first_difference(imported, graph, cast, dtype)
                where = located
            comparisons.append(Comparison(backend, dtype, largest, BOUNDS[dtype], where))
    return ProofReport(spec.name, imported.original.framework, described, comparisons, list(imported.notes))
