"""Find backends by name and import them only on first use."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from archspec.errors import BackendUnavailableError, UsageError

BACKENDS = ("torch", "tensorflow")

_PACKAGES = {
    "torch": ("torch", "pip install torch (see README: 'Installing with a GPU')"),
    "tensorflow": ("tensorflow", "pip install tensorflow (CPU only: tensorflow-cpu) and keras>=3"),
}


def check_name(name: str) -> str:
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown backend '{name}': expected one of {', '.join(BACKENDS)}{hint}")
    return name


def load_environment(name: str) -> ModuleType:
    """Import ``archspec.backends.<name>.environment``: what the environment says about this
    backend (its launcher's cluster variables, its ``preflight`` check), without the framework."""
    return importlib.import_module(f"archspec.backends.{check_name(name)}.environment")


def load_backend(name: str) -> ModuleType:
    """Import ``archspec.backends.<name>``; say which package to install if the framework is missing."""
    check_name(name)
    framework, install = _PACKAGES[name]
    load_environment(name).preflight()
    try:
        importlib.import_module(framework)
    except ImportError as error:
        raise BackendUnavailableError(
            f"the {name} backend needs the '{framework}' package, which cannot be imported "
            f"({error}); install it: {install}"
        ) from None
    return importlib.import_module(f"archspec.backends.{name}")
