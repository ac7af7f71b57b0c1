"""Verification of an exported file: run it in its own runtime on a batch of inputs and compare
each output with the numpy reference (float64) and with every backend, against a bound.

The difference of an output is ``max |file - expected|`` (absolute) and that divided by
``max |expected|`` (relative: to the output's largest magnitude, so tiny entries such as a
softmax's near-zero probabilities do not blow it up). Inputs are the spec's own data when it has
some (the first samples of its validation split, else of its training split), else random.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from archspec import backend as backend_registry
from archspec.api import compile as compile_spec
from archspec.errors import ArchSpecError
from archspec.exporting import Runner
from archspec.graph import ModelGraph

# The numpy reference is a witness; verification is one of the places that call it (pyproject's
# import contract lists this module as an exception, as it lists the divergence locator).
from archspec.reference.forward import reference_forward
from archspec.spec.layers import Embedding


@dataclass(frozen=True)
class Comparison:
    """One output of the file against one expected computation."""

    output: str
    against: str  # "reference (float64)", "torch (float32)", ...
    max_abs: float
    max_rel: float
    bound: float
    problem: str | None = None  # a shape mismatch or a missing output, instead of numbers

    @property
    def passed(self) -> bool:
        return self.problem is None and self.max_rel <= self.bound


@dataclass(frozen=True)
class Verification:
    rows: list[Comparison]
    inputs: str  # where the inputs came from, as the report says it
    batch: int

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def first_failure(self) -> Comparison | None:
        return next((row for row in self.rows if not row.passed), None)


def verification_inputs(graph: ModelGraph, dtype: str, count: int, data_dir=None) -> tuple[dict[str, np.ndarray], str]:
    """``count`` samples per input: the spec's data when it loads, else random (seeded)."""
    spec = graph.spec
    if spec.data is not None and spec.training is not None:
        # Imported here: reading data is the training package's business (and loads no framework).
        from archspec.training.preparation import load_splits

        try:
            splits = load_splits(spec, None, data_dir)
        except ArchSpecError as error:
            note = f"random (the spec's data did not load: {error})"
        else:
            x = (splits.validation or splits.train)[0]
            arrays = dict(x) if isinstance(x, Mapping) else {next(iter(spec.inputs)): x}
            if set(arrays) == set(spec.inputs) and all(len(a) >= 1 for a in arrays.values()):
                arrays = {name: np.asarray(a[:count]) for name, a in arrays.items()}
                return _cast(graph, arrays, dtype), f"{len(next(iter(arrays.values())))} samples of the spec's data"
            note = "random (the spec's data does not feed its inputs by name)"
    else:
        note = "random (the spec has no data)"
    return _cast(graph, _random_inputs(graph, count), dtype), note


def _random_inputs(graph: ModelGraph, count: int) -> dict[str, np.ndarray]:
    """Standard normal floats; for ids, tokens of every valid id, padded with 0 at the end of some rows."""
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for name, item in graph.spec.inputs.items():
        shape = (count, *item.shape)
        if item.dtype == "float":
            arrays[name] = rng.standard_normal(shape)
            continue
        tables = [n.layer.input_dim for n in graph.nodes if isinstance(n.layer, Embedding) and name in n.inputs]
        size = min(tables, default=2)
        ids = rng.integers(1, max(size, 2), size=shape)
        if ids.ndim == 2:  # sequences: padding (id 0) after a random length, as masked sequences are
            lengths = rng.integers(1, shape[1] + 1, size=count)
            ids[np.arange(shape[1])[None, :] >= lengths[:, None]] = 0
        arrays[name] = ids
    return arrays


def _cast(graph: ModelGraph, arrays: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    return {
        name: np.asarray(arrays[name]).astype(dtype if item.dtype == "float" else item.dtype)
        for name, item in graph.spec.inputs.items()
    }


def expected_outputs(
    graph: ModelGraph, weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], dtype: str
) -> dict[str, dict[str, np.ndarray]]:
    """What the file must compute: ``{"reference (float64)": outputs, "torch (float32)": ..., ...}``."""
    expected = {"reference (float64)": reference_forward(graph, weights, inputs).outputs}
    for name in backend_registry.BACKENDS:
        model = compile_spec(graph.spec, backend=name, dtype=dtype, device="cpu", weights=weights)
        result = model.predict(inputs)
        expected[f"{name} ({dtype})"] = result if isinstance(result, dict) else {graph.outputs[0]: result}
    return expected


def verify(
    runner: Runner,
    graph: ModelGraph,
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, Mapping[str, np.ndarray]],
    bound: float,
    source: str,
) -> Verification:
    """Run the file on ``inputs`` and compare every output with every expected computation."""
    actual = runner(inputs)
    rows = []
    for output in graph.outputs:
        for against, values in expected.items():
            rows.append(_compare(output, against, actual.get(output), np.asarray(values[output]), bound))
    return Verification(rows, source, len(next(iter(inputs.values()))))


def _compare(output: str, against: str, actual: np.ndarray | None, wanted: np.ndarray, bound: float) -> Comparison:
    if actual is None:
        return Comparison(output, against, np.inf, np.inf, bound, "the file has no such output")
    actual = np.asarray(actual)
    if actual.shape != wanted.shape:
        problem = f"expected shape {list(wanted.shape)}, received {list(actual.shape)}"
        return Comparison(output, against, np.inf, np.inf, bound, problem)
    difference = np.abs(actual.astype(np.float64) - wanted.astype(np.float64))
    max_abs = float(difference.max()) if difference.size else 0.0
    if not np.isfinite(max_abs):  # NaN or inf where the expected value is finite
        max_abs = np.inf
    scale = float(np.abs(wanted).max()) if wanted.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
    return Comparison(output, against, max_abs, max_rel, bound)


def table(format_name: str, runtime: str, verification: Verification, markdown: bool = False) -> str:
    """The verification table: one row per output and expected computation."""
    header = ["format", "runtime", "output", "compared with", "max abs diff", "max rel diff", "bound", "result"]
    rows = [
        [
            format_name,
            runtime,
            row.output,
            row.against,
            f"{row.max_abs:.2e}",
            f"{row.max_rel:.2e}",
            f"{row.bound:.0e}",
            "pass" if row.passed else f"FAIL{': ' + row.problem if row.problem else ''}",
        ]
        for row in verification.rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(line[k]) for line in [header, *rows]) for k in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]
    )
