"""A missing or misconfigured framework gives an error that says what to do."""

import os
import subprocess
import sys

from paths import CONFIGS


def run(code: str, **environment):
    env = {**os.environ, **environment}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_missing_torch_says_what_to_install():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import archspec\n"
        "try:\n"
        f"    archspec.compile({str(CONFIGS / 'mnist_mlp.yaml')!r}, backend='torch')\n"
        "except archspec.BackendUnavailableError as e:\n"
        "    print('ERROR', e)\n"
    )
    result = run(code)
    assert "ERROR the torch backend needs the 'torch' package" in result.stdout, result.stderr
    assert "pip install torch" in result.stdout


def test_missing_tensorflow_says_what_to_install():
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import archspec\n"
        "try:\n"
        f"    archspec.compile({str(CONFIGS / 'mnist_mlp.yaml')!r}, backend='tensorflow')\n"
        "except archspec.BackendUnavailableError as e:\n"
        "    print('ERROR', e)\n"
    )
    result = run(code)
    assert "ERROR the tensorflow backend needs the 'tensorflow' package" in result.stdout, result.stderr


def test_missing_jax_says_what_to_install():
    # Without jax, flax (the framework the registry names) cannot be imported either.
    code = (
        "import sys; sys.modules['jax'] = None\n"
        "import archspec\n"
        "try:\n"
        f"    archspec.compile({str(CONFIGS / 'mnist_mlp.yaml')!r}, backend='jax')\n"
        "except archspec.BackendUnavailableError as e:\n"
        "    print('ERROR', e)\n"
    )
    result = run(code)
    assert "ERROR the jax backend needs the 'flax' package" in result.stdout, result.stderr
    assert "pip install jax flax" in result.stdout


def test_keras_on_another_backend_is_refused_clearly():
    code = (
        "import archspec\n"
        "try:\n"
        f"    archspec.compile({str(CONFIGS / 'mnist_mlp.yaml')!r}, backend='tensorflow')\n"
        "except archspec.BackendUnavailableError as e:\n"
        "    print('ERROR', e)\n"
    )
    result = run(code, KERAS_BACKEND="jax")
    assert "ERROR KERAS_BACKEND is set to 'jax'" in result.stdout, result.stderr


def test_unknown_backend_name_suggests():
    result = subprocess.run(
        [sys.executable, "-m", "archspec", "train", str(CONFIGS / "mnist_mlp.yaml"), "--backend", "pytorch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_every_backend_in_one_process():
    code = (
        "import numpy as np, archspec\n"
        f"spec = archspec.load({str(CONFIGS / 'mnist_residual.yaml')!r})\n"
        "models = [archspec.compile(spec, backend=b, dtype='float64') for b in archspec.BACKENDS]\n"
        "x = np.random.default_rng(0).standard_normal((8, 784))\n"
        "first, *others = [model.predict(x) for model in models]\n"
        "print('DIFF', max(float(np.max(np.abs(first - other))) for other in others))\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split("DIFF")[1]) < 1e-12
