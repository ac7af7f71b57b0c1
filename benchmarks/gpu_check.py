"""The GPU check (``make gpu-check``): parity and speed of every config on every backend, on CUDA.

Usage: python benchmarks/gpu_check.py [--device cuda|cpu] [--steps 40] [--warmup 10]
           [--configs NAME,...] [--out FILE]

For every config in ``configs/``, trains ``--steps`` steps on every registered backend, on
the first ``steps * batch_size`` training samples of the config's own data set, in float64
and in float32, and compares every two backends (``trajectories.py``) against the parity
suite's bounds (``tests/parity/trajectory.py``): float64 per-step loss within
1e-9 relative and final weights within 1e-8; float32 per-step loss within 2% (the suite's
float32 loss bound; float32 weights are reported, not bounded). Speed is steps/s of the
float32 run after ``--warmup`` steps (tracing, compilation and autotuning excluded), the
device waited for at both ends of the timed span.

Prints a Markdown table and writes it to ``--out``; exits 1 when a config is out of bounds,
2 without a CUDA device (``--device cpu`` is a dry run of the same script on the CPU) or when
a run cannot start (MNIST is found as by ``archspec data``: ``ARCHSPEC_DATA_DIR``, which the
Makefile sets).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

from trajectories import LOSS_BOUND, WEIGHT_BOUND, train_all, training_data

import archspec
from archspec.backend import BACKENDS
from archspec.errors import ArchSpecError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
DTYPES = ("float64", "float32")


def cuda_problem() -> str | None:
    """Why the frameworks cannot train on CUDA here, or None when every one sees a GPU."""
    import torch

    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False (a CUDA build of torch and a visible GPU are needed)"
    import tensorflow as tf  # only now: its start-up log lines would bury the one-line answer above

    if not tf.config.list_physical_devices("GPU"):
        return "TensorFlow lists no GPU (install with FRAMEWORKS=requirements/frameworks-gpu.txt)"
    if "jax" in BACKENDS:
        import jax

        if not any(device.platform == "gpu" for device in jax.devices()):
            return "JAX lists no GPU (install with FRAMEWORKS=requirements/frameworks-gpu.txt: jax[cuda12])"
    return None


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (CPU)"


def check(paths, device: str, steps: int, warmup: int) -> list[dict]:
    rows = []
    for path in paths:
        started = time.perf_counter()
        spec = archspec.load(path)
        data = training_data(spec, steps * spec.training.batch_size)
        row = {"config": path.stem, "batch": spec.training.batch_size}
        for dtype in DTYPES:
            result, _ = train_all(spec, data, dtype=dtype, steps=steps, device=device, warmup=warmup)
            row[dtype] = result
        row["ok"] = all(row[dtype].within_bounds for dtype in DTYPES)
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        print(f"{path.stem}: {'ok' if row['ok'] else 'OUT OF BOUNDS'} ({row['seconds']:.1f} s)", file=sys.stderr)
    return rows


def markdown(rows: list[dict], device: str, steps: int, warmup: int, seconds: float) -> str:
    def speed(value: float) -> str:
        return "" if math.isnan(value) else f"{value:,.0f}"

    lines = [
        f"GPU check on {device_name(device)}: {steps} steps per config, backend and dtype; "
        f"speed after {warmup} warm-up steps; {seconds:.0f} s in all.",
        "",
        f"Bounds (tests/parity): float64 loss <= {LOSS_BOUND['float64']:g}, weights <= "
        f"{WEIGHT_BOUND['float64']:g}; float32 loss <= {LOSS_BOUND['float32']:g}.",
        "",
        "| config | batch | float64 loss gap | float64 weight gap | float32 loss gap | float32 weight gap | "
        + "".join(f"{backend} steps/s (float32) | " for backend in BACKENDS)
        + "within bounds |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(BACKENDS) + "---|",
    ]
    for row in rows:
        f64, f32 = row["float64"], row["float32"]
        lines.append(
            f"| {row['config']} | {row['batch']} | {f64.loss_gap:.1e} | {f64.weight_gap:.1e} | {f32.loss_gap:.1e} "
            f"| {f32.weight_gap:.1e} | "
            + "".join(f"{speed(f32.steps_per_second[backend])} | " for backend in BACKENDS)
            + f"{'yes' if row['ok'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=int, default=40, help="training steps per config, backend and dtype")
    parser.add_argument("--warmup", type=int, default=10, help="steps left out of the speed figure")
    parser.add_argument("--configs", help="comma-separated config names (default: every file in configs/)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu_check.md")
    args = parser.parse_args(argv)
    if args.steps < 2 or not 0 < args.warmup < args.steps:
        parser.error(f"expected --steps >= 2 and 0 < --warmup < --steps, received {args.steps} and {args.warmup}")
    paths = CONFIGS
    if args.configs:
        known = {path.stem: path for path in CONFIGS}
        unknown = [name for name in args.configs.split(",") if name not in known]
        if unknown:
            parser.error(f"expected config names among {sorted(known)}, received {unknown}")
        paths = [known[name] for name in args.configs.split(",")]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The frameworks share one GPU in this process: TensorFlow and JAX must not reserve all its memory.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.device == "cuda":
        problem = cuda_problem()
        if problem:
            print(f"no CUDA device: {problem}; `--device cpu` runs the same check on the CPU", file=sys.stderr)
            return 2
    started = time.perf_counter()
    try:
        rows = check(paths, args.device, args.steps, args.warmup)
    except ArchSpecError as error:  # missing data, a backend that cannot start: one line, not a traceback
        print(f"gpu check failed: {error}", file=sys.stderr)
        return 2
    table = markdown(rows, args.device, args.steps, args.warmup, time.perf_counter() - started)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
