"""Training speed of archspec against hand-written PyTorch, Keras and Flax, same models, same data.

Usage: python benchmarks/bench_training.py [--repeats 2] [--processes 2] [--models mlp,cnn,lstm,tcn,transformer,masked_lstm]
           [--implementations all|eager|NAME,...] [--steps N] [--threads N] [--quick]
           [--out FILE] [--json FILE]

Every implementation of every model runs in its own fresh Python process (imports and
thread pools never mix), float32 on the CPU, on the training split of the spec's own data
section (MNIST, 54000 samples: ``validation_split: 0.1``; for the masked LSTM its synthetic
token sequences). Per implementation it reports:

- epoch (s): the median of the ``--repeats`` epochs each of ``--processes`` fresh processes
  times after its warm-up epoch (the processes of all implementations run in interleaved
  rounds, so a slow spell of the machine does not fall on one implementation). The MLP and
  the masked LSTM run full epochs; the other models run epochs of ``--steps`` batches (default 150) on the
  first ``steps * batch_size`` training samples, scaled to a full epoch by sample count.
- train samples/s, and inference samples/s over the test split (batches of 1024,
  median of ``max(3, repeats)`` after a warm-up call).
- GFLOP/s achieved in training and its share of the machine's float32 matmul peak
  (``torch.matmul`` of two 2048x2048 matrices, median of 10 runs); see ``train_flops``.
- ratios: archspec-torch / the faster hand-written torch loop, archspec-tensorflow /
  Keras ``model.fit``, archspec-jax / the faster hand-written Flax NNX + optax loop
  (``nnx.jit`` fed numpy batches, or ``jax.jit`` over the split state with the data on the
  device; MLP, CNN and LSTM); each compiled archspec variant / the fastest hand-written code of
  its framework, compiled or not (a user would pick the faster). Target: <= 1.05.

``--quick`` (1 repeat, 20 steps, 1 inference run) is for the smoke test, not for numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "mlp": "configs/mnist_mlp.yaml",
    "cnn": "configs/mnist_cnn.yaml",
    "lstm": "configs/mnist_lstm.yaml",
    "tcn": "configs/mnist_tcn.yaml",
    "transformer": "configs/mnist_transformer.yaml",
    "masked_lstm": "configs/sequences_masked_lstm.yaml",
}
TARGET = 1.05
RESULT_MARK = "BENCH-RESULT "
DEFAULT_STEPS = {"mlp": 0, "cnn": 150, "lstm": 150, "tcn": 150, "transformer": 150, "masked_lstm": 0}
"""Batches per timed epoch; 0 means the full training split."""
QUICK_STEPS = 20
PEAK_SIZE = 2048


@dataclass(frozen=True)
class Implementation:
    """One way of training a model; ``reference`` names what its ratio divides by."""

    key: str
    label: str
    reference: tuple[str, ...] = ()  # the fastest of these is the denominator of the ratio


IMPLEMENTATIONS = (
    Implementation("torch_tensor_loop", "torch, hand-written: tensor-indexed loop"),
    Implementation("torch_dataloader", "torch, hand-written: DataLoader loop"),
    Implementation("archspec_torch", "archspec torch", ("torch_tensor_loop", "torch_dataloader")),
    Implementation("keras_fit", "Keras model.fit"),
    Implementation("archspec_tensorflow", "archspec tensorflow", ("keras_fit",)),
    Implementation("torch_compile_loop", "torch, hand-written: tensor loop + torch.compile"),
    Implementation(
        "archspec_torch_compiled",
        "archspec torch, compiled=True",
        ("torch_tensor_loop", "torch_dataloader", "torch_compile_loop"),
    ),
    Implementation("keras_fit_xla", "Keras model.fit, jit_compile=True"),
    Implementation(
        "archspec_tensorflow_compiled", "archspec tensorflow, compiled=True", ("keras_fit", "keras_fit_xla")
    ),
    Implementation("flax_nnx_jit", "Flax NNX, hand-written: nnx.jit step, numpy batches"),
    Implementation("flax_jax_jit", "Flax NNX, hand-written: jax.jit over split state, data on device"),
    Implementation("archspec_jax", "archspec jax", ("flax_nnx_jit", "flax_jax_jit")),
)
BY_KEY = {impl.key: impl for impl in IMPLEMENTATIONS}
EAGER = tuple(key for key in BY_KEY if "compile" not in key and "xla" not in key)

COLUMNS = (
    "implementation",
    "epoch (s)",
    "train samples/s",
    "inference samples/s",
    "train GFLOP/s",
    "% of peak",
    "warm-up epoch (s)",
    "start-up (s)",
    "ratio",
    "compared with",
    "target <= 1.05",
)


# --- FLOPs --------------------------------------------------------------------------


def forward_multiply_adds(spec) -> int:
    """Multiply-adds of one sample's forward pass in the matmul-like layers, from the spec's shapes.

    dense:   prod(input_shape[:-1]) * in_features * units
    conv1d, conv2d:  prod(output_shape) * prod(kernel_size) * in_channels
    rnn:     steps * gates * units * (features + units)   (gates: simple_rnn 1, gru 3, lstm 4)
    bidirectional: twice its inner layer.
    multi_head_attention: the four projections, plus heads * Tq * Tk * (key_dim + value_dim)
             for the scores and the weighted sum of the values.
    Element-wise work (activations, pooling, dropout, biases, the loss, the optimizer) is not counted.
    """
    from archspec.graph import resolve

    total = 0
    for node in resolve(spec).nodes:
        layer, shape_in, shape_out = node.layer, node.input_shapes[0] if node.input_shapes else (), node.output_shape
        if node.type == "dense":
            total += math.prod(shape_in[:-1]) * shape_in[-1] * layer.units
        elif node.type in ("conv1d", "conv2d"):
            total += math.prod(shape_out) * math.prod(layer.kernel_sizes) * shape_in[-1]
        elif node.type == "multi_head_attention":
            total += _attention_multiply_adds(layer, node.input_shapes, shape_out)
        elif node.type in ("simple_rnn", "lstm", "gru"):
            total += _recurrent_multiply_adds(layer, shape_in)
        elif node.type == "bidirectional":
            total += 2 * _recurrent_multiply_adds(layer.layer, shape_in)
    return total


def _attention_multiply_adds(layer, input_shapes, shape_out) -> int:
    query = input_shapes[0]
    value = input_shapes[1] if len(input_shapes) > 1 else query
    key = input_shapes[2] if len(input_shapes) > 2 else value
    heads, key_dim, value_dim = layer.num_heads, layer.key_dim, layer.value_size
    projections = (
        query[0] * query[1] * heads * key_dim
        + key[0] * key[1] * heads * key_dim
        + value[0] * value[1] * heads * value_dim
        + query[0] * heads * value_dim * shape_out[-1]
    )
    return projections + heads * query[0] * key[0] * (key_dim + value_dim)


def _recurrent_multiply_adds(layer, shape_in) -> int:
    steps, features = shape_in
    return steps * layer.gates * layer.units * (features + layer.units)


def train_flops(spec) -> int:
    """FLOPs of one training sample: forward + backward = 3 x forward, 2 FLOPs per multiply-add."""
    return 3 * 2 * forward_multiply_adds(spec)


# --- the worker: one implementation in a fresh process ------------------------------


PAIRS = {
    "torch": ("archspec_torch", "torch_tensor_loop", "torch_dataloader"),
    "tensorflow": ("archspec_tensorflow", "keras_fit"),
    "jax": ("archspec_jax", "flax_jax_jit", "flax_nnx_jit"),
}
"""Per framework: archspec's eager implementation, then the hand-written code it is paired with."""


