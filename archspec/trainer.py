"""The neutral trainer: one training loop, one semantics, for every backend.

Everything that defines *what* training does lives here, once: the sample order
of every epoch, batching, the learning rate of every step, evaluation, metrics
and the history. A backend's ``Engine`` only executes one optimizer step on the
batch it is given (see ``docs/semantics.md``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archspec.errors import DataError, TrainingError, UsageError


def epoch_order(seed: int, epoch: int, n_samples: int, shuffle: bool = True) -> np.ndarray:
    """The order in which epoch ``epoch`` (0-based) visits the ``n_samples`` training samples.

    A permutation drawn by numpy's PCG64 from ``(seed, epoch)``; identity without shuffle.
    """
    if not shuffle:
        return np.arange(n_samples, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, 0x0DA7A])))
    return rng.permutation(n_samples).astype(np.int64)


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive slices of ``order``; the last batch keeps the remainder (never dropped)."""
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


@dataclass
class TrainResult:
    """What ``train`` returns. ``history`` has one row per epoch; ``final`` holds the
    inference-mode loss and metrics of every split after training."""

    backend: str
    model: Any
    history: list[dict[str, float]]
    step_losses: np.ndarray
    final: dict[str, dict[str, float]]
    timings: dict[str, float]
    steps: int
    samples_seen: int
    config: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """A small text table of the final metrics, one row per split."""
        names = sorted({k for split in self.final.values() for k in split})
        header = ["split", *names]
        rows = [[split, *[_fmt(values.get(k)) for k in names]] for split, values in self.final.items()]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
        t = self.timings
        lines.append(
            f"{self.backend}: {self.steps} steps in {t['train_seconds']:.2f} s "
            f"({t['samples_per_second']:,.0f} samples/s); build {t['build_seconds']:.2f} s, import {t['import_seconds']:.2f} s"
        )
        return "\n".join(lines)


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


def prepare_targets(y: np.ndarray, loss: str, num_classes: int | None, dtype: str) -> np.ndarray:
    """Labels in the form the loss reads: int64 (N,) for sparse CE, one-hot for
    categorical CE, float (N, k) otherwise."""
    if loss == "sparse_categorical_crossentropy":
        if y.ndim != 1:
            raise DataError(f"{loss} expects integer class labels of shape (N,), received shape {list(y.shape)}")
        return y.astype(np.int64)
    if loss == "categorical_crossentropy":
        if y.ndim == 1:
            if num_classes is None:
                raise DataError(f"{loss} with integer labels needs a known number of classes")
            return np.eye(num_classes, dtype=dtype)[y.astype(np.int64)]
        return y.astype(dtype)
    target = y.astype(dtype)
    return target.reshape(len(target), -1)


