"""Measured parity figures for the README: how closely the backends agree.

Usage: python benchmarks/parity_report.py [--steps 200]
For every config: forward and gradient agreement (every backend against the numpy reference,
gradients of every backend against the first's, float64 and float32), and the float64 training
trajectory of every backend over --steps steps (batch 64, first 3,200 MNIST training images;
the worst pair), as Markdown.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from trajectories import train_all

import archspec
from archspec.api import load_with_graph
from archspec.backend import BACKENDS
from archspec.data import load_dataset
from archspec.initializers import canonical_weights
from archspec.reference.forward import reference_forward

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def scaled(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def model_agreement(path: Path, dtype: str) -> tuple[float, float]:
    """(worst output error vs the reference over every backend and mode, worst gradient error of a
    backend against the first backend)."""
    spec, graph = load_with_graph(path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, *graph.spec.inputs[next(iter(graph.spec.inputs))].shape)).astype(dtype)
    weights = canonical_weights(graph)
    worst_output, worst_gradient = 0.0, 0.0
    for training in (False, True):
        reference = reference_forward(
            graph, {k: v.astype(dtype).astype(np.float64) for k, v in weights.items()}, x, training=training, step=3
        )
        gradients = []
        for backend in BACKENDS:
            model = archspec.compile(spec, backend=backend, dtype=dtype)
            output = model.forward(x, training=training, step=3)[graph.outputs[0]]
            worst_output = max(worst_output, scaled(output, reference.outputs[graph.outputs[0]]))
            model = archspec.compile(spec, backend=backend, dtype=dtype)
            cotangent = np.random.default_rng(1).standard_normal(output.shape).astype(dtype)
            gradients.append(model.gradients(x, {graph.outputs[0]: cotangent}, training=training, step=3))
        (pa, ia), *others = gradients
        for pb, ib in others:
            for name in pa:
                worst_gradient = max(worst_gradient, scaled(pb[name], pa[name]))
            for name in ia:
                worst_gradient = max(worst_gradient, scaled(ib[name], ia[name]))
    return worst_output, worst_gradient


def trajectory(path: Path, steps: int) -> tuple[float, float] | None:
    spec = archspec.load(path)
    if spec.data is None or spec.data.dataset != "mnist":
        return None
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={"batch_size": 64})})
    splits = load_dataset({"dataset": "mnist", "view": spec.data.view})
    data = {"train": (splits.train[0][:3200], splits.train[1][:3200])}
    result, _ = train_all(spec, data, dtype="float64", steps=steps)
    return result.loss_gap, result.weight_gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; CPU; backends: {', '.join(BACKENDS)}\n")
    others = "/".join(BACKENDS[1:]) or "-"
    print(
        f"| config | output vs reference, float64 | float32 | gradients {others} vs {BACKENDS[0]}, float64 | "
        f"float32 | per-step loss, {args.steps} steps, float64 | final weights, float64 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in CONFIGS:
        out64, grad64 = model_agreement(path, "float64")
        out32, grad32 = model_agreement(path, "float32")
        gaps = trajectory(path, args.steps)
        loss_gap, weight_gap = (f"{gaps[0]:.1e}", f"{gaps[1]:.1e}") if gaps else ("", "")
        print(
            f"| {path.stem} | {out64:.1e} | {out32:.1e} | {grad64:.1e} | {grad32:.1e} | {loss_gap} | {weight_gap} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
