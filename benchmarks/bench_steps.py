"""archspec's torch training step against the hand-written torch step, interleaved in one process.

Usage: python benchmarks/bench_steps.py [--models tcn,transformer,masked_lstm] [--blocks 20]
           [--steps 5] [--threads N]

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
    """Medians of per-step wall and CPU milliseconds of both implementations, and their ratios."""
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
    for run in runs.values():  # warm-up: allocator, first-call caches
        run(steps)
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for block in range(blocks):
        order = list(runs) if block % 2 == 0 else list(reversed(runs))
        for name in order:
            started_wall, started_cpu = time.perf_counter(), time.thread_time()
            runs[name](steps)
            wall[name].append((time.perf_counter() - started_wall) * 1000 / steps)
            cpu[name].append((time.thread_time() - started_cpu) * 1000 / steps)
    return {
        "model": spec.name,
        "threads": torch.get_num_threads(),
        "wall": {name: statistics.median(values) for name, values in wall.items()},
        "cpu": {name: statistics.median(values) for name, values in cpu.items()},
        "wall_ratio": statistics.median(a / h for a, h in zip(wall["archspec"], wall["hand-written"])),
        "cpu_ratio": statistics.median(a / h for a, h in zip(cpu["archspec"], cpu["hand-written"])),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tcn,transformer,masked_lstm", help=f"comma-separated: {','.join(CONFIGS)}")
    parser.add_argument("--blocks", type=int, default=20, help="timed blocks per implementation (default 20)")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per block (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    models = [name for name in args.models.split(",") if name]
    unknown = [name for name in models if name not in CONFIGS]
    if unknown or not models:
        parser.error(f"expected models among {','.join(CONFIGS)}, received {args.models!r}")
    if min(args.blocks, args.steps, args.threads) < 1:
        parser.error(
            f"expected --blocks, --steps and --threads >= 1, received {args.blocks}, {args.steps}, {args.threads}"
        )
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
            f"| {result['model']} | {cpu['archspec']:.2f} | {cpu['hand-written']:.2f} | {result['cpu_ratio']:.3f} "
            f"| {wall['archspec']:.2f} | {wall['hand-written']:.2f} | {result['wall_ratio']:.3f} |",
            flush=True,
        )
    print(f"\nload average at the end {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
