"""A run killed with SIGKILL, again and again, then resumed, ends bit-identical to an uninterrupted run.

Each case is one run killed three times by a real SIGKILL (no cleanup code runs) and resumed
through the command line each time: right after a checkpoint completes, inside a checkpoint
write (at a rename, an fsync or the deletion of old files) and at a random moment chosen by
the parent process; the last resume runs to the end. Its weights.safetensors must equal an
uninterrupted run's byte for byte, in float32 and float64, on every backend of the registry.
"""

import itertools
import random
import signal

import pytest

from archspec.backend import BACKENDS
from reliability.support import (
    CHECKPOINT_EVERY,
    STEPS,
    assert_bit_identical,
    checkpoint_step,
    cli,
    kill_when,
    start_cli,
    write_spec,
)

# Kill points inside the resumed run's second checkpoint write, and the checkpoint step each leaves.
# The first run is killed right after its 3rd checkpoint (step 12); the resumed run then checkpoints at
# step 15 (the end of epoch 1) and step 16, each write being: weights (fsync file, rename, fsync
# folder), optimizer (same), state.json (same), then deleting the previous checkpoint's two array files.
WRITE_KILLS = [
    ("replace:6", 15),  # before state.json of step 16 replaces the old one
    ("fsync:8", 15),  # between the weights file's rename and its folder fsync
    ("unlink:3", 16),  # after state.json of step 16, before old files are deleted
    ("replace:5", 15),  # before the optimizer file of step 16 is renamed
    ("fsync:10", 15),  # between the optimizer file's rename and its folder fsync
    ("unlink:4", 16),  # between the deletions of the two old files
]
# (backend, dtype, kill point, checkpoint step it leaves): every backend in both dtypes, each case at
# the next kill point of the list.
CASES = [
    (backend, dtype, *WRITE_KILLS[i % len(WRITE_KILLS)])
    for i, (backend, dtype) in enumerate(itertools.product(BACKENDS, ("float32", "float64")))
]


@pytest.mark.parametrize("backend, dtype, write_kill, left_at", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_killed_three_times_then_resumed_is_bit_identical(tmp_path, backend, dtype, write_kill, left_at):
    spec = str(write_spec(tmp_path))
    run = tmp_path / "run"
    options = ("--backend", backend, "--quiet")

    first = cli(
        "train",
        spec,
        *options,
        "--dtype",
        dtype,
        "--checkpoint-every",
        str(CHECKPOINT_EVERY),
        "--out",
        str(run),
        kill="checkpoint:3",
    )
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert checkpoint_step(run) == 3 * CHECKPOINT_EVERY

    # --resume takes dtype and checkpoint_every over from the checkpoint.
    second = cli("train", spec, *options, "--resume", str(run), kill=write_kill)
    assert second.returncode == -signal.SIGKILL, second.stderr[-2000:]
    assert checkpoint_step(run) == left_at
    leftovers = sorted(p.name for p in (run / "checkpoint").iterdir())
    assert len(leftovers) > 3, f"the kill inside the write left nothing behind: {leftovers}"

    state = run / "checkpoint" / "state.json"
    before = state.stat().st_mtime_ns
    third = start_cli("train", spec, *options, "--resume", str(run))
    delay = random.Random(f"{backend}{dtype}").uniform(0.0, 0.4)
    killed = kill_when(third, lambda: state.stat().st_mtime_ns != before, delay)
    if not killed:
        assert third.returncode == 0, third.stderr.read()[-2000:]
    assert checkpoint_step(run) is not None  # killed anywhere: a complete checkpoint is always there

    last = cli("train", spec, *options, "--resume", str(run))
    assert last.returncode == 0, last.stderr[-2000:]
    assert checkpoint_step(run) == STEPS
    assert_bit_identical(run, backend, dtype, f"{backend} {dtype}")
