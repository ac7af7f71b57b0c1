"""Random SIGKILL stress, beyond the test suite: kill a run at random moments, resume it, kill it
again, ... until it finishes; its weights must equal the uninterrupted run's byte for byte.

    .venv/bin/python tests/reliability/stress_kills.py --backend torch --dtype float32 --runs 12 --seed 1

Prints one JSON line: runs, kills, kills that left a half-written checkpoint behind, and the
checkpoint step each kill left. (The README's Reliability figures come from this script.)
"""

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archspec.backend import BACKENDS
from reliability.support import checkpoint_step, kill_when, start_cli, uninterrupted_weights, write_spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=0.25, help="seconds after a new checkpoint appears")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    expected = uninterrupted_weights(args.backend, args.dtype)
    stats = {
        "backend": args.backend,
        "dtype": args.dtype,
        "runs": args.runs,
        "kills": 0,
        "kills_inside_a_checkpoint_write": 0,
        "identical": 0,
        "checkpoint_step_after_each_kill": [],
    }
    for _ in range(args.runs):
        folder = Path(tempfile.mkdtemp(prefix="archspec-stress-"))
        spec, run = str(write_spec(folder)), folder / "run"
        command = [
            "train",
            spec,
            "--backend",
            args.backend,
            "--quiet",
            "--dtype",
            args.dtype,
            "--checkpoint-every",
            "1",
            "--out",
            str(run),
        ]
        state = run / "checkpoint" / "state.json"
        while True:
            before = state.stat().st_mtime_ns if state.exists() else None
            process = start_cli(*command)
            ready = lambda state=state, before=before: state.exists() and state.stat().st_mtime_ns != before  # noqa: E731
            if not kill_when(process, ready, rng.uniform(0, args.max_delay)):
                if process.returncode != 0:
                    raise SystemExit(process.stderr.read())
                break
            stats["kills"] += 1
            if len(list(state.parent.iterdir())) > 3:  # temporary or unreferenced files: killed mid-write
                stats["kills_inside_a_checkpoint_write"] += 1
            stats["checkpoint_step_after_each_kill"].append(checkpoint_step(run))
            command = ["train", spec, "--backend", args.backend, "--quiet", "--resume", str(run)]
        if (run / "weights.safetensors").read_bytes() != expected:
            raise SystemExit(f"{run}: final weights differ from the uninterrupted run")
        stats["identical"] += 1
        shutil.rmtree(folder)
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