def worker(job: dict) -> dict:
    """Run one job in this process and return its raw measurements (or ``{"error": ...}``)."""
    if job["kind"] == "peak":
        return _measure_peak(job["runs"])
    try:
        if job["kind"] == "paired":
            return _measure_paired(job)
        return _measure_training(job)
    except Exception as error:  # noqa: BLE001 (any failure: the row becomes "n/a" with this reason; the run goes on)
        message = " ".join(f"{type(error).__name__}: {error}".split())
        return {"error": message[:300]}


def _measure_peak(runs: int) -> dict:
    import torch

    a = torch.randn(PEAK_SIZE, PEAK_SIZE)
    b = torch.randn(PEAK_SIZE, PEAK_SIZE)
    for _ in range(3):
        torch.matmul(a, b)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.matmul(a, b)
        seconds.append(time.perf_counter() - start)
    return {"gflops": 2 * PEAK_SIZE**3 / statistics.median(seconds) / 1e9, "threads": torch.get_num_threads()}


def _measure_training(job: dict) -> dict:
    import archspec
    from archspec.data import load_dataset

    spec = archspec.load(ROOT / CONFIGS[job["model"]])
    splits = load_dataset(spec.data.model_dump(mode="json"), seed=spec.training.seed)
    x, y = splits.train
    if job["samples"] < len(x):
        x, y = x[: job["samples"]], y[: job["samples"]]
    x_test = splits.test[0]
    options = {
        "model": job["model"],
        "spec": spec,
        "x": x,
        "y": y,
        "x_test": x_test,
        "epochs": 1 + job["repeats"],
        "inference_runs": job["inference_runs"],
    }
    started = time.perf_counter()
    run = {
        "torch_tensor_loop": _torch_handwritten,
        "torch_dataloader": _torch_handwritten,
        "torch_compile_loop": _torch_handwritten,
        "keras_fit": _keras_handwritten,
        "keras_fit_xla": _keras_handwritten,
        "flax_nnx_jit": _flax_handwritten,
        "flax_jax_jit": _flax_handwritten,
    }.get(job["impl"], _archspec)
    result = run(job["impl"], started=started, **options)
    result["samples_per_epoch"] = len(x)
    result["test_samples"] = len(x_test)
    return result


