"""Find backends by name and import them only on first use."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from archspec.errors import BackendUnavailableError, UsageError


@dataclass(frozen=True)
class BackendEntry:
    """One backend of the registry.

    A backend is the folder ``backends/<name>/`` (imported as ``archspec.backends.<name>``,
    implementing ``archspec/contract.py``), this entry, and its requirements: the
    ``pyproject.toml`` extra ``[<name>]`` and its pins in ``requirements/frameworks-*.txt``.
    """

    name: str  # the argument of compile(spec, backend=...), and the folder's name
    framework: str  # the module that must import for the backend to work
    install: str  # what to run when it does not

    @property
    def package(self) -> str:
        return f"archspec.backends.{self.name}"


# The one registry of backends: everything that lists or checks backend names reads it.
REGISTRY: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry("torch", "torch", "pip install torch (see README: 'Installing with a GPU')"),
        BackendEntry("tensorflow", "tensorflow", "pip install tensorflow (CPU only: tensorflow-cpu) and keras>=3"),
        BackendEntry("jax", "flax", "pip install jax flax (CPU; on a CUDA machine: jax[cuda12]), see the README"),
    )
}
BACKENDS: tuple[str, ...] = tuple(REGISTRY)


def check_name(name: str) -> str:
    """``name`` if it is a registered backend; else a ``UsageError`` listing them."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown backend: expected one of {', '.join(BACKENDS)}, received '{name}'{hint}")
    return name


def backend_entry(name: str) -> BackendEntry:
    """The registry entry of backend ``name`` (a ``UsageError`` listing the backends if unknown)."""
    return REGISTRY[check_name(name)]


def load_environment(name: str) -> ModuleType:
    """Import ``archspec.backends.<name>.environment``: what the environment says about this
    backend (its launcher's cluster variables, its ``preflight`` check), without the framework."""
    return importlib.import_module(f"archspec.backends.{check_name(name)}.environment")


def load_backend(name: str) -> ModuleType:
    """Import ``archspec.backends.<name>``; say which package to install if the framework is missing."""
    entry = backend_entry(name)
    load_environment(name).preflight()
    try:
        importlib.import_module(entry.framework)
    except ImportError as error:
        raise BackendUnavailableError(
            f"the {name} backend needs the '{entry.framework}' package, which cannot be imported "
            f"({error}); install it: {entry.install}"
        ) from None
    return importlib.import_module(entry.package)


def lazy_names(package: str, module_of: dict[str, str]) -> Callable[[str], object]:
    """The module ``__getattr__`` of a backend package: ``name`` -> the module of ``module_of`` that
    defines it, plus ``distributed``, imported on first use (so the package's ``environment`` module
    imports without the framework).

    The first name asked for loads every module of the backend at once, in one order, before any
    of them is used: a torch module first imported after the process group was created (the
    layers, when the trainer joins the cluster before building) left gloo's threads running after
    ``destroy_process_group``, which can abort the process at exit.
    """
    modules = ("distributed", *dict.fromkeys(module_of.values()))

    def __getattr__(name: str) -> object:
        if name != "distributed" and name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module in modules:
            importlib.import_module(f"{package}.{module}")
        if name == "distributed":
            return importlib.import_module(f"{package}.distributed")
        return getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)

    return __getattr__
