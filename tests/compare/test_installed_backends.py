"""`compare` without --backends takes every backend whose framework is installed and names the
others in a note; a backend named on purpose whose framework is missing is refused up front,
saying what to install (before any run starts)."""

import subprocess
import sys

from paths import CONFIGS


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_missing_framework_is_left_out_with_a_note():
    # sys.modules[name] = None makes the module unimportable, as if it were not installed.
    result = run(
        "import sys; sys.modules['flax'] = None\n"
        "from archspec.comparison.runner import choose_backends\n"
        "backends, notes = choose_backends(None)\n"
        "print('BACKENDS', ','.join(backends)); print('NOTES', notes)\n"
        "print('LOADED', [m for m in ('torch', 'tensorflow', 'jax', 'flax') if sys.modules.get(m) is not None])\n"
    )
    assert result.returncode == 0, result.stderr
    assert "BACKENDS torch,tensorflow\n" in result.stdout
    assert "jax left out: its framework 'flax' is not installed (pip install jax flax" in result.stdout
    assert "LOADED []" in result.stdout  # choosing imports no framework


def test_a_named_backend_without_its_framework_is_refused_with_what_to_install():
    result = run(
        "import sys; sys.modules['flax'] = None\n"
        "from archspec.cli import main\n"
        f"sys.exit(main(['compare', {str(CONFIGS / 'mnist_mlp.yaml')!r}, '--backends', 'torch,jax', '--quiet']))\n"
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert (
        "the jax backend needs the 'flax' package, which is not installed; install it: pip install jax flax" in lines[0]
    )


def test_no_installed_backend_is_refused():
    result = run(
        "import sys\n"
        "for name in ('torch', 'tensorflow', 'flax'): sys.modules[name] = None\n"
        "from archspec.cli import main\n"
        f"sys.exit(main(['compare', {str(CONFIGS / 'mnist_mlp.yaml')!r}, '--quiet']))\n"
    )
    assert result.returncode == 1, result.stderr
    assert "expected at least one installed backend among torch, tensorflow, jax, received none" in result.stderr