def _measure_paired(job: dict) -> dict:
    """One framework's implementations in this one process, alternating round after round:
    each run builds its model, trains a warm-up epoch and one timed epoch. Process-level
    variation (thread placement, memory layout: +-15% between processes on the 2-core VM
    here) then falls on every implementation alike."""
    epochs = {impl: [] for impl in job["impls"]}
    for _ in range(job["rounds"]):
        for impl in job["impls"]:
            raw = _measure_training({**job, "impl": impl, "repeats": 1, "inference_runs": 0})
            epochs[impl].append(raw["epoch_seconds"][1])
    return {"epoch_seconds": epochs}


def _timed_inference(infer, runs: int) -> list[float]:
    infer()  # warm-up: traces, allocator, first-call caches
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        infer()
        seconds.append(time.perf_counter() - start)
    return seconds


def _torch_handwritten(impl, *, model, spec, x, y, x_test, epochs, inference_runs, started) -> dict:
    import handwritten
    import torch

    torch.manual_seed(spec.training.seed)
    network = handwritten.torch_model(model)
    optimizer = handwritten.torch_optimizer(network, spec.training.optimizer)
    trained = torch.compile(network) if impl == "torch_compile_loop" else network
    inputs, targets = handwritten.torch_inputs(model, x), torch.from_numpy(y)
    test_inputs = handwritten.torch_inputs(model, x_test)
    startup = time.perf_counter() - started
    train = handwritten.train_torch_dataloader if impl == "torch_dataloader" else handwritten.train_torch_tensor_loop
    epoch_seconds = train(
        trained, inputs, targets, epochs=epochs, batch_size=spec.training.batch_size, optimizer=optimizer
    )
    infer = handwritten.infer_torch_dataloader if impl == "torch_dataloader" else handwritten.infer_torch
    inference_seconds = _timed_inference(lambda: infer(trained, test_inputs), inference_runs)
    return {
        "epoch_seconds": epoch_seconds,
        "inference_seconds": inference_seconds,
        "startup_seconds": startup,
        "note": _threads_note("torch"),
    }


def _keras_handwritten(impl, *, model, spec, x, y, x_test, epochs, inference_runs, started) -> dict:
    import handwritten
    import keras

    keras.utils.set_random_seed(spec.training.seed)
    network = handwritten.keras_model(model)
    handwritten.compile_keras(network, spec.training.optimizer, jit_compile=True if impl == "keras_fit_xla" else "auto")
    startup = time.perf_counter() - started
    epoch_seconds = handwritten.train_keras_fit(network, x, y, epochs=epochs, batch_size=spec.training.batch_size)
    inference_seconds = _timed_inference(lambda: handwritten.infer_keras(network, x_test), inference_runs)
    return {
        "epoch_seconds": epoch_seconds,
        "inference_seconds": inference_seconds,
        "startup_seconds": startup,
        "note": f"jit_compile resolved to {network.jit_compile}, {_threads_note('tensorflow')}",
    }


