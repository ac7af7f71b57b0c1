"""``train``: one training run, from its arguments to its result.

The pieces, in the order a run uses them: ``preparation`` (memory, checkpoint and data
checks, before any framework is loaded), the build (backend, model, engine; joining the
cluster first with workers), ``loop`` (the steps, checkpoints and history), ``evaluation``
and ``results``. With ``workers`` > 1 the run is handed to local worker processes
(``jobs`` and ``launcher``), each of which comes back here as one member of a cluster.
"""

from __future__ import annotations

import contextlib
import time
from numbers import Integral
from pathlib import Path

import numpy as np

from archspec import backend as backend_registry
from archspec.api import compile as compile_spec
from archspec.api import load_with_graph
from archspec.errors import UsageError
from archspec.objectives import objectives, output_keys
from archspec.training.checkpoints import Checkpoint, RunSettings, read_checkpoint
from archspec.training.cluster import DEFAULT_TIMEOUT, NO_COMPILED_WORKERS, Cluster, cluster_from_environment
from archspec.training.controls import Controls
from archspec.training.evaluation import Evaluator
from archspec.training.jobs import train_with_workers
from archspec.training.keeper import Keeper
from archspec.training.logs import EventLog
from archspec.training.loop import Loop
from archspec.training.preparation import TrainingData, prepare
from archspec.training.results import TrainResult, write_preprocessing, write_run


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
    logdir=None,
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
    global batch and the run follows the single-process trajectory (``archspec/training/cluster.py``).
    ``logdir``: a folder that receives TensorBoard event files (``archspec/training/logs.py``):
    the step loss, learning rate and gradient norm of every step, every history value of
    every epoch, and the spec as text. The result's ``config["stopped"]`` says why training
    stopped (``"epochs"``, ``"max_steps"`` or early stopping's reason).

    ``worker_timeout``: seconds a worker waits for a lost peer (default 30). Without
    ``workers``, a process started by ``torchrun`` (or with a ``TF_CONFIG`` cluster) joins
    its cluster as one worker.

    Raises DataError for data that does not fit the spec, ResourceError for a run too large
    for the memory, CheckpointError for a checkpoint that is corrupt or from another run, and
    TrainingError when the loss turns non-finite (checked at every checkpoint and epoch end,
    with workers also every 32 steps) or a worker is lost.
    """
    backend_registry.check_name(backend)
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
        logdir=logdir,
    )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, Integral) or workers < 1):
        raise UsageError(f"expected workers to be a positive integer, received workers={workers!r}")
    if worker_timeout is not None and not (isinstance(worker_timeout, (int, float)) and worker_timeout > 0):
        raise UsageError(f"expected worker_timeout to be a positive number of seconds, received {worker_timeout!r}")
    if workers is not None and workers > 1:
        return train_with_workers(spec, backend, workers, worker_timeout or DEFAULT_TIMEOUT, data, callbacks, options)
    return run_training(spec, backend, cluster_from_environment(backend), data=data, callbacks=callbacks, **options)


def run_training(
    spec,
    backend: str,
    cluster: Cluster | None,
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
    logdir=None,
) -> TrainResult:
    """One process's run: the whole run, or with ``cluster`` this worker's part of it."""
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
            raise UsageError(f"expected {name} to be {kind}, received {name}={value!r}")
    checkpoint = read_checkpoint(resume) if resume is not None else None
    if checkpoint is not None:
        saved = checkpoint.state.run
        epochs = epochs if epochs is not None else saved.epochs
        max_steps = max_steps if max_steps is not None else saved.max_steps
        dtype = dtype if dtype is not None else checkpoint.state.dtype
        checkpoint_every = checkpoint_every if checkpoint_every is not None else saved.checkpoint_every
        out = out if out is not None else resume
    updates = {k: v for k, v in {"epochs": epochs, "dtype": dtype, "device": device}.items() if v is not None}
    spec = spec.model_copy(update={"training": spec.training.model_copy(update=updates)})
    spec, graph = load_with_graph(spec)
    if cluster is not None and compiled:
        raise UsageError(NO_COMPILED_WORKERS)
    training = spec.training
    out = None if out is None else Path(out)
    checkpoint_every = checkpoint_every or None
    writer = cluster is None or cluster.is_writer  # shows progress, writes files
    data = prepare(
        graph, training, data, data_dir, checkpoint, memory_cap, cluster=cluster, fingerprinted=out is not None
    )
    if out is not None and writer:  # the run's preprocessing (and data files' SHA-256) from its start
        write_preprocessing(data.splits, out)
    total_steps = data.steps_per_epoch * training.epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)

    controls = Controls(training)
    controls.check_monitors(tuple(data.splits.as_dict()), evaluate_every_epoch, output_keys(graph, training))
    if checkpoint is not None:
        controls.load(checkpoint.state.progress.controls, checkpoint.best)
    logger = None
    if logdir is not None and writer:
        logger = EventLog(logdir, spec, backend, cluster)

    timings = {"import_seconds": 0.0, "build_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0}
    module, model, engine = _build(spec, backend, data, cluster, checkpoint, compiled, timings, logger is not None)
    start = checkpoint.state.progress if checkpoint is not None else None
    run_settings = RunSettings(epochs=training.epochs, max_steps=max_steps, checkpoint_every=checkpoint_every)
    keeper = Keeper(spec, backend, training.dtype, run_settings, data.fingerprint, out, writer)
    keeper.start(start.step if start else 0, model, engine, checkpoint)
    checkpoint = None  # its arrays are in the model now
    evaluator = Evaluator(model, engine, objectives(graph, training), data.splits.num_classes, cluster)
    loop = Loop(
        spec,
        engine,
        model,
        data,
        keeper,
        evaluator,
        cluster=cluster,
        total_steps=total_steps,
        checkpoint_every=checkpoint_every,
        evaluate_every_epoch=evaluate_every_epoch,
        callbacks=list(callbacks or []),
        timings=timings,
        controls=controls,
        start=start,
        logger=logger,
    )
    label = f"{spec.name} [{backend}" + (f" x{cluster.world_size}]" if cluster else "]")
    try:
        loop.run(progress and writer, label)
        if controls.stopper is not None and controls.stopper.restore_best and controls.best_weights is not None:
            model.set_weights(controls.best_weights)  # the best epoch's, as early stopping kept them
        result = _finish(loop, backend, model, evaluator, cluster)
        if logger is not None:
            logger.final(result.final, loop.step)
    finally:
        if logger is not None:
            logger.close()
    for callback in loop.callbacks:
        if hasattr(callback, "on_train_end"):
            callback.on_train_end(result)
    if out is not None and writer:
        write_run(result, out)
    if cluster is not None:
        # Leave the framework's process group (a worker's last collective is behind it).
        module.distributed.leave(engine)
    return result


def _build(
    spec, backend: str, data: TrainingData, cluster, checkpoint: Checkpoint | None, compiled, timings, norms=False
):
    """Load the backend, build the model (from the checkpoint's weights) and its engine."""
    training = spec.training
    started = time.perf_counter()
    module = backend_registry.load_backend(backend)
    imported = time.perf_counter()
    options: dict = {"compiled": True} if compiled else {}
    if cluster is not None:
        options["cluster"] = cluster
    if data.sample_weight is not None:
        options["sample_weight"] = data.sample_weight
    if norms:
        options["gradient_norms"] = True
    # With workers, join the framework's own distributed runtime first; the model and the
    # engine are then built inside it (TensorFlow: under the strategy's scope).
    joined = module.distributed.join(cluster, training.device) if cluster else contextlib.nullcontext()
    with joined:
        model = compile_spec(
            spec,
            backend=backend,
            dtype=training.dtype,
            device=training.device,
            weights=checkpoint.weights if checkpoint is not None else None,
        )
        engine = module.Engine(model, x=data.x_train, y=data.y_train, training=training, **options)
    if checkpoint is not None:
        engine.load_optimizer_state(checkpoint.optimizer, checkpoint.state.progress.step)
    built = time.perf_counter()
    timings["import_seconds"] = imported - started
    timings["build_seconds"] = built - imported
    return module, model, engine


def _finish(loop: Loop, backend: str, model, evaluate: Evaluator, cluster: Cluster | None) -> TrainResult:
    """The result: the history, the final evaluation of every split, timings and settings."""
    history = loop.history + ([loop.partial_row] if loop.partial_row else [])
    loop.sync()
    timings = loop.timings
    final = {}
    eval_start = time.perf_counter()
    for split, pair in loop.data.splits.as_dict().items():
        final[split] = evaluate(pair, loop.data.weights_of(split))
    timings["eval_seconds"] += time.perf_counter() - eval_start
    train_seconds = timings["train_seconds"]
    timings = {
        **timings,
        "seconds_per_epoch": train_seconds / max(1, loop.epochs_here),
        "samples_per_second": loop.samples_here / train_seconds if train_seconds > 0 else 0.0,
    }
    training = loop.training
    config = {
        "spec": loop.spec.name,
        "dtype": training.dtype,
        "epochs": training.epochs,
        "batch_size": training.batch_size,
    }
    if training.accumulate_steps > 1:
        config["accumulate_steps"] = training.accumulate_steps
    config["stopped"] = loop.stop_reason
    if loop.controls.stopper is not None and loop.controls.stopper.best_epoch is not None:
        config["best_epoch"] = loop.controls.stopper.best_epoch + 1
        config["restored_best"] = bool(loop.controls.stopper.restore_best and loop.controls.best_weights is not None)
    if loop.first_step:
        config["resumed_at_step"] = loop.first_step
    if cluster is not None:
        config["workers"] = cluster.world_size
        config["rank"] = cluster.rank
    return TrainResult(
        backend,
        model,
        history,
        np.asarray(loop.losses, dtype=np.float64),
        final,
        timings,
        loop.step,
        loop.samples_seen,
        config,
    )
