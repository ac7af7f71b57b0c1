"""The neutral trainer: one training loop, one semantics, for every backend.

Everything that defines *what* training does lives here, once: the sample order
of every epoch, batching, the learning rate of every step, evaluation, metrics
and the history. A backend's ``Engine`` only executes one optimizer step on the
batch it is given (see ``docs/semantics.md``).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from archspec.errors import CheckpointError, TrainingError, UsageError
from archspec.targets import prepare_targets


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
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


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


_NO_COMPILED_WORKERS = "compiled steps are not supported with several workers yet: drop --compiled (or workers)"

# With workers, step losses are all-reduced (and checked) every this many steps, so the
# progress bar shows the global batch's loss and a divergence stops every worker early.
_SYNC_EVERY = 32


class _Progress:
    """A one-line progress bar on stderr: epoch, step, loss, throughput, ETA."""

    def __init__(self, enabled: bool, total_steps: int, label: str, first_step: int = 0):
        self.enabled = enabled and total_steps > first_step
        # On a terminal the line redraws in place; in a log file a line every 10 s is enough.
        self.interactive = sys.stderr.isatty()
        self.interval = 0.25 if self.interactive else 10.0
        self.total = total_steps
        self.first_step = first_step  # a resumed run counts its rate from here
        self.label = label
        self.start = time.perf_counter()
        self.last = 0.0

    def due(self) -> bool:
        now = time.perf_counter()
        return self.enabled and now - self.last >= self.interval

    def show(self, epoch: int, epochs: int, step: int, loss: float | None, samples: int) -> None:
        now = time.perf_counter()
        self.last = now
        elapsed = now - self.start
        rate = samples / elapsed if elapsed > 0 else 0.0
        done = step - self.first_step
        eta = (self.total - step) * elapsed / done if done else 0.0
        width = 24
        filled = int(width * step / self.total)
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(
            ("\r" if self.interactive else "")
            + f"{self.label} epoch {epoch + 1}/{epochs} [{bar}] step {step}/{self.total} "
            f"loss {'-' if loss is None else f'{loss:.4f}'} {rate:,.0f} samples/s ETA {eta:4.0f}s "
            + ("" if self.interactive else "\n")
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

            graph = resolve(spec)
            num_classes = graph.node_by_id[graph.outputs[0]].output_shape[-1]
        elif spec.training.loss == "binary_crossentropy":
            num_classes = 2
        return splits_from_arrays(data, num_classes=num_classes)
    if spec.data is None:
        raise UsageError(f"spec '{spec.name}' has no 'data' section: pass data=(x, y) or add one")
    return load_dataset(spec.data.model_dump(mode="json"), data_dir=data_dir, seed=spec.training.seed)


def evaluate(
    model, x: np.ndarray, y: np.ndarray, training_spec, head, num_classes, batch_size: int = 2048, forward=None
) -> dict[str, float]:
    """Inference-mode loss and metrics on one split, computed once in numpy for every backend.

    ``forward(x, batch_size)``: the model's ``{"output", "logits"}`` (default: ``model.forward_batches``).
    """
    from archspec.losses import loss_value
    from archspec.metrics import compute_metrics

    outputs = (forward or model.forward_batches)(x, batch_size=batch_size)
    logits, probabilities = outputs["logits"], outputs["output"]
    target = prepare_targets(y, training_spec.loss, num_classes, "float64")
    values = {"loss": loss_value(training_spec.loss, logits, target, from_logits=head.from_logits)}
    if training_spec.metrics:
        if head.from_logits:
            probabilities = _activate(logits, head.activation)
        task = {"binary_crossentropy": "binary", "mse": "regression", "mae": "regression"}.get(
            training_spec.loss, "multiclass"
        )
        labels = y if task != "regression" else target
        if task == "multiclass" and y.ndim == 2:
            labels = np.argmax(y, axis=1)
        values.update(
            compute_metrics(list(training_spec.metrics), np.asarray(probabilities, dtype=np.float64), labels, task)
        )
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
    checkpoint_every: int | None = None,
    resume=None,
    memory_cap: int | str | None = None,
    workers: int | None = None,
    worker_timeout: float | None = None,
) -> TrainResult:
    """Train ``spec`` on ``backend``; overrides beat the spec's values.

    ``data``: ``(x, y)`` or ``{"train": (x, y), "validation": ..., "test": ...}`` instead of
    the spec's data set. ``callbacks``: objects with any of ``on_epoch_end(epoch, logs)``,
    ``on_step_end(step, loss_tensor)``, ``on_train_end(result)``. ``out``: a folder that
    receives ``metrics.json``, ``history.csv`` and ``weights.safetensors`` at the end, and a
    checkpoint (``out/checkpoint/``) at the end of every epoch and every ``checkpoint_every``
    steps (0 or None: epochs only). ``resume``: a run folder whose last complete checkpoint
    this run continues from, bit for bit as if never interrupted (``out`` defaults to it;
    ``epochs``, ``max_steps``, ``dtype`` and ``checkpoint_every`` to the checkpoint's).
    ``memory_cap``: bytes or a size like ``"4GiB"`` the run must fit in (default
    ``$ARCHSPEC_MEMORY_CAP``, else the memory available now).

    ``workers``: N > 1 trains data-parallel in N local worker processes on the framework's
    own engine (torch DistributedDataParallel over gloo/NCCL; TensorFlow
    MultiWorkerMirroredStrategy) and returns rank 0's result; ``batch_size`` stays the
    global batch and the run follows the single-process trajectory (``archspec/distributed.py``).
    ``worker_timeout``: seconds a worker waits for a lost peer (default 30). Without
    ``workers``, a process started by ``torchrun`` (or with a ``TF_CONFIG`` cluster) joins
    its cluster as one worker.

    Raises DataError for data that does not fit the spec, ResourceError for a run too large
    for the memory, CheckpointError for a checkpoint that is corrupt or from another run, and
    TrainingError when the loss turns non-finite (checked at every checkpoint and epoch end,
    with workers also every 32 steps) or a worker is lost.
    """
    from archspec.backend import check_name
    from archspec.distributed import DEFAULT_TIMEOUT, cluster_from_environment

    check_name(backend)
    options = dict(
        epochs=epochs,
        max_steps=max_steps,
        dtype=dtype,
        out=out,
        device=device,
        data_dir=data_dir,
        progress=progress,
        compiled=compiled,
        evaluate_every_epoch=evaluate_every_epoch,
        checkpoint_every=checkpoint_every,
        resume=resume,
        memory_cap=memory_cap,
    )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, Integral) or workers < 1):
        raise UsageError(f"expected workers to be a positive integer. Received: workers={workers!r}")
    if worker_timeout is not None and not (isinstance(worker_timeout, (int, float)) and worker_timeout > 0):
        raise UsageError(f"expected worker_timeout to be a positive number of seconds. Received: {worker_timeout!r}")
    if workers is not None and workers > 1:
        return _launch(spec, backend, workers, worker_timeout or DEFAULT_TIMEOUT, data, callbacks, options)
    return _train(spec, backend, cluster_from_environment(backend), data=data, callbacks=callbacks, **options)


def _train(
    spec,
    backend,
    cluster,
    *,
    epochs,
    max_steps,
    dtype,
    data,
    callbacks,
    out,
    device,
    data_dir,
    progress,
    compiled,
    evaluate_every_epoch,
    checkpoint_every,
    resume,
    memory_cap,
) -> TrainResult:
    from archspec.api import load_with_graph
    from archspec.checkpoint import read_checkpoint

    spec, graph = load_with_graph(spec)
    if spec.training is None:
        raise UsageError(f"spec '{spec.name}' has no 'training' section")
    for name, value, lowest in (
        ("max_steps", max_steps, 1),
        ("epochs", epochs, 1),
        ("checkpoint_every", checkpoint_every, 0),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, Integral) or value < lowest):
            kind = "a positive integer" if lowest else "a non-negative integer (0: at epoch ends only)"
            raise UsageError(f"expected {name} to be {kind}. Received: {name}={value!r}")
    checkpoint = read_checkpoint(resume) if resume is not None else None
    if checkpoint is not None:
        saved = checkpoint.state.run
        epochs = epochs if epochs is not None else saved.epochs
        max_steps = max_steps if max_steps is not None else saved.max_steps
        dtype = dtype if dtype is not None else checkpoint.state.dtype
        checkpoint_every = checkpoint_every if checkpoint_every is not None else saved.checkpoint_every
        out = out if out is not None else resume
    updates = {k: v for k, v in {"epochs": epochs, "dtype": dtype, "device": device}.items() if v is not None}
    training_spec = spec.training.model_copy(update=updates)
    spec = spec.model_copy(update={"training": training_spec})
    spec, graph = load_with_graph(spec)
    if cluster is not None and compiled:
        raise UsageError(_NO_COMPILED_WORKERS)
    run = _Run(
        spec,
        graph,
        backend,
        max_steps=max_steps,
        checkpoint_every=checkpoint_every or None,
        out=None if out is None else Path(out),
        callbacks=callbacks,
        evaluate_every_epoch=evaluate_every_epoch,
        cluster=cluster,
    )
    run.prepare(data, data_dir, checkpoint, memory_cap)
    run.build(compiled)
    run.loop(progress)
    result = run.finish()
    if cluster is not None:
        run.leave()
    return result


def _launch(spec, backend, workers, timeout, data, callbacks, options) -> TrainResult:
    """Train in ``workers`` local processes (``archspec.distributed.launch``); rank 0's result."""
    import tempfile

    from archspec.api import compile as compile_spec
    from archspec.api import load_with_graph
    from archspec.distributed import launch

    spec, _ = load_with_graph(spec)
    if callbacks:
        raise UsageError(
            "callbacks run in the training process and cannot follow several workers: "
            "train with workers=1, or read the run's metrics.json and history.csv (out=DIR)"
        )
    if options["compiled"]:
        raise UsageError(_NO_COMPILED_WORKERS)
    with tempfile.TemporaryDirectory(prefix="archspec-job-") as folder:
        spec_path = Path(folder) / "spec.json"
        spec_path.write_text(json.dumps(spec.model_dump(mode="json", by_alias=True)))
        data_path = _save_data(data, Path(folder)) if data is not None else None
        paths = {
            key: None if options[key] is None else str(Path(options[key]).resolve())
            for key in ("out", "resume", "data_dir")
        }
        job = {"spec": str(spec_path), "backend": backend, "data": data_path, "options": {**options, **paths}}
        outcome = launch(job, workers, timeout)
    dtype = outcome["config"]["dtype"]
    model = compile_spec(spec, backend=backend, dtype=dtype, device=options["device"], weights=outcome["weights"])
    config = {**outcome["config"], "workers": workers}
    return TrainResult(
        backend,
        model,
        outcome["history"],
        np.asarray(outcome["step_losses"], dtype=np.float64),
        outcome["final"],
        outcome["timings"],
        outcome["steps"],
        outcome["samples_seen"],
        config,
    )


def _save_data(data, folder: Path) -> str:
    """User arrays for the workers, as an .npz (no pickles): ``split/x`` and ``split/y``."""
    pairs = data if isinstance(data, dict) else {"train": data}
    arrays = {}
    for split, pair in pairs.items():
        if pair is None:
            continue
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise UsageError(f"expected data[{split!r}] to be a pair (x, y). Received: {type(pair).__name__}")
        arrays[f"{split}/x"], arrays[f"{split}/y"] = np.asarray(pair[0]), np.asarray(pair[1])
    path = folder / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def _load_data(path: str):
    with np.load(path, allow_pickle=False) as arrays:
        pairs = {}
        for key in arrays.files:
            split, part = key.split("/")
            pairs.setdefault(split, {})[part] = arrays[key]
    return {split: (parts["x"], parts["y"]) for split, parts in pairs.items()}


def run_worker(job: dict, cluster) -> TrainResult:
    """One worker's run of a job written by ``_launch`` (called in the worker process)."""
    data = _load_data(job["data"]) if job["data"] else None
    options = dict(job["options"])
    return _train(job["spec"], job["backend"], cluster, data=data, callbacks=None, **options)


class _Run:
    """One training run, from checked data to the result; see ``train``."""

    def __init__(
        self, spec, graph, backend, *, max_steps, checkpoint_every, out, callbacks, evaluate_every_epoch, cluster=None
    ):
        self.spec, self.graph, self.backend = spec, graph, backend
        self.cluster = cluster  # None: one process
        self.writer = cluster is None or cluster.is_writer  # shows progress, evaluates, writes files
        self.training = spec.training
        self.dtype = self.training.dtype
        self.head = graph.heads[0]
        self.max_steps, self.checkpoint_every, self.out = max_steps, checkpoint_every, out
        self.callbacks = list(callbacks or [])
        self.evaluate_every_epoch = evaluate_every_epoch
        self.timings = {"import_seconds": 0.0, "build_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0}
        self.history: list[dict[str, float]] = []
        self.losses: list[float] = []  # every step loss so far, on the host, checked finite
        self.pending: list = []  # step losses still on the device
        self.fractions: list[float] = []  # with workers: this worker's share of each pending step's batch
        self.epoch = self.position = self.step = self.samples_seen = 0
        self.first_step = self.samples_here = self.epochs_here = 0
        self.partial_row = None
        self.last_checkpoint = None  # the folder of the last complete checkpoint written or resumed from

    # --- before training ------------------------------------------------------------

    def prepare(self, data, data_dir, checkpoint, memory_cap) -> None:
        """Check memory, data and checkpoint, in that order, before any framework is loaded."""
        from archspec.checkpoint import check_progress, check_resumable, fingerprint
        from archspec.data.splits import _check_finite as check_finite_values
        from archspec.resources import check_memory, estimate_for_training
        from archspec.targets import check_data_fits

        check_memory(estimate_for_training(self.graph, self.training), memory_cap)
        if checkpoint is not None:
            check_resumable(checkpoint, self.graph, self.training)
        self.splits = _load_splits(self.spec, data, data_dir)
        check_data_fits(self.graph, self.splits)
        self.num_classes = self.splits.num_classes
        x, y = self.splits.train
        self.input_name = next(iter(self.spec.inputs))
        kind = self.spec.inputs[self.input_name].dtype
        with np.errstate(over="ignore"):  # an overflow to infinity is refused just below
            self.x_train = x.astype(self.dtype if kind == "float" else kind)
        if self.x_train.dtype.kind == "f":
            check_finite_values(self.x_train, f"train.x as {self.dtype}")
        self.y_train = prepare_targets(y, self.training.loss, self.num_classes, self.dtype)
        check_memory(estimate_for_training(self.graph, self.training, data_samples=len(self.x_train)), memory_cap)

        self.n = len(self.x_train)
        self.steps_per_epoch = math.ceil(self.n / self.training.batch_size)
        self.total_steps = self.steps_per_epoch * self.training.epochs
        if self.max_steps is not None:
            self.total_steps = min(self.total_steps, self.max_steps)
        if self.cluster is not None:
            from archspec.distributed import check_batches

            check_batches(self._batch_sizes(), self.cluster.world_size)
        self.data_fingerprint = fingerprint(self.x_train, self.y_train) if (self.out or checkpoint) else None
        self.checkpoint = checkpoint
        if checkpoint is not None:
            check_progress(checkpoint, self.data_fingerprint, self._batch_sizes())
            progress = checkpoint.state.progress
            self.epoch, self.position, self.step = progress.epoch, progress.position, progress.step
            self.samples_seen = progress.samples_seen
            self.history = [dict(row) for row in progress.history]
            self.losses = list(progress.step_losses)
            self.first_step = self.step
            self.last_checkpoint = checkpoint.folder

    def _batch_sizes(self) -> list[int]:
        size, n = self.training.batch_size, self.n
        return [min(size, n - start) for start in range(0, n, size)]

    def build(self, compiled: bool) -> None:
        from archspec.api import compile as compile_spec
        from archspec.backend import load_backend

        started = time.perf_counter()
        module = load_backend(self.backend)
        imported = time.perf_counter()
        weights = self.checkpoint.weights if self.checkpoint is not None else None
        options = {"compiled": True} if compiled else {}
        if self.cluster is not None:
            options["cluster"] = self.cluster
        # With workers, join the framework's own distributed runtime first; the model and the
        # engine are then built inside it (TensorFlow: under the strategy's scope).
        joined = (
            module.distributed.join(self.cluster, self.training.device) if self.cluster else contextlib.nullcontext()
        )
        with joined:
            self.model = compile_spec(
                self.spec, backend=self.backend, dtype=self.dtype, device=self.training.device, weights=weights
            )
            self.engine = module.Engine(
                self.model, x={self.input_name: self.x_train}, y=self.y_train, training=self.training, **options
            )
        if self.checkpoint is not None:
            self.engine.load_optimizer_state(self.checkpoint.optimizer, self.step)
            self.good = _Snapshot(self.step, dict(self.checkpoint.weights), dict(self.checkpoint.optimizer))
        else:
            self.good = _Snapshot(0, _copies(self.model.get_weights()), _copies(self.engine.optimizer_state()))
        self.checkpoint = None  # its arrays are in the model now
        built = time.perf_counter()
        self.timings["import_seconds"] = imported - started
        self.timings["build_seconds"] = built - imported

    # --- training -------------------------------------------------------------------

    def loop(self, progress: bool) -> None:
        from archspec.definitions.schedules import learning_rate

        training = self.training
        schedule = training.schedule.model_dump()
        label = f"{self.spec.name} [{self.backend}" + (f" x{self.cluster.world_size}]" if self.cluster else "]")
        bar = _Progress(progress and self.writer, self.total_steps, label, self.step)
        for epoch in range(self.epoch, training.epochs):
            done = self.position if epoch == self.epoch else 0
            if self.step >= self.total_steps and done == 0:
                break
            epoch_start = time.perf_counter()
            order = batches(epoch_order(training.seed, epoch, self.n, training.shuffle), training.batch_size)
            first_step = self.step - done
            for position in range(done, len(order)):
                if self.step >= self.total_steps:
                    break
                indices = order[position]
                step = self.step
                rate = learning_rate(schedule, training.optimizer.learning_rate, step)
                loss = self._train_step(indices, step, rate)
                for callback in self.callbacks:
                    if hasattr(callback, "on_step_end"):
                        callback.on_step_end(step, loss)
                self.step += 1
                self.samples_seen += len(indices)
                self.samples_here += len(indices)
                if self.cluster is not None and self.step % _SYNC_EVERY == 0:
                    self._sync()  # every worker at the same steps: a collective
                if bar.due():
                    bar.show(epoch, training.epochs, self.step, self._last_loss(), self.samples_here)
                every = self.checkpoint_every
                if every and self.step % every == 0 and position + 1 < len(order) and self.step < self.total_steps:
                    self._checkpoint(epoch, position + 1, *self._capture())
            complete = self.step - first_step == len(order)
            self.epochs_here += 1
            arrays = self._capture() if self.step > self.good.step else None
            self.timings["train_seconds"] += time.perf_counter() - epoch_start
            row = self._epoch_row(epoch, first_step, order, time.perf_counter() - epoch_start)
            if complete:
                self.history.append(row)
                self._checkpoint(epoch + 1, 0, *arrays)
            elif arrays is not None:
                # Cut short by max_steps: checkpoint the position (a longer run resumes from it)
                # and report the partial epoch in the result only.
                self._checkpoint(epoch, self.step - first_step, *arrays)
            for callback in self.callbacks:
                if hasattr(callback, "on_epoch_end"):
                    callback.on_epoch_end(epoch, dict(row))
            if not complete:
                self.partial_row = row
                break
        bar.close()

    def _train_step(self, indices: np.ndarray, step: int, rate: float, keep: bool = True):
        """One optimizer step on the global batch ``indices`` (with workers: on this worker's
        share of it); ``keep`` queues its loss for the next ``_sync``."""
        if self.cluster is None:
            loss = self.engine.train_step(indices, step, rate)
        else:
            from archspec.distributed import share

            mine, offset, fraction = share(indices, self.cluster.world_size, self.cluster.rank)
            loss = self.engine.train_step(mine, step, rate, offset=offset, fraction=fraction)
            if keep:
                self.fractions.append(fraction)
        if keep:
            self.pending.append(loss)
        return loss

    def _last_loss(self) -> float | None:
        # With workers, a batch's loss needs a collective: the bar shows the last synchronised one.
        if self.pending and self.cluster is None:
            return float(self.engine.losses_to_numpy(self.pending[-1:])[0])
        return self.losses[-1] if self.losses else None

    def _epoch_row(self, epoch: int, first_step: int, order: list, seconds: float) -> dict[str, float]:
        losses = self.losses[first_step : self.step]
        sizes = [len(indices) for indices in order[: len(losses)]]
        row = {
            "epoch": epoch + 1,
            "steps": self.step,
            "seconds": seconds,
            "loss": float(np.average(losses, weights=sizes)),
        }
        if self.evaluate_every_epoch:
            eval_start = time.perf_counter()
            for split in ("train", "validation", "test"):
                pair = getattr(self.splits, split)
                if pair is None or (split == "train" and not self.training.metrics):
                    continue
                for key, value in self._evaluate(pair).items():
                    # The training loss of an epoch is the mean of its step losses ("loss");
                    # the training split adds only its inference-mode metrics.
                    if not (split == "train" and key == "loss"):
                        row[f"{split}_{key}"] = value
            self.timings["eval_seconds"] += time.perf_counter() - eval_start
        return row

    def _sync(self) -> None:
        """Bring pending step losses to the host (one synchronisation) and check them."""
        if not self.pending:
            return
        values = self.engine.losses_to_numpy(self.pending)
        self.pending = []
        if self.cluster is not None:
            # A batch's loss is the share-weighted sum of the workers' mean losses.
            values = self.engine.all_reduce_sum(values * np.asarray(self.fractions))
            self.fractions = []
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise self._diverged(len(self.losses) + int(bad[0]), float(values[bad[0]]))
        self.losses.extend(float(value) for value in values)

    def _capture(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Check the step losses, weights and optimizer state so far, and keep them as the last
        good state: (weights, optimizer state), host copies."""
        from archspec.divergence import first_nonfinite_parameter

        self._sync()
        weights = _copies(self.model.get_weights())
        optimizer = _copies(self.engine.optimizer_state())
        bad = first_nonfinite_parameter(weights) or first_nonfinite_parameter(optimizer)
        if bad is not None:
            raise TrainingError(
                f"after step {self.step - 1} (epoch {(self.step - 1) // self.steps_per_epoch + 1}) '{bad}' holds NaN "
                f"or infinite values although every training loss so far was finite; {self._kept()}"
            )
        self.good = _Snapshot(self.step, weights, optimizer)
        return weights, optimizer

    def _checkpoint(self, epoch: int, position: int, weights, optimizer) -> None:
        """Write the captured state to ``out/checkpoint``, all of it or nothing (rank 0 only)."""
        if self.out is None:
            return
        if not self.writer:
            from archspec.checkpoint import checkpoint_folder

            self.last_checkpoint = checkpoint_folder(self.out)
            return
        from archspec import __version__
        from archspec.checkpoint import CheckpointState, Progress, RunSettings, spec_hash, write_checkpoint

        state = CheckpointState(
            archspec_version=__version__,
            spec_name=self.spec.name,
            spec_hash=spec_hash(self.spec),
            backend=self.backend,
            dtype=self.dtype,
            training=self.training.model_dump(mode="json"),
            run=RunSettings(
                epochs=self.training.epochs, max_steps=self.max_steps, checkpoint_every=self.checkpoint_every
            ),
            data=self.data_fingerprint,
            progress=Progress(
                epoch=epoch,
                position=position,
                step=self.step,
                samples_seen=self.samples_seen,
                history=[dict(row) for row in self.history],
                step_losses=list(self.losses),
            ),
        )
        self.last_checkpoint = write_checkpoint(self.out, state, weights, optimizer)

    def _kept(self) -> str:
        if self.last_checkpoint is not None:
            return f"the last good checkpoint (step {self.good.step}) is kept in {self.last_checkpoint}"
        if self.out is not None:
            return "no checkpoint had been written yet (checkpoint_every writes them more often)"
        return "no checkpoint was written (train with out=DIR to keep one)"

    def _diverged(self, step: int, value: float) -> TrainingError:
        """The error for a non-finite loss at ``step``, naming the first layer that went non-finite."""
        epoch = step // self.steps_per_epoch
        where = self._locate(step)
        return TrainingError(
            f"the training loss became {value} at step {step} (epoch {epoch + 1}, batch "
            f"{step % self.steps_per_epoch + 1} of {self.steps_per_epoch}): {where}; {self._kept()}"
        )

    def _locate(self, step: int) -> str:
        """Replay from the last good state to the weights ``step`` started from, then find the
        first non-finite parameter or layer tensor of its forward pass (numpy reference)."""
        from archspec.definitions.schedules import learning_rate
        from archspec.divergence import first_nonfinite_parameter, first_nonfinite_tensor

        training = self.training
        schedule = training.schedule.model_dump()
        self.model.set_weights(self.good.weights)
        self.engine.load_optimizer_state(self.good.optimizer, self.good.step)
        for replay in range(self.good.step, step):
            rate = learning_rate(schedule, training.optimizer.learning_rate, replay)
            self._train_step(self._indices(replay), replay, rate, keep=False)
        weights = self.model.get_weights()
        parameter = first_nonfinite_parameter(weights)
        if parameter is not None:
            return f"parameter '{parameter}' was already non-finite when the step began"
        batch = self.x_train[self._indices(step)]
        tensor = first_nonfinite_tensor(self.graph, weights, batch, step=step, dtype=self.dtype)
        if tensor is None:
            return "every layer output of that step is finite, so the loss computation itself overflowed"
        return f"the first non-finite tensor of that step's forward pass is {tensor}"

    def _indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.steps_per_epoch)
        order = epoch_order(self.training.seed, epoch, self.n, self.training.shuffle)
        size = self.training.batch_size
        return order[position * size : (position + 1) * size]

    # --- after training -------------------------------------------------------------

    def _evaluate(self, pair) -> dict[str, float]:
        forward = self._forward_shared if self.cluster is not None else None
        return evaluate(self.model, pair[0], pair[1], self.training, self.head, self.num_classes, forward=forward)

    def _forward_shared(self, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """Every worker runs its share of ``x``; an all-reduce of the zero-padded outputs gives
        all of them every output (so evaluation takes 1/N of the time and no worker waits)."""
        from archspec.distributed import share_bounds

        world, rank = self.cluster.world_size, self.cluster.rank
        if len(x) < world:
            return self.model.forward_batches(x, batch_size=batch_size)
        start, stop = share_bounds(len(x), world, rank)
        outputs = {}
        for key, part in self.model.forward_batches(x[start:stop], batch_size=batch_size).items():
            full = np.zeros((len(x), *part.shape[1:]), dtype=np.float64)
            full[start:stop] = part
            outputs[key] = self.engine.all_reduce_sum(full.reshape(-1)).reshape(full.shape).astype(part.dtype)
        return outputs

    def leave(self) -> None:
        """Leave the framework's process group (a worker's last collective is behind it)."""
        from archspec.backend import load_backend

        load_backend(self.backend).distributed.leave(self.engine)

    def finish(self) -> TrainResult:
        history = self.history + ([self.partial_row] if self.partial_row else [])
        self._sync()
        final = {}
        eval_start = time.perf_counter()
        for split, pair in self.splits.as_dict().items():
            final[split] = self._evaluate(pair)
        self.timings["eval_seconds"] += time.perf_counter() - eval_start
        train_seconds = self.timings["train_seconds"]
        timings = {
            **self.timings,
            "seconds_per_epoch": train_seconds / max(1, self.epochs_here),
            "samples_per_second": self.samples_here / train_seconds if train_seconds > 0 else 0.0,
        }
        config = {
            "spec": self.spec.name,
            "dtype": self.dtype,
            "epochs": self.training.epochs,
            "batch_size": self.training.batch_size,
        }
        if self.first_step:
            config["resumed_at_step"] = self.first_step
        if self.cluster is not None:
            config["workers"] = self.cluster.world_size
            config["rank"] = self.cluster.rank
        result = TrainResult(
            self.backend,
            self.model,
            history,
            np.asarray(self.losses, dtype=np.float64),
            final,
            timings,
            self.step,
            self.samples_seen,
            config,
        )
        for callback in self.callbacks:
            if hasattr(callback, "on_train_end"):
                callback.on_train_end(result)
        if self.out is not None and self.writer:
            write_run(result, self.out)
        return result


@dataclass(frozen=True)
class _Snapshot:
    """The last state whose losses and weights were all finite (host copies)."""

    step: int
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]


def _copies(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # A CPU tensor's .numpy() shares its memory: the snapshot must not follow later updates.
    return {name: np.array(value, copy=True) for name, value in arrays.items()}


def write_run(result: TrainResult, folder: Path) -> None:
    """metrics.json, history.csv and weights.safetensors, each written atomically."""
    try:
        _write_run(result, folder)
    except OSError as error:
        raise CheckpointError(f"{folder}: cannot write the run's results ({error.strerror or error})") from None


def _write_run(result: TrainResult, folder: Path) -> None:
    from archspec.checkpoint import atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        "backend": result.backend,
        "config": result.config,
        "final": result.final,
        "history": result.history,
        "timings": result.timings,
        "steps": result.steps,
        "param_count": result.model.param_count,
    }
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    keys = list(dict.fromkeys(k for row in result.history for k in row))
    lines = [",".join(keys)] + [",".join(repr(row.get(k, "")) for k in keys) for row in result.history]
    atomic_write_bytes(folder / "history.csv", ("\n".join(lines) + "\n").encode())
    result.model.save_weights(folder / "weights.safetensors")