def _flax_handwritten(impl, *, model, spec, x, y, x_test, epochs, inference_runs, started) -> dict:
    import handwritten

    network = handwritten.flax_model(model, spec.training.seed)
    optimizer = handwritten.flax_optimizer(network, spec.training.optimizer)
    startup = time.perf_counter() - started
    epoch_seconds = handwritten.train_flax(
        impl, network, x, y, epochs=epochs, batch_size=spec.training.batch_size, optimizer=optimizer
    )
    inference_seconds = _timed_inference(lambda: handwritten.infer_flax(network, x_test), inference_runs)
    return {
        "epoch_seconds": epoch_seconds,
        "inference_seconds": inference_seconds,
        "startup_seconds": startup,
        "note": _threads_note("jax"),
    }


def _threads_note(framework: str) -> str:
    if framework == "torch":
        import torch

        return f"{torch.get_num_threads()} torch threads"
    if framework == "jax":
        return f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    intra = os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
    return f"TensorFlow intra-op threads: {intra}"


def _archspec(impl, *, model, spec, x, y, x_test, epochs, inference_runs, started) -> dict:
    import handwritten

    import archspec

    backend = next(name for name in ("torch", "tensorflow", "jax") if impl.startswith(f"archspec_{name}"))
    epoch_seconds = []

    class EpochTimer:
        def on_epoch_end(self, epoch, logs):
            epoch_seconds.append(logs["seconds"])

    result = archspec.train(
        spec,
        backend=backend,
        epochs=epochs,
        dtype="float32",
        device="cpu",
        data={"train": (x, y)},
        compiled=impl.endswith("_compiled"),
        evaluate_every_epoch=False,
        callbacks=[EpochTimer()],
    )
    timings = result.timings
    inference_seconds = _timed_inference(
        lambda: result.model.predict(x_test, batch_size=handwritten.INFERENCE_BATCH), inference_runs
    )
    return {
        "epoch_seconds": epoch_seconds,
        "inference_seconds": inference_seconds,
        "startup_seconds": timings["import_seconds"] + timings["build_seconds"],
        "note": f"import {timings['import_seconds']:.2f} s + build {timings['build_seconds']:.2f} s, "
        f"{_threads_note(backend)}",
    }


# --- the driver: one process per job, then the numbers ------------------------------


@dataclass
class Row:
    """One implementation of one model, as measured; ``error`` set means the row is n/a."""

    model: str
    impl: str
    label: str
    error: str | None = None
    epoch_seconds: float = math.nan  # median, scaled to a full epoch
    warmup_seconds: float = math.nan  # the first epoch as run (tracing/compilation included)
    train_samples_per_second: float = math.nan
    inference_samples_per_second: float = math.nan
    train_gflops: float = math.nan
    peak_share: float = math.nan
    startup_seconds: float = math.nan
    ratio: float | None = None
    reference: str | None = None
    note: str = ""
    raw: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Report:
    machine: dict
    settings: dict
    peak_gflops: float
    models: dict  # model -> {"name", "timing", "rows": [Row]}
    paired: dict = field(default_factory=dict)  # model -> [one row per framework], see measure_paired


