"""Fuzzing: random byte flips, truncations, appended junk and rewrites of a real checkpoint.

Resuming either works and reaches the uninterrupted run's weights bit for bit, or raises
CheckpointError and leaves the run folder byte for byte as it was; nothing else.
"""

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import CheckpointError
from reliability.support import assert_bit_identical, folder_digest, interrupted_run

FILES = ("state.json", "weights", "optimizer")
RESUME_TO = 20  # the checkpoint is of step 12; compared with the uninterrupted run at step 20
OUTCOMES = {"resumed": 0, "refused": 0}

flip = st.tuples(st.just("flip"), st.integers(0, 2**20), st.integers(1, 255))
truncate = st.tuples(st.just("truncate"), st.integers(0, 2**20), st.just(0))
append = st.tuples(st.just("append"), st.binary(min_size=1, max_size=16), st.just(0))
overwrite = st.tuples(st.just("overwrite"), st.integers(0, 2**20), st.binary(min_size=1, max_size=8))
reformat = st.tuples(st.just("reformat"), st.integers(0, 4), st.just(0))  # valid JSON, other whitespace
mutation = st.tuples(st.sampled_from(FILES), st.one_of(flip, truncate, append, overwrite, reformat))


def _path(run: Path, name: str) -> Path:
    folder = run / "checkpoint"
    return folder / name if name == "state.json" else next(folder.glob(f"{name}.*.safetensors"))


def _apply(run: Path, name: str, change) -> None:
    path = _path(run, name)
    data = bytearray(path.read_bytes())
    kind, a, b = change
    if kind == "flip" and data:
        data[a % len(data)] ^= b
    elif kind == "truncate":
        del data[a % max(1, len(data)) :]
    elif kind == "append":
        data += a
    elif kind == "overwrite" and data:
        start = a % len(data)
        data[start : start + len(b)] = b
    elif kind == "reformat" and name == "state.json":
        try:
            data = bytearray(json.dumps(json.loads(data), indent=a or None).encode())
        except ValueError:
            pass  # an earlier mutation broke it already
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A run that crashed after step 13, with its checkpoint of step 12."""
    return interrupted_run(tmp_path_factory.mktemp("fuzz"))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_a_fuzzed_checkpoint_resumes_exactly_or_is_refused_untouched(pristine, mutations):
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(pristine.parent, folder, dirs_exist_ok=True)
        run = Path(folder) / "run"
        for name, change in mutations:
            _apply(run, name, change)
        before = folder_digest(run)
        try:
            archspec.train(Path(folder) / "spec.yaml", backend="torch", resume=run, max_steps=RESUME_TO)
        except CheckpointError:
            OUTCOMES["refused"] += 1
            assert folder_digest(run) == before
        else:
            OUTCOMES["resumed"] += 1
            assert_bit_identical(run, "torch", "float64", f"resumed after {mutations}", max_steps=RESUME_TO)
