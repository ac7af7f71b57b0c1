"""archspec's training step against the hand-written step of its framework, interleaved in one process.

Usage: python benchmarks/bench_steps.py [--backend torch|jax] [--models tcn,transformer,masked_lstm]
           [--blocks 20] [--steps 5] [--threads N]

For each model one process builds archspec's torch engine (``configs/*.yaml``, float32, CPU)
and the hand-written model of ``handwritten.py``, then alternates blocks of ``--steps``
optimizer steps (archspec, hand-written; the next block hand-written first), each step on
the same kind of batch (``batch_size`` consecutive training samples from a random start).
It reports per step, as medians over the blocks:

- wall ms: ``time.perf_counter``; on a machine whose cores other processes share this
  mostly measures the scheduler.
- CPU ms: ``time.thread_time`` of the calling thread. With ``--threads 1`` (the default here)
  torch runs every operator, forward and backward, on that thread, so this is the work of a
  step whatever else runs on the machine; with more threads it misses the worker threads'
  share and counts the time the calling thread spins waiting for them.
- ratio: archspec / hand-written, the median of the per-block ratios (each block is paired
  with its neighbour of the other implementation). Target: <= 1.05.

``--backend jax``: archspec's JAX engine against two hand-written Flax NNX + optax steps
(``handwritten.py``: ``jax.jit`` over the split state with the data on the device and index
batches, the same data path as archspec's; and the tutorial's ``nnx.jit`` step fed numpy
batches), the same sample indices for all. JAX dispatches asynchronously and XLA computes
on its own threads, so a block waits for its last loss and CPU ms is ``time.process_time``
(every thread of the process; run with ``--threads 1``, which turns off XLA's multi-threaded
Eigen, so that it measures the work of a step). Models: mlp, cnn, lstm.

The separate-process and epoch-paired figures come from ``bench_training.py``; this one
isolates the step itself, which is what a busy machine blurs most.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

CONFIGS = {
    "mlp": "configs/mnist_mlp.yaml",
    "cnn": "configs/mnist_cnn.yaml",
    "lstm": "configs/mnist_lstm.yaml",
    "tcn": "configs/mnist_tcn.yaml",
    "transformer": "configs/mnist_transformer.yaml",
    "masked_lstm": "configs/sequences_masked_lstm.yaml",
}


def measure(model: str, blocks: int, steps: int) -> dict:
    """Medians of per-step wall and CPU milliseconds of archspec's torch engine and the hand-written loop."""
    import handwritten
    import numpy as np
    import torch
    import torch.nn.functional as F

    import archspec
    from archspec.backend import load_backend
    from archspec.data import load_dataset

    spec = archspec.load(ROOT / CONFIGS[model])
    splits = load_dataset(spec.data.model_dump(mode="json"), seed=spec.training.seed)
    x, y = splits.train
    batch = spec.training.batch_size
    compiled = archspec.compile(spec, backend="torch", dtype="float32", device="cpu")
    engine = load_backend("torch").Engine(compiled, x={next(iter(spec.inputs)): x}, y=y, training=spec.training)
    learning_rate = spec.training.optimizer.learning_rate

    torch.manual_seed(spec.training.seed)
    network = handwritten.torch_model(model)
    optimizer = handwritten.torch_optimizer(network, spec.training.optimizer)
    inputs, targets = handwritten.torch_inputs(model, x), torch.from_numpy(y).long()
    network.train()

    random = np.random.default_rng(0)
    counter = [0]

    def archspec_steps(count: int) -> None:
        for _ in range(count):
            start = int(random.integers(0, len(x) - batch))
            engine.train_step(np.arange(start, start + batch), counter[0], learning_rate)
            counter[0] += 1

    def handwritten_steps(count: int) -> None:
        for _ in range(count):
            start = int(random.integers(0, len(x) - batch))
            index = torch.arange(start, start + batch)
            loss = F.cross_entropy(network(inputs[index]), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    runs = {"archspec": archspec_steps, "hand-written": handwritten_steps}
    return {"model": spec.name, "threads": torch.get_num_threads(), **interleave(runs, blocks, steps, time.thread_time)}


def interleave(runs: dict, blocks: int, steps: int, clock) -> dict:
    """Blocks of ``steps`` steps of every run in turn (the order reversed every other block),
    after one warm-up block each; medians of per-step wall and ``clock`` (CPU) milliseconds,
    and each hand-written run's ratio: the median of archspec's per-block ratios to it."""
    for run in runs.values():  # warm-up: allocator, first-call caches, compilation
        run(steps)
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for block in range(blocks):
        order = list(runs) if block % 2 == 0 else list(reversed(runs))
        for name in order:
            started_wall, started_cpu = time.perf_counter(), clock()
            runs[name](steps)
            wall[name].append((time.perf_counter() - started_wall) * 1000 / steps)
            cpu[name].append((clock() - started_cpu) * 1000 / steps)
    others = [name for name in runs if name != "archspec"]
    return {
        "wall": {name: statistics.median(values) for name, values in wall.items()},
        "cpu": {name: statistics.median(values) for name, values in cpu.items()},
        "wall_ratio": {o: statistics.median(a / h for a, h in zip(wall["archspec"], wall[o])) for o in others},
        "cpu_ratio": {o: statistics.median(a / h for a, h in zip(cpu["archspec"], cpu[o])) for o in others},
    }


JAX_MODELS = ("mlp", "cnn", "lstm")


def measure_jax(model: str, blocks: int, steps: int) -> dict:
    """Medians of per-step wall and CPU milliseconds of archspec's JAX engine and the two
    hand-written Flax steps, on the same sample indices."""
    import handwritten
    import jax
    import numpy as np

    import archspec
    from archspec.backend import load_backend
    from archspec.data import load_dataset

    spec = archspec.load(ROOT / CONFIGS[model])
    splits = load_dataset(spec.data.model_dump(mode="json"), seed=spec.training.seed)
    x, y = splits.train
    batch = spec.training.batch_size
    compiled = archspec.compile(spec, backend="jax", dtype="float32", device="cpu")
    engine = load_backend("jax").Engine(compiled, x={next(iter(spec.inputs)): x}, y=y, training=spec.training)
    learning_rate = spec.training.optimizer.learning_rate

    network = handwritten.flax_model(model, spec.training.seed)
    network.train()
    split_step, state = handwritten.flax_split_step(
        network, handwritten.flax_optimizer(network, spec.training.optimizer)
    )
    x_device, y_device = jax.device_put(x), jax.device_put(y.astype(np.int32))
    tutorial = handwritten.flax_model(model, spec.training.seed)
    tutorial.train()
    tutorial_optimizer = handwritten.flax_optimizer(tutorial, spec.training.optimizer)
    nnx_step = handwritten.flax_nnx_step()

    random = np.random.default_rng(0)
    counter = [0]
    holder = {"state": state}

    def indices() -> np.ndarray:
        start = int(random.integers(0, len(x) - batch))
        return np.arange(start, start + batch, dtype=np.int32)

    def archspec_steps(count: int) -> None:
        loss = None
        for _ in range(count):
            loss = engine.train_step(indices(), counter[0], learning_rate)
            counter[0] += 1
        jax.block_until_ready(loss)

    def split_steps(count: int) -> None:
        loss = None
        for _ in range(count):
            holder["state"], loss = split_step(holder["state"], x_device, y_device, indices())
        jax.block_until_ready(loss)

    def nnx_steps(count: int) -> None:
        loss = None
        for _ in range(count):
            index = indices()
            loss = nnx_step(tutorial, tutorial_optimizer, x[index], y[index])
        jax.block_until_ready(loss)

    runs = {"archspec": archspec_steps, "jax.jit split state": split_steps, "nnx.jit": nnx_steps}
    return {"model": spec.name, **interleave(runs, blocks, steps, time.process_time)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=("torch", "jax"), default="torch", help="archspec's engine (default torch)"
    )
    parser.add_argument("--models", default=None, help=f"comma-separated: {','.join(CONFIGS)} (jax: mlp,cnn,lstm)")
    parser.add_argument("--blocks", type=int, default=20, help="timed blocks per implementation (default 20)")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per block (default 5)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads / XLA: 1 turns off its multi-threaded Eigen (default 1)",
    )
    args = parser.parse_args(argv)
    known = JAX_MODELS if args.backend == "jax" else tuple(CONFIGS)
    text = args.models or ("mlp,cnn,lstm" if args.backend == "jax" else "tcn,transformer,masked_lstm")
    models = [name for name in text.split(",") if name]
    unknown = [name for name in models if name not in known]
    if unknown or not models:
        parser.error(f"expected models among {','.join(known)}, received {text!r}")
    if min(args.blocks, args.steps, args.threads) < 1:
        parser.error(
            f"expected --blocks, --steps and --threads >= 1, received {args.blocks}, {args.steps}, {args.threads}"
        )
    if args.backend == "jax":
        return _main_jax(args, models)
    import torch

    torch.set_num_threads(args.threads)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores, load average {load}")
    print(f"{args.blocks} blocks of {args.steps} steps per implementation, interleaved; medians per step\n")
    print(
        "| model | archspec CPU ms | hand-written CPU ms | CPU ratio | archspec wall ms | hand-written wall ms | wall ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model in models:
        result = measure(model, args.blocks, args.steps)
        cpu, wall = result["cpu"], result["wall"]
        print(
            f"| {result['model']} | {cpu['archspec']:.2f} | {cpu['hand-written']:.2f} | {result['cpu_ratio']['hand-written']:.3f} "
            f"| {wall['archspec']:.2f} | {wall['hand-written']:.2f} | {result['wall_ratio']['hand-written']:.3f} |",
            flush=True,
        )
    print(f"\nload average at the end {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    return 0


def _main_jax(args, models: list[str]) -> int:
    if args.threads == 1:  # before JAX starts its runtime
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    import flax
    import jax

    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"jax {jax.__version__}, flax {flax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"{os.cpu_count()} cores, load average {load}"
    )
    print(f"{args.blocks} blocks of {args.steps} steps per implementation, interleaved; medians per step\n")
    print("| model | step | CPU ms | wall ms | archspec / it, CPU | archspec / it, wall |")
    print("|---|---|---:|---:|---:|---:|")
    for model in models:
        result = measure_jax(model, args.blocks, args.steps)
        cpu, wall = result["cpu"], result["wall"]
        for name in cpu:
            ratios = (
                ("", "")
                if name == "archspec"
                else (f"{result['cpu_ratio'][name]:.3f}", f"{result['wall_ratio'][name]:.3f}")
            )
            print(
                f"| {result['model']} | {name} | {cpu[name]:.2f} | {wall[name]:.2f} | {ratios[0]} | {ratios[1]} |",
                flush=True,
            )
    print(f"\nload average at the end {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