def run_job(job: dict, timeout: float, threads: int | None = None) -> dict:
    """Run ``job`` in a fresh Python process (this file with ``--worker``); its result dict.

    ``threads`` caps every framework's thread pools through the environment, so the
    worker's imports (archspec's included) stay inside the timed start-up.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    if threads:
        env.update({name: str(threads) for name in _THREAD_VARIABLES})
        if threads == 1:  # XLA has no thread-count variable; one thread: no multi-threaded Eigen
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
    # An empty compile cache per process: torch.compile's warm-up epoch is then a cold start
    # every time, not whatever an earlier run left in /tmp/torchinductor_$USER.
    with tempfile.TemporaryDirectory(prefix="bench-inductor-") as cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            process = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(process.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    tail = " ".join(process.stderr.strip().splitlines()[-3:])
    return {"error": f"worker exited with code {process.returncode}: {tail[-300:]}"}


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def measure_peak(runs: int, timeout: float = 300, threads: int | None = None) -> tuple[float, int]:
    result = run_job({"kind": "peak", "runs": runs}, timeout, threads)
    if "error" in result:
        raise RuntimeError(f"the matmul peak could not be measured: {result['error']}")
    return result["gflops"], result["threads"]


def measure_model(
    model: str,
    implementations,
    *,
    repeats: int,
    steps: int,
    inference_runs: int,
    peak_gflops: float,
    timeout: float,
    threads: int | None = None,
    log=None,
    processes: int = 1,
) -> dict:
    """Every implementation of ``model``, each in ``processes`` fresh processes run in
    interleaved rounds (A B C, A B C, ...: a slow spell of the machine hits all alike);
    rows with ratios filled in."""
    import archspec

    spec = archspec.load(ROOT / CONFIGS[model])
    full_samples = _train_samples(spec)
    batch = spec.training.batch_size
    samples = full_samples if steps == 0 else min(full_samples, steps * batch)
    flops = train_flops(spec)
    runs = {key: [] for key in implementations}
    for _ in range(processes):
        for key in implementations:
            job = {
                "kind": "train",
                "model": model,
                "impl": key,
                "repeats": repeats,
                "samples": samples,
                "inference_runs": inference_runs,
            }
            runs[key].append(run_job(job, timeout, threads))
    rows = []
    for key in implementations:
        impl = BY_KEY[key]
        raw = _merge_processes(runs[key])
        row = _row(model, impl, raw, full_samples, flops, peak_gflops)
        rows.append(row)
        if log:
            log(
                f"{model:5s} {impl.label:50s} "
                + (f"{row.epoch_seconds:8.3f} s/epoch" if row.ok else f"n/a: {row.error}")
            )
    _fill_ratios(rows)
    steps_run = math.ceil(samples / batch)
    full_steps = math.ceil(full_samples / batch)
    if samples == full_samples:
        timing = f"full epochs of {full_samples} samples ({full_steps} steps)"
    else:
        timing = (
            f"{steps_run} steps ({samples} samples) per timed epoch, scaled to a full epoch "
            f"of {full_samples} samples ({full_steps} steps)"
        )
    return {"name": spec.name, "timing": timing, "rows": rows, "train_flops_per_sample": flops, "batch_size": batch}


def _merge_processes(results: list[dict]) -> dict:
    """One implementation's processes as one measurement: every process's timed epochs
    (its warm-up epoch dropped) and inference runs pooled; the first process's warm-up and
    start-up; ``process_medians``: each process's median epoch, to show the spread."""
    failed = [r for r in results if "error" in r]
    if failed:
        return failed[0]
    first = results[0]
    merged = {
        **first,
        "epoch_seconds": [first["epoch_seconds"][0]] + [t for r in results for t in r["epoch_seconds"][1:]],
        "inference_seconds": [t for r in results for t in r["inference_seconds"]],
    }
    merged["process_medians"] = [statistics.median(r["epoch_seconds"][1:]) for r in results if r["epoch_seconds"][1:]]
    return merged


def _train_samples(spec) -> int:
    from archspec.data import load_dataset

    return len(load_dataset(spec.data.model_dump(mode="json"), seed=spec.training.seed).train[0])


def _row(model: str, impl: Implementation, raw: dict, full_samples: int, flops: int, peak_gflops: float) -> Row:
    row = Row(model, impl.key, impl.label, raw=raw)
    if "error" in raw:
        row.error = raw["error"]
        return row
    timed = raw["epoch_seconds"][1:]
    if not timed:
        row.error = "no epoch after the warm-up epoch was timed"
        return row
    median = statistics.median(timed)
    row.epoch_seconds = median * full_samples / raw["samples_per_epoch"]
    row.warmup_seconds = raw["epoch_seconds"][0]
    row.train_samples_per_second = raw["samples_per_epoch"] / median
    row.inference_samples_per_second = raw["test_samples"] / statistics.median(raw["inference_seconds"])
    row.train_gflops = flops * row.train_samples_per_second / 1e9
    row.peak_share = row.train_gflops / peak_gflops
    row.startup_seconds = raw["startup_seconds"]
    row.note = raw.get("note", "")
    medians = raw.get("process_medians", [])
    if len(medians) > 1:
        scale = full_samples / raw["samples_per_epoch"]
        row.note += ("; " if row.note else "") + "per process: " + ", ".join(f"{m * scale:.3f}" for m in medians) + " s"
    return row


def _fill_ratios(rows: list[Row]) -> None:
    """archspec epoch time / the fastest of its measured references (None when none ran)."""
    by_key = {row.impl: row for row in rows}
    for row in rows:
        candidates = [by_key[key] for key in BY_KEY[row.impl].reference if key in by_key and by_key[key].ok]
        if row.ok and candidates:
            best = min(candidates, key=lambda r: r.epoch_seconds)
            row.ratio = row.epoch_seconds / best.epoch_seconds
            row.reference = best.label


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    versions = {}
    for package in ("torch", "tensorflow-cpu", "tensorflow", "keras", "jax", "flax", "optax", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    loads = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average": " ".join(f"{v:.2f}" for v in loads),
        "load_per_core": loads[0] / (os.cpu_count() or 1),
        "platform": platform.platform(),
    }