class _Progress:
    """A one-line progress bar on stderr: epoch, step, loss, throughput, ETA."""

    def __init__(self, enabled: bool, total_steps: int, label: str):
        self.enabled = enabled and total_steps > 0
        # On a terminal the line redraws in place; in a log file a line every 10 s is enough.
        self.interactive = sys.stderr.isatty()
        self.interval = 0.25 if self.interactive else 10.0
        self.total = total_steps
        self.label = label
        self.start = time.perf_counter()
        self.last = 0.0

    def due(self) -> bool:
        now = time.perf_counter()
        return self.enabled and now - self.last >= self.interval

    def show(self, epoch: int, epochs: int, step: int, loss: float, samples: int) -> None:
        now = time.perf_counter()
        self.last = now
        elapsed = now - self.start
        rate = samples / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) * elapsed / step if step else 0.0
        width = 24
        filled = int(width * step / self.total)
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(
            ("\r" if self.interactive else "") + f"{self.label} epoch {epoch + 1}/{epochs} [{bar}] step {step}/{self.total} "
            f"loss {loss:.4f} {rate:,.0f} samples/s ETA {eta:4.0f}s " + ("" if self.interactive else "\n")
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.interactive:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _load_splits(spec, data, data_dir):
    from archspec.data import load_dataset, splits_from_arrays

    if data is not None:
        num_classes = None
        if spec.training.loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
            from archspec.graph import resolve

            num_classes = resolve(spec).node_by_id[resolve(spec).outputs[0]].output_shape[-1]
        elif spec.training.loss == "binary_crossentropy":
            num_classes = 2
        return splits_from_arrays(data, num_classes=num_classes)
    if spec.data is None:
        raise UsageError(f"spec '{spec.name}' has no 'data' section: pass data=(x, y) or add one")
    return load_dataset(spec.data.model_dump(mode="json"), data_dir=data_dir, seed=spec.training.seed)


def evaluate(model, x: np.ndarray, y: np.ndarray, training_spec, head, num_classes, batch_size: int = 2048) -> dict[str, float]:
    """Inference-mode loss and metrics on one split, computed once in numpy for every backend."""
    from archspec.metrics import compute_metrics
    from archspec.reference.losses import loss_value

    outputs = model.forward_batches(x, batch_size=batch_size)
    logits, probabilities = outputs["logits"], outputs["output"]
    target = prepare_targets(y, training_spec.loss, num_classes, "float64")
    values = {"loss": loss_value(training_spec.loss, logits, target, from_logits=head.from_logits)}
    if training_spec.metrics:
        if head.from_logits:
            probabilities = _activate(logits, head.activation)
        task = {"binary_crossentropy": "binary", "mse": "regression", "mae": "regression"}.get(training_spec.loss, "multiclass")
        labels = y if task != "regression" else target
        if task == "multiclass" and y.ndim == 2:
            labels = np.argmax(y, axis=1)
        values.update(compute_metrics(list(training_spec.metrics), np.asarray(probabilities, dtype=np.float64), labels, task))
    return values


def _activate(logits: np.ndarray, activation: str) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if activation == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return logits


def train(
    spec,
    backend: str = "torch",
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    dtype: str | None = None,
    data=None,
    callbacks=None,
    out=None,
    device: str | None = None,
    data_dir=None,
    progress: bool = False,
    compiled: bool = False,
    evaluate_every_epoch: bool = True,
) -> TrainResult:
    """Train ``spec`` on ``backend``; overrides beat the spec's values.

    ``data``: ``(x, y)`` or ``{"train": (x, y), "validation": ..., "test": ...}`` instead of
    the spec's data set. ``callbacks``: objects with any of ``on_epoch_end(epoch, logs)``,
    ``on_step_end(step, loss_tensor)``, ``on_train_end(result)``. ``out``: a folder that
    receives ``metrics.json``, ``history.csv`` and ``weights.safetensors``.
    """
    from archspec.api import load_with_graph
    from archspec.backend import check_name
    from archspec.reference.schedules import learning_rate

    check_name(backend)
    spec, graph = load_with_graph(spec)
    if spec.training is None:
        raise UsageError(f"spec '{spec.name}' has no 'training' section")
    updates = {k: v for k, v in {"epochs": epochs, "dtype": dtype, "device": device}.items() if v is not None}
    training_spec = spec.training.model_copy(update=updates)
    spec = spec.model_copy(update={"training": training_spec})
    spec, graph = load_with_graph(spec)
    run_dtype = training_spec.dtype
    head = graph.heads[0]

    splits = _load_splits(spec, data, data_dir)
    num_classes = splits.num_classes
    x_train, y_train = splits.train
    input_name = next(iter(spec.inputs))
    x_train = x_train.astype(run_dtype if spec.inputs[input_name].dtype == "float" else spec.inputs[input_name].dtype)
    y_train = prepare_targets(y_train, training_spec.loss, num_classes, run_dtype)

    started = time.perf_counter()
    from archspec.backend import load_backend

    module = load_backend(backend)
    imported = time.perf_counter()
    from archspec.api import compile as compile_spec

    model = compile_spec(spec, backend=backend, dtype=run_dtype, device=training_spec.device)
    engine_options = {"compiled": True} if compiled else {}
    engine = module.Engine(model, x={input_name: x_train}, y=y_train, training=training_spec, **engine_options)
    built = time.perf_counter()

    n = len(x_train)
    steps_per_epoch = math.ceil(n / training_spec.batch_size)
    total_steps = steps_per_epoch * training_spec.epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    optimizer = training_spec.optimizer
    schedule = training_spec.schedule.model_dump()
    callbacks = list(callbacks or [])
    bar = _Progress(progress, total_steps, f"{spec.name} [{backend}]")

    history: list[dict[str, float]] = []
    all_losses: list[np.ndarray] = []
    step = 0
    samples_seen = 0
    train_seconds = 0.0
    eval_seconds = 0.0
    for epoch in range(training_spec.epochs):
        if step >= total_steps:
            break
        epoch_start = time.perf_counter()
        pending, sizes = [], []
        for indices in batches(epoch_order(training_spec.seed, epoch, n, training_spec.shuffle), training_spec.batch_size):
            if step >= total_steps:
                break
            lr = learning_rate(schedule, optimizer.learning_rate, step)
            loss = engine.train_step(indices, step, lr)
            pending.append(loss)
            sizes.append(len(indices))
            for callback in callbacks:
                if hasattr(callback, "on_step_end"):
                    callback.on_step_end(step, loss)
            step += 1
            samples_seen += len(indices)
            if bar.due():
                bar.show(epoch, training_spec.epochs, step, float(engine.losses_to_numpy(pending[-1:])[0]), samples_seen)
        epoch_losses = engine.losses_to_numpy(pending)
        epoch_time = time.perf_counter() - epoch_start
        train_seconds += epoch_time
        _check_finite(epoch_losses, epoch, step - len(epoch_losses))
        all_losses.append(epoch_losses)
        row = {"epoch": epoch + 1, "steps": step, "seconds": epoch_time,
               "loss": float(np.average(epoch_losses, weights=sizes))}
        if evaluate_every_epoch:
            eval_start = time.perf_counter()
            for split in ("validation", "test"):
                pair = getattr(splits, split)
                if pair is not None:
                    for key, value in evaluate(model, pair[0], pair[1], training_spec, head, num_classes).items():
                        row[f"{split}_{key}"] = value
            eval_seconds += time.perf_counter() - eval_start
        history.append(row)
        for callback in callbacks:
            if hasattr(callback, "on_epoch_end"):
                callback.on_epoch_end(epoch, dict(row))
    bar.close()

    final = {}
    eval_start = time.perf_counter()
    for split, pair in splits.as_dict().items():
        final[split] = evaluate(model, pair[0], pair[1], training_spec, head, num_classes)
    eval_seconds += time.perf_counter() - eval_start
    step_losses = np.concatenate(all_losses) if all_losses else np.zeros(0)
    timings = {
        "import_seconds": imported - started,
        "build_seconds": built - imported,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "seconds_per_epoch": train_seconds / max(1, len(history)),
        "samples_per_second": samples_seen / train_seconds if train_seconds > 0 else 0.0,
    }
    result = TrainResult(backend, model, history, step_losses, final, timings, step, samples_seen,
                         {"spec": spec.name, "dtype": run_dtype, "epochs": training_spec.epochs, "batch_size": training_spec.batch_size})
    for callback in callbacks:
        if hasattr(callback, "on_train_end"):
            callback.on_train_end(result)
    if out is not None:
        write_run(result, Path(out))
    return result


def _check_finite(losses: np.ndarray, epoch: int, first_step: int) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        raise TrainingError(
            f"the training loss became {losses[bad[0]]} at epoch {epoch + 1}, step {first_step + int(bad[0])}"
        )


def write_run(result: TrainResult, folder: Path) -> None:
    """metrics.json, history.csv and weights.safetensors, each written atomically."""
    from archspec.checkpoint import atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        "backend": result.backend, "config": result.config, "final": result.final,
        "history": result.history, "timings": result.timings, "steps": result.steps,
        "param_count": result.model.param_count,
    }
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    keys = list(dict.fromkeys(k for row in result.history for k in row))
    lines = [",".join(keys)] + [",".join(repr(row.get(k, "")) for k in keys) for row in result.history]
    atomic_write_bytes(folder / "history.csv", ("\n".join(lines) + "\n").encode())
    result.model.save_weights(folder / "weights.safetensors")
