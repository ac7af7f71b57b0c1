"""The reference, the shared definitions and the core's numpy losses and metrics load without any
deep-learning framework."""

import subprocess
import sys
from pathlib import Path

MODULES = [
    "archspec.definitions.constants",
    "archspec.definitions.optimizers",
    "archspec.definitions.schedules",
    "archspec.losses",
    "archspec.reference.optimizers",
    "archspec.reference.losses",
    "archspec.metrics",
    "archspec.random",
]


def test_reference_modules_import_no_framework():
    code = (
        f"import sys; import {', '.join(MODULES)}; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules))"
    )
    repository = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=repository, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
