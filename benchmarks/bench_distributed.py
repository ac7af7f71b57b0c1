"""Data-parallel scaling: throughput of 1 and 2 workers on each backend, on this machine.

Usage: python benchmarks/bench_distributed.py [--repeats 3] [--models mlp,cnn] [--workers 1,2]
           [--steps N] [--out FILE] [--json FILE]

Every run is ``archspec train SPEC --backend B --workers N`` in a fresh process (float32,
CPU, the spec's own MNIST data). Per run it records the training throughput archspec
reports (samples per second over the optimizer steps only: start-up, data loading and
evaluation excluded) and the wall time of the whole command (start-up included). The MLP
trains one full epoch (422 steps of 128); the CNN the first ``--steps`` batches (default 100).
Workers split the cores (``cores // workers`` threads each), as the launcher does.

Reported per backend, model and worker count: the median over ``--repeats`` runs, the
speed-up over 1 worker, and the scaling efficiency = speed-up / workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_training import machine_info  # noqa: E402

CONFIGS = {"mlp": "configs/mnist_mlp.yaml", "cnn": "configs/mnist_cnn.yaml"}
DEFAULT_STEPS = {"mlp": 0, "cnn": 100}  # 0: one full epoch


def one_run(backend: str, model: str, workers: int, steps: int, timeout: float) -> dict:
    """One training command; its throughput from metrics.json and its wall time."""
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as folder:
        command = [
            sys.executable,
            "-m",
            "archspec",
            "train",
            CONFIGS[model],
            "--backend",
            backend,
            "--quiet",
            "--epochs",
            "1",
            "--dtype",
            "float32",
            "--out",
            folder,
            "--workers",
            str(workers),
        ]
        if steps:
            command += ["--max-steps", str(steps)]
        started = time.perf_counter()
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
    timings = metrics["timings"]
    return {
        "samples_per_second": timings["samples_per_second"],
        "train_seconds": timings["train_seconds"],
        "wall_seconds": wall,
        "steps": metrics["steps"],
    }


def run_benchmark(backends, models, worker_counts, repeats: int, steps: int | None, timeout: float) -> dict:
    rows = []
    for model in models:
        model_steps = DEFAULT_STEPS[model] if steps is None else steps
        for backend in backends:
            baseline = None
            for workers in worker_counts:
                runs = []
                for repeat in range(repeats):
                    print(f"{model} {backend} x{workers} run {repeat + 1}/{repeats}", file=sys.stderr, flush=True)
                    runs.append(one_run(backend, model, workers, model_steps, timeout))
                rate = statistics.median(r["samples_per_second"] for r in runs)
                if workers == 1:
                    baseline = rate
                speedup = rate / baseline if baseline else None
                rows.append(
                    {
                        "model": model,
                        "backend": backend,
                        "workers": workers,
                        "steps": runs[0]["steps"],
                        "samples_per_second": rate,
                        "runs": [r["samples_per_second"] for r in runs],
                        "train_seconds": statistics.median(r["train_seconds"] for r in runs),
                        "wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
                        "speedup": speedup,
                        "efficiency": speedup / workers if speedup else None,
                    }
                )
    return {"machine": machine_info(), "repeats": repeats, "rows": rows}


def render(report: dict) -> str:
    machine = report["machine"]
    lines = [
        "# Distributed training: 1 vs 2 workers",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; load average at the start {machine['load_average']}; "
        f"{', '.join(f'{k} {v}' for k, v in machine['versions'].items())}.",
        f"Medians of {report['repeats']} runs, each a fresh `archspec train --workers N` (float32, CPU). "
        "Throughput counts optimizer steps only; wall time includes start-up and evaluation.",
        "",
        "| model | backend | workers | steps | train samples/s | speed-up | efficiency | train (s) | wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        speedup = "" if row["speedup"] is None else f"{row['speedup']:.2f}"
        efficiency = "" if row["efficiency"] is None else f"{row['efficiency']:.2f}"
        lines.append(
            f"| {row['model']} | {row['backend']} | {row['workers']} | {row['steps']} | "
            f"{row['samples_per_second']:,.0f} | {speedup} | {efficiency} | {row['train_seconds']:.2f} | "
            f"{row['wall_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--backends", default="torch,tensorflow")
    parser.add_argument("--workers", default="1,2", help="worker counts; the first is the baseline (default 1,2)")
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps per run (default: mlp one epoch, cnn 100)"
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", help="write the Markdown table here")
    parser.add_argument("--json", help="write the raw figures here")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in CONFIGS]
    if unknown:
        parser.error(f"expected models among {list(CONFIGS)}, received {unknown}")
    counts = [int(w) for w in args.workers.split(",")]
    if counts[0] != 1:
        parser.error("expected the first worker count to be 1 (the baseline)")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    report = run_benchmark(backends, models, counts, args.repeats, args.steps, args.timeout)
    text = render(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