def run_benchmark(
    models=("mlp", "cnn", "lstm"),
    implementations=tuple(BY_KEY),
    *,
    repeats: int = 3,
    steps: int | None = None,
    quick: bool = False,
    timeout: float = 1800,
    threads: int | None = None,
    log=None,
    processes: int = 1,
    paired_rounds: int = 0,
) -> Report:
    """Measure every model with every implementation; ``steps`` None means the per-model default,
    ``threads`` None the frameworks' own thread counts."""
    if quick:
        repeats, processes, paired_rounds = 1, 1, min(paired_rounds, 1)
    inference_runs = 1 if quick else max(3, repeats)
    import archspec

    for model in models:  # a missing data set fails here, before minutes of measuring
        _train_samples(archspec.load(ROOT / CONFIGS[model]))
    machine = machine_info()
    peak, torch_threads = measure_peak(5 if quick else 10, timeout, threads)
    machine["torch_threads"] = torch_threads
    if log:
        log(f"matmul peak: {peak:.1f} GFLOP/s ({torch_threads} torch threads)")
    results = {}
    for model in models:
        model_steps = QUICK_STEPS if quick else (DEFAULT_STEPS[model] if steps is None else steps)
        results[model] = measure_model(
            model,
            implementations,
            repeats=repeats,
            steps=model_steps,
            inference_runs=inference_runs,
            peak_gflops=peak,
            timeout=timeout,
            threads=threads,
            log=log,
            processes=processes,
        )
    paired = {}
    for model in models if paired_rounds else ():
        model_steps = QUICK_STEPS if quick else (DEFAULT_STEPS[model] if steps is None else steps)
        paired[model] = measure_paired(
            model, implementations, rounds=paired_rounds, steps=model_steps, timeout=timeout, threads=threads, log=log
        )
    settings = {
        "repeats": repeats,
        "inference_runs": inference_runs,
        "quick": quick,
        "steps": steps,
        "threads": threads,
        "processes": processes,
        "paired_rounds": paired_rounds,
    }
    return Report(machine, settings, peak, results, paired)


def measure_paired(
    model: str, implementations, *, rounds: int, steps: int, timeout: float, threads: int | None, log=None
) -> list[dict]:
    """Per framework whose archspec implementation is measured: one process alternating it
    with the hand-written code (``PAIRS``); medians and the ratio to the fastest hand-written."""
    import archspec

    spec = archspec.load(ROOT / CONFIGS[model])
    full_samples = _train_samples(spec)
    samples = full_samples if steps == 0 else min(full_samples, steps * spec.training.batch_size)
    rows = []
    for framework, impls in PAIRS.items():
        if impls[0] not in implementations:
            continue
        job = {"kind": "paired", "model": model, "impls": impls, "rounds": rounds, "samples": samples}
        raw = run_job(job, timeout, threads)
        row = {"model": spec.name, "framework": framework, "rounds": rounds, "error": raw.get("error")}
        if row["error"] is None:
            scale = full_samples / samples
            medians = {impl: statistics.median(times) * scale for impl, times in raw["epoch_seconds"].items()}
            best = min(impls[1:], key=lambda impl: medians[impl])
            row.update(
                archspec=medians[impls[0]],
                reference=BY_KEY[best].label,
                reference_seconds=medians[best],
                ratio=medians[impls[0]] / medians[best],
                raw=raw["epoch_seconds"],
            )
            if log:
                log(
                    f"{model:5s} paired {framework:10s} archspec {row['archspec']:.3f} s vs {row['reference_seconds']:.3f} s "
                    f"({row['reference']}): ratio {row['ratio']:.3f}"
                )
        rows.append(row)
    return rows


# --- the table ----------------------------------------------------------------------


