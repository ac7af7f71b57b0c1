"""Find backends by name and import them only on first use."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from archspec.errors import BackendUnavailableError, UsageError

BACKENDS = ("torch", "tensorflow")

_PACKAGES = {
    "torch": ("torch", "pip install torch (see README: 'Installing with a GPU')"),
    "tensorflow": ("tensorflow", "pip install tensorflow (CPU only: tensorflow-cpu) and keras>=3"),
}


def check_name(name: str) -> str:
    if name not in BACKENDS:
        import difflib

        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown backend '{name}': expected one of {', '.join(BACKENDS)}{hint}")
    return name


def _check_keras_backend() -> None:
    wanted = os.environ.get("KERAS_BACKEND")
    if "keras" in sys.modules:
        active = sys.modules["keras"].backend.backend()
        if active != "tensorflow":
            raise BackendUnavailableError(
                f"Keras was already imported with the '{active}' backend in this process; "
                "archspec's tensorflow backend needs Keras on TensorFlow "
                "(unset KERAS_BACKEND or set it to 'tensorflow' before importing keras)"
            )
    elif wanted and wanted != "tensorflow":
        raise BackendUnavailableError(
            f"KERAS_BACKEND is set to '{wanted}'; archspec's tensorflow backend needs Keras on "
            "TensorFlow: unset KERAS_BACKEND or set it to 'tensorflow'"
        )


def load_backend(name: str) -> ModuleType:
    """Import ``archspec.backends.<name>``; say which package to install if the framework is missing."""
    check_name(name)
    framework, install = _PACKAGES[name]
    if name == "tensorflow":
        _check_keras_backend()
    try:
        importlib.import_module(framework)
    except ImportError as error:
        raise BackendUnavailableError(
            f"the {name} backend needs the '{framework}' package, which cannot be imported "
            f"({error}); install it: {install}"
        ) from None
    return importlib.import_module(f"archspec.backends.{name}")
