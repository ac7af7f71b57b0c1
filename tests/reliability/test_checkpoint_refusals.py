"""A truncated, corrupt, forged or mismatched checkpoint is refused with one CheckpointError,
and the run folder is left exactly as it was (compared byte for byte)."""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

import archspec
from archspec.cli import main
from archspec.errors import CheckpointError
from reliability.support import folder_digest, interrupted_run, write_spec

SPEC_CHANGES = {
    "architecture": ("units: 16, activation: tanh", "units: 17, activation: tanh"),
    "optimizer": ("learning_rate: 0.01", "learning_rate: 0.02"),
    "seed": ("seed: 3", "seed: 4"),
    "data": ("n_samples: 600", "n_samples: 601"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A run that crashed after step 13, with its checkpoint of step 12."""
    folder = tmp_path_factory.mktemp("pristine")
    return interrupted_run(folder)


@pytest.fixture
def run(pristine, tmp_path):
    shutil.copytree(pristine.parent, tmp_path, dirs_exist_ok=True)
    return tmp_path / "run"


def _state(run):
    return run / "checkpoint" / "state.json"


def _array_file(run, role):
    return next((run / "checkpoint").glob(f"{role}.*.safetensors"))


def _rewrite_state(run, change):
    """Change state.json's content and re-sign it, as a forger would."""
    document = json.loads(_state(run).read_text())
    change(document["checkpoint"])
    body = json.dumps(document["checkpoint"], sort_keys=True, separators=(",", ":")).encode()
    document["sha256"] = hashlib.sha256(body).hexdigest()
    _state(run).write_text(json.dumps(document))


def _truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated weights": (lambda run: _truncate(_array_file(run, "weights"), 100), "truncated or corrupt"),
    "flipped weights byte": (lambda run: _flip(_array_file(run, "weights"), -3), "truncated or corrupt"),
    "flipped optimizer header": (lambda run: _flip(_array_file(run, "optimizer"), 20), "truncated or corrupt"),
    "missing optimizer": (lambda run: _array_file(run, "optimizer").unlink(), "missing"),
    "empty state": (lambda run: _state(run).write_bytes(b""), "not readable JSON"),
    "truncated state": (lambda run: _truncate(_state(run), 200), "not readable JSON"),
    "binary state": (lambda run: _state(run).write_bytes(b"\xff\xfe\x00\x01"), "not readable JSON"),
    "edited step": (
        lambda run: _state(run).write_text(_state(run).read_text().replace('"step": 12', '"step": 11')),
        "does not match its SHA-256",
    ),
    "state is a list": (lambda run: _state(run).write_text("[1, 2]"), "expected an object"),
    "forged step": (lambda run: _rewrite_state(run, lambda s: s["progress"].update(step=13)), "does not add up"),
    "forged losses": (lambda run: _rewrite_state(run, lambda s: s["progress"]["step_losses"].pop()), "does not add up"),
    "forged path": (
        lambda run: _rewrite_state(run, lambda s: s["files"]["weights"].update(name="../../x.safetensors")),
        "invalid checkpoint state at 'files.weights.name'",
    ),
    "forged format": (
        lambda run: _rewrite_state(run, lambda s: s.update(version=2)),
        "invalid checkpoint state at 'version'",
    ),
    "forged dtype": (
        lambda run: _rewrite_state(run, lambda s: (s.update(dtype="float32"), s["training"].update(dtype="float32"))),
        "of dtype float32, received float64",
    ),
    "no checkpoint": (lambda run: shutil.rmtree(run / "checkpoint"), "no checkpoint to resume from"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_checkpoints_are_refused_and_the_folder_is_untouched(run, damage):
    change, message = DAMAGE[damage]
    change(run)
    before = folder_digest(run)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        archspec.train(run.parent / "spec.yaml", backend="torch", resume=run)
    assert folder_digest(run) == before


@pytest.mark.parametrize("change", SPEC_CHANGES)
def test_a_checkpoint_of_another_spec_is_refused(run, change):
    old, new = SPEC_CHANGES[change]
    spec = run.parent / "spec.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))
    before = folder_digest(run)
    expected = {
        "architecture": "spec hash mismatch",
        "optimizer": "trained with optimizer",
        "seed": "trained with seed = 3, this run has 4",
        "data": "trained on other data",
    }[change]
    with pytest.raises(CheckpointError, match=expected):
        archspec.train(spec, backend="tensorflow", resume=run)
    assert folder_digest(run) == before


def test_an_override_that_contradicts_the_checkpoint_is_refused(run):
    before = folder_digest(run)
    with pytest.raises(CheckpointError, match="trained with dtype = 'float64', this run has 'float32'"):
        archspec.train(run.parent / "spec.yaml", backend="torch", resume=run, dtype="float32")
    assert folder_digest(run) == before


def test_the_cli_refuses_in_one_line_with_exit_code_1(run, capsys):
    _flip(_array_file(run, "weights"), 40)
    before = folder_digest(run)
    assert main(["train", str(run.parent / "spec.yaml"), "--resume", str(run), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archspec: error: ") and "truncated or corrupt" in err
    assert folder_digest(run) == before


def test_the_cli_in_a_fresh_process_shows_no_traceback(run):
    _truncate(_state(run), 10)
    before = folder_digest(run)
    result = subprocess.run(
        [sys.executable, "-m", "archspec", "train", str(run.parent / "spec.yaml"), "--resume", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "state.json: not readable JSON" in result.stderr
    assert folder_digest(run) == before


def test_a_weights_file_with_a_header_bomb_is_refused(tmp_path):
    spec = write_spec(tmp_path)
    model = archspec.compile(spec, backend="torch")
    path = tmp_path / "bomb.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        archspec.load_weights(model, path)