def _number(value: float, digits: int = 4) -> str:
    """``digits`` significant digits, no exponent for the magnitudes seen here."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def table_row(row: Row) -> list[str]:
    """One Markdown row, in ``COLUMNS`` order."""
    if not row.ok:
        return [row.label, f"n/a ({row.error})", *["n/a"] * (len(COLUMNS) - 2)]
    met = "" if row.ratio is None else ("met" if row.ratio <= TARGET else "**not met**")
    return [
        row.label,
        _number(row.epoch_seconds),
        _number(row.train_samples_per_second, 3),
        _number(row.inference_samples_per_second, 3),
        _number(row.train_gflops, 3),
        f"{100 * row.peak_share:.1f}%",
        _number(row.warmup_seconds),
        _number(row.startup_seconds, 3),
        "" if row.ratio is None else f"{row.ratio:.3f}",
        row.reference or "",
        met,
    ]


def render(report: Report) -> str:
    """The whole report as Markdown."""
    m = report.machine
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    lines = [
        "# Training speed: archspec vs hand-written PyTorch, Keras and Flax",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['platform']}); load average at start {m['load_average']}",
        f"- python {m['python']}; {versions}; torch uses {m['torch_threads']} threads"
        + (f" (--threads {report.settings['threads']} caps every framework)" if report.settings["threads"] else ""),
        f"- float32 matmul peak: {report.peak_gflops:.1f} GFLOP/s (torch.matmul {PEAK_SIZE}x{PEAK_SIZE}, median)",
        f"- float32, CPU, each implementation in {report.settings.get('processes', 1)} fresh process(es), "
        "run in interleaved rounds (every implementation once, then again); the spec's training split "
        "(MNIST train minus the last 10% for validation; the masked LSTM: its synthetic sequences); "
        "inference over the test split (MNIST: 10000 images) "
        f"in batches of 1024, median of {report.settings['inference_runs']} after a warm-up call",
        f"- epoch (s): median of the {report.settings['repeats']} epoch(s) each process times after its warm-up "
        "epoch, pooled over the processes (the note gives each process's median); "
        "train GFLOP/s = 3 x 2 x forward multiply-adds per sample (dense, conv, recurrent matmuls) x samples/s",
        "- warm-up epoch (s): the first epoch as run (same steps as a timed one, not scaled), "
        "tracing and compilation included; start-up (s): framework import + model build (archspec: "
        "its own import_seconds + build_seconds)",
        "- FLOPs: the 3x rule overcounts a first layer, whose input gradient no framework computes "
        "(for the MLP the real work is about 0.72x of the count); the peak is torch's (MKL) matmul, "
        "which other libraries (TensorFlow's oneDNN) can beat on some CPUs, so shares over 100% can occur",
        f"- ratio: archspec epoch time / the fastest compared implementation; target <= {TARGET}",
        "- settings: "
        + ", ".join(f"{key} {'default' if value is None else value}" for key, value in report.settings.items()),
    ]
    busy = m.get("load_per_core", 0.0) > 0.5
    if busy:
        lines.append(
            f"- **busy machine** (load average {m['load_average']} on {m['cores']} cores): other processes "
            "share the cores; torch's OpenMP threads suffer most. Rerun on a quiet machine, or with --threads 1"
        )
    if report.settings["quick"]:
        lines.append("- **quick mode**: 1 repeat, 20 steps: a smoke test, not a measurement")
    for result in report.models.values():
        lines += [
            "",
            f"## {result['name']}: {result['timing']}, batch {result['batch_size']}",
            f"train FLOPs per sample: {result['train_flops_per_sample']:,}",
            "",
        ]
        lines += _markdown_table(COLUMNS, [table_row(row) for row in result["rows"]])
        notes = [f"{row.label}: {row.note}" for row in result["rows"] if row.ok and row.note]
        if notes:
            lines += ["", "notes: " + "; ".join(notes)]
    summary = [
        [
            result["name"],
            row.label,
            row.reference,
            _number(row.epoch_seconds),
            f"{row.ratio:.3f}",
            "met" if row.ratio <= TARGET else "**not met**",
        ]
        for result in report.models.values()
        for row in result["rows"]
        if row.ratio is not None
    ]
    missing = [
        f"{result['name']} / {row.label}: {row.error}"
        for result in report.models.values()
        for row in result["rows"]
        if not row.ok
    ]
    lines += ["", "## Ratios", ""]
    lines += _markdown_table(
        ("model", "archspec", "compared with", "archspec epoch (s)", "ratio", f"target <= {TARGET}"), summary
    )
    if missing:
        lines += ["", "n/a:"] + [f"- {entry}" for entry in missing]
    pairs = [row for rows in report.paired.values() for row in rows]
    if pairs:
        lines += [
            "",
            "## Paired in one process",
            "",
            f"Per framework, one fresh process alternates archspec and the hand-written code "
            f"({report.settings['paired_rounds']} rounds; each run: build, a warm-up epoch, one timed epoch); "
            "medians, scaled to a full epoch. The ratio cancels the process-to-process variation that "
            "the tables above include.",
            "",
        ]
        body = []
        for row in pairs:
            if row["error"]:
                body.append([row["model"], row["framework"], f"n/a ({row['error']})", "", "", "", ""])
                continue
            body.append(
                [
                    row["model"],
                    row["framework"],
                    _number(row["archspec"]),
                    row["reference"],
                    _number(row["reference_seconds"]),
                    f"{row['ratio']:.3f}",
                    "met" if row["ratio"] <= TARGET else "**not met**",
                ]
            )
        lines += _markdown_table(
            (
                "paired model",
                "framework",
                "archspec epoch (s)",
                "hand-written (fastest)",
                "hand-written epoch (s)",
                "ratio",
                f"target <= {TARGET}",
            ),
            body,
        )
    return "\n".join(lines) + "\n"


def _markdown_table(header, rows) -> list[str]:
    align = ["---"] + ["---:" if any(_looks_numeric(r[i]) for r in rows) else "---" for i in range(1, len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def _looks_numeric(cell: str) -> bool:
    try:
        float(cell.replace(",", "").rstrip("%"))
    except ValueError:
        return False
    return True


# --- command line -------------------------------------------------------------------


def _implementations(text: str) -> tuple[str, ...]:
    if text == "all":
        return tuple(BY_KEY)
    if text == "eager":
        return EAGER
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    unknown = [key for key in keys if key not in BY_KEY]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown implementation(s) {unknown}; expected all, eager or some of {list(BY_KEY)}"
        )
    return keys


def _models(text: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    unknown = [key for key in keys if key not in CONFIGS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"expected models among {list(CONFIGS)}, received {text!r}")
    return keys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed epochs per process after its warm-up epoch (default 2)"
    )
    parser.add_argument(
        "--paired-rounds",
        type=int,
        default=4,
        help="rounds of the one-process paired measurement per model and framework (0: skip; default 4)",
    )
    parser.add_argument(
        "--processes", type=int, default=2, help="fresh processes per implementation, in interleaved rounds (default 2)"
    )
    parser.add_argument("--models", type=_models, default=tuple(CONFIGS), help=f"comma-separated: {','.join(CONFIGS)}")
    parser.add_argument(
        "--implementations",
        type=_implementations,
        default=tuple(BY_KEY),
        help=f"all (default), eager (no compiled variants) or some of: {','.join(BY_KEY)}",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="batches per timed epoch for every model; 0 = full epochs (default: MLP and masked LSTM full, the others 150)",
    )
    parser.add_argument("--quick", action="store_true", help="1 repeat, 20 steps: for the smoke test")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="cap torch's and TensorFlow's thread pools, and XLA's with 1 (default: each framework's own choice)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed to one implementation's process")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a job (JSON) for one fresh process; see run_job
    args = parser.parse_args(argv)
    if args.worker:
        print(RESULT_MARK + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if args.processes < 1:
        parser.error(f"expected --processes >= 1, received {args.processes}")
    if args.repeats < 1:
        parser.error(f"expected --repeats >= 1, received {args.repeats}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"expected --threads >= 1, received {args.threads}")
    if args.steps is not None and args.steps < 0:
        parser.error(f"expected --steps >= 0, received {args.steps}")
    from archspec.errors import ArchSpecError

    try:
        report = run_benchmark(
            args.models,
            args.implementations,
            repeats=args.repeats,
            steps=args.steps,
            quick=args.quick,
            timeout=args.timeout,
            threads=args.threads,
            processes=args.processes,
            paired_rounds=args.paired_rounds,
            log=lambda text: print(text, file=sys.stderr, flush=True),
        )
    except (ArchSpecError, RuntimeError) as error:  # no MNIST, no peak: one line, not a traceback
        print(f"bench_training: {error}", file=sys.stderr)
        return 1
    text = render(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        payload = {
            "machine": report.machine,
            "settings": report.settings,
            "peak_gflops": report.peak_gflops,
            "paired": report.paired,
            "models": {m: {**r, "rows": [asdict(row) for row in r["rows"]]} for m, r in report.models.items()},
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
