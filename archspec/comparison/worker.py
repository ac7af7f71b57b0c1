"""One backend's side of ``archspec compare``: train, measure, write results.

Run as ``python -m archspec.comparison.worker SPEC --backend NAME --out DIR``; the
parent reads ``result.json``, ``weights.safetensors`` and ``arrays.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from archspec.api import load
from archspec.data.splits import sample_count
from archspec.errors import ArchSpecError
from archspec.training import train
from archspec.training.preparation import load_splits


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(args) -> dict:
    result = train(
        args.spec,
        backend=args.backend,
        epochs=args.epochs,
        max_steps=args.max_steps,
        dtype=args.dtype,
        data_dir=args.data_dir,
        progress=args.progress,
        logdir=args.logdir,
    )
    out = Path(args.out)
    result.model.save_weights(out / "weights.safetensors")
    arrays = {"step_losses": np.asarray(result.step_losses, dtype=np.float64)}
    inference = None
    test = _test_inputs(args, result)
    if test is not None:
        start = time.perf_counter()
        tensors = result.model.forward_tensors(test, batch_size=1024)
        elapsed = time.perf_counter() - start
        count = sample_count(test)
        inference = count / elapsed if elapsed > 0 else None
        # The predicted class of every output (several outputs: one column each).
        classes = [
            (np.argmax(outputs, axis=-1) if outputs.shape[-1] > 1 else (outputs[:, 0] > 0.5)).astype(np.int64)
            for outputs in (tensors[name] for name in result.model.graph.outputs)
        ]
        arrays["test_predictions"] = classes[0] if len(classes) == 1 else np.stack(classes, axis=1)
    save_file(arrays, str(out / "arrays.safetensors"))
    summary = {
        "backend": args.backend,
        "param_count": result.model.param_count,
        "native_param_count": result.model.native_param_count(),
        "final": result.final,
        "history": result.history,
        "timings": result.timings,
        "steps": result.steps,
        "inference_samples_per_second": inference,
        "peak_rss_mib": _peak_rss_mib(),
    }
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    return summary


def _test_inputs(args, result):
    spec = load(args.spec)
    if spec.data is None:
        return None
    splits = load_splits(spec, None, args.data_dir)  # data sets and data files alike
    pair = splits.test or splits.validation
    return None if pair is None else pair[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="archspec.comparison.worker")
    parser.add_argument("spec")
    parser.add_argument("--logdir")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--dtype")
    parser.add_argument("--data-dir")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        run(args)
    except ArchSpecError as error:
        print(f"archspec: error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
