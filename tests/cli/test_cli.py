"""The command line: exit codes, one-line errors, no traceback, no framework imported."""

import json
import subprocess
import sys

import pytest

from archspec.backend import BACKENDS, REGISTRY
from archspec.cli import main


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "archspec", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_validate_every_config(configs_dir, capsys):
    paths = sorted(str(p) for p in configs_dir.glob("*.yaml"))
    assert len(paths) == 19
    assert main(["validate", *paths]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok (") == len(paths)


def test_validate_reports_every_problem_located(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ninputs: {x: {shape: [4]}}\nlayers:\n  - {type: dense, unitz: 3}\n  - {type: dens, units: 2}\n"
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 2
    assert err[0].startswith(f"{bad}:4:")
    assert any(
        line.startswith(f"{bad}:4:") and "unknown field 'unitz' in dense layer; did you mean 'units'?" in line
        for line in err
    )
    assert any(line.startswith(f"{bad}:4:") and "missing required field 'units'" in line for line in err)
    assert any(line.startswith(f"{bad}:5:") and "did you mean 'dense'" in line for line in err)


def test_graph_problems_are_located(tmp_path, capsys):
    bad = tmp_path / "graph.yaml"
    bad.write_text(
        "name: g\n"
        "inputs: {x: {shape: [4]}}\n"
        "layers:\n"
        "  - {id: a, type: dense, units: 3}\n"
        "  - {id: b, type: dense, units: 3, inputs: [aa]}\n"
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "unknown input or layer id 'aa'; did you mean 'a'?" in err


def test_shape_problem_is_located(tmp_path, capsys):
    bad = tmp_path / "shape.yaml"
    bad.write_text(
        "name: s\ninputs: {x: {shape: [784]}}\nlayers:\n  - {type: dense, units: 8}\n  - {type: lstm, units: 4}\n"
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "lstm expects a sequence" in err


def test_summary_table(configs_dir, capsys):
    assert main(["summary", str(configs_dir / "mnist_cnn.yaml")]) == 0
    out = capsys.readouterr().out
    assert "[None, 26, 26, 32]" in out and "320" in out
    assert "total parameters: 225,034" in out


def test_schema_is_json_with_every_layer_type(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    text = json.dumps(schema)
    for name in ("dense", "conv2d", "bidirectional", "layer_norm"):
        assert f'"{name}"' in text


def test_usage_error_exit_code_2():
    result = run("validate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_missing_file_is_one_line_exit_1(tmp_path):
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{tmp_path / 'nope.yaml'}: no such file"


@pytest.mark.parametrize("content", [b"", b"- a\n- b\n", b"\xff\xfe\x00bad", b"name: [unclosed\n"])
def test_malformed_files_never_traceback(tmp_path, content):
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    result = run("validate", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(str(path))


def test_validate_and_summary_import_no_framework(configs_dir):
    code = (
        "import sys; from archspec.cli import main; "
        f"main(['validate', {str(configs_dir / 'mnist_lstm.yaml')!r}]); "
        f"main(['summary', {str(configs_dir / 'mnist_cnn.yaml')!r}]); "
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules]; "
        "print('FRAMEWORKS', bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "FRAMEWORKS []" in result.stdout


def test_core_package_imports_no_framework(root_dir):
    code = (
        "import sys, pkgutil, importlib, archspec; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(archspec.__path__, 'archspec.') "
        " if not m.name.startswith('archspec.backends') and m.name != 'archspec.__main__']; "
        "print('FRAMEWORKS', [m for m in ('torch', 'tensorflow', 'keras', 'jax', 'flax') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "FRAMEWORKS []" in result.stdout


def framework_package(backend: str) -> str:
    """The top-level package of ``backend``'s framework (torch, tensorflow, flax)."""
    return REGISTRY[backend].framework.partition(".")[0]


# TensorFlow itself imports jax when it is installed (tensorflow.lite), so "another framework"
# is checked by the registry's framework packages: torch, tensorflow, flax.
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_imports_only_its_own_framework(configs_dir, tmp_path, backend):
    from paths import mnist_dir

    others = [framework_package(b) for b in BACKENDS if b != backend]
    code = (
        "import sys; from archspec.cli import main; "
        f"code = main(['train', {str(configs_dir / 'mnist_mlp.yaml')!r}, '--backend', {backend!r}, '--max-steps', '3', "
        f"'--quiet', '--data-dir', {str(mnist_dir())!r}, '--out', {str(tmp_path)!r}]); "
        f"print('CODE', code, 'OTHER', [m for m in {others!r} if m in sys.modules], "
        f"'OWN', {framework_package(backend)!r} in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "CODE 0 OTHER [] OWN True" in result.stdout, result.stdout + result.stderr
    assert {p.name for p in tmp_path.iterdir()} >= {"metrics.json", "history.csv", "weights.safetensors"}
