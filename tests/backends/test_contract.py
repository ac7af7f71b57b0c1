"""Every registered backend implements the written contract (``archspec/contract.py``), member by member.

A member is present, callable where the protocol declares a method, and has a signature a caller
of the protocol can use (same parameter names and kinds, defaults where the protocol has them,
extra parameters only with defaults). The backends are found through the registry.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import subprocess
import sys
import types
import typing

import pytest
import tomllib

from archspec import contract
from archspec.backend import BACKENDS, REGISTRY
from archspec.model import CompiledModel

# Every framework a backend may import; keras: the TensorFlow backend builds on it.
FRAMEWORK_MODULES = sorted({entry.framework for entry in REGISTRY.values()} | {"keras"})


def declared_members(protocol: type) -> list[str]:
    """The members ``protocol`` declares itself: methods, properties, annotated attributes, ``__init__``."""
    names = [name for name in vars(protocol) if not name.startswith("_")]
    names += [name for name in protocol.__annotations__ if name not in names]
    # typing gives every protocol an __init__ of its own; only one written in the protocol counts.
    if getattr(vars(protocol).get("__init__"), "__qualname__", "") == f"{protocol.__name__}.__init__":
        names.insert(0, "__init__")
    return names


def signature_problems(expected: inspect.Signature, actual: inspect.Signature) -> list[str]:
    """Why a call written against ``expected`` would fail on ``actual`` (empty when it would not)."""
    problems = []
    actual_params = actual.parameters
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in actual_params.values())
    positional = [p.name for p in actual_params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for index, param in enumerate(expected.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        found = actual_params.get(param.name)
        if found is None:
            if not (takes_any_keyword and param.kind is param.KEYWORD_ONLY):
                problems.append(f"has no parameter '{param.name}'")
            continue
        if param.kind is param.POSITIONAL_OR_KEYWORD and (
            found.kind is not param.POSITIONAL_OR_KEYWORD or positional.index(param.name) != index
        ):
            problems.append(f"takes '{param.name}' as {found.kind.description}, expected positional #{index}")
        if param.kind is param.KEYWORD_ONLY and found.kind not in (found.KEYWORD_ONLY, found.POSITIONAL_OR_KEYWORD):
            problems.append(f"cannot take '{param.name}' by keyword")
        if param.default is not param.empty and found.default is found.empty:
            problems.append(f"has no default for '{param.name}'")
    for name, found in actual_params.items():
        required = found.default is found.empty and found.kind not in (found.VAR_POSITIONAL, found.VAR_KEYWORD)
        if name not in expected.parameters and required:
            problems.append(f"requires '{name}', which the contract does not pass")
    return problems


def contract_problems(implementation: object, protocol: type, is_module: bool) -> list[str]:
    """Every member of ``protocol`` that ``implementation`` (a module or a class) lacks or gets wrong."""
    problems = []
    for name in declared_members(protocol):
        where = f"'{name}' (archspec.contract.{protocol.__name__}.{name})"
        if not hasattr(implementation, name):
            problems.append(f"missing {where}")
            continue
        declared = inspect.getattr_static(protocol, name, None)
        if declared is None:  # an annotated attribute: presence is the contract
            continue
        if isinstance(declared, property):
            if not is_module and not isinstance(inspect.getattr_static(implementation, name), property):
                problems.append(f"{where} is not a property")
            continue
        member = getattr(implementation, name)
        if not callable(member):
            problems.append(f"{where} is not callable")
            continue
        expected = inspect.signature(declared)
        if is_module:  # a module's functions have no ``self``
            expected = expected.replace(parameters=list(expected.parameters.values())[1:])
        actual = inspect.signature(member)
        problems += [f"{where} {problem}" for problem in signature_problems(expected, actual)]
    return problems


def backend_package(name: str) -> types.ModuleType:
    entry = REGISTRY[name]
    if importlib.util.find_spec(entry.framework) is None:
        pytest.skip(f"the {name} backend's framework '{entry.framework}' is not installed")
    return importlib.import_module(entry.package)


def compiled_model_class(package: types.ModuleType) -> type:
    """The class ``build`` returns, from its return annotation."""
    return typing.get_type_hints(package.build)["return"]


def implementation(backend: str, part: str) -> tuple[object, type, bool]:
    """What the contract checks in ``backend``: (the module or class, its protocol, whether it is a module)."""
    package = backend_package(backend)
    if part == "package":
        return package, contract.Backend, True
    if part == "engine":
        return package.Engine, contract.Engine, False
    if part == "compiled model":
        return compiled_model_class(package), contract.CompiledModel, False
    protocol = {
        "distributed": contract.Distributed,
        "environment": contract.Environment,
        "layers": contract.Layers,
        "layout": contract.Layout,
        "export": contract.Export,
        "porting": contract.Porting,
    }[part]
    return importlib.import_module(f"{package.__name__}.{part}"), protocol, True


PARTS = ["package", "engine", "compiled model", "distributed", "environment", "layers", "layout", "export", "porting"]


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_implements_the_contract(backend, part):
    checked, protocol, is_module = implementation(backend, part)
    problems = contract_problems(checked, protocol, is_module)
    assert not problems, f"backend '{backend}', {part}:\n" + "\n".join(problems)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_model_builds_on_the_core_class(backend):
    model_class = compiled_model_class(backend_package(backend))
    assert issubclass(model_class, CompiledModel), f"{backend}: {model_class} is not an archspec.model.CompiledModel"
    assert model_class.backend == backend, f"{model_class.__name__}.backend is {model_class.backend!r}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_environment_imports_no_framework(backend):
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({REGISTRY[backend].package + '.environment'!r})\n"
        f"print(sorted(name for name in {FRAMEWORK_MODULES!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing {backend}'s environment imported {result.stdout.strip()}"


def test_porting_frameworks_are_the_originals_they_give():
    """Each backend imports its own framework's models, and says which as its Originals do."""
    frameworks = {
        backend: importlib.import_module(f"{backend_package(backend).__name__}.porting").FRAMEWORK
        for backend in BACKENDS
    }
    assert len(set(frameworks.values())) == len(frameworks), f"two backends import one framework: {frameworks}"
    known = {"torch": "torch", "tensorflow": "keras", "jax": "flax"}
    assert {b: f for b, f in frameworks.items() if b in known} == {b: known[b] for b in frameworks if b in known}


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_folder_has_the_shared_module_names(root_dir, backend):
    missing = [
        module for module in contract.MODULES if not (root_dir / "backends" / backend / f"{module}.py").is_file()
    ]
    assert not missing, f"backends/{backend}/ lacks {', '.join(f'{m}.py' for m in missing)} (archspec.contract.MODULES)"


@pytest.mark.parametrize("backend", BACKENDS)
def test_registry_entry_has_its_requirements(root_dir, backend):
    entry = REGISTRY[backend]
    extras = tomllib.loads((root_dir / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert backend in extras, f"pyproject.toml has no extra [{backend}] naming the {backend} backend's framework"
    pinned = [line.split("==")[0] for line in (root_dir / "requirements" / "frameworks-cpu.txt").read_text().split()]
    assert any(name.startswith(entry.framework) for name in pinned), (
        f"requirements/frameworks-cpu.txt pins no '{entry.framework}' for the {backend} backend"
    )


def test_backends_are_exactly_the_registry(root_dir):
    folders = sorted(path.parent.name for path in (root_dir / "backends").glob("*/__init__.py"))
    assert folders == sorted(BACKENDS), f"backends/ holds {folders}; the registry lists {sorted(BACKENDS)}"


def test_every_package_folder_is_in_pyprojects_package_list(root_dir):
    """A wheel holds only the listed packages: a new sub-package must be added to the list."""
    listed = set(tomllib.loads((root_dir / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(("archspec",) + path.parent.relative_to(root_dir / top).parts)
        if top == "archspec"
        else ".".join(("archspec", "backends", *path.parent.relative_to(root_dir / top).parts))
        for top in ("archspec", "backends")
        for path in (root_dir / top).rglob("__init__.py")
    }
    assert found - listed == set(), f"pyproject.toml's [tool.setuptools] packages lacks {sorted(found - listed)}"
    assert listed - found == set(), f"pyproject.toml lists packages that do not exist: {sorted(listed - found)}"


# --- the checker itself: it must name what is missing or wrong ------------------------------------


def test_checker_names_a_missing_member():
    layout = types.ModuleType("layout_without_node_slots")
    problems = contract_problems(layout, contract.Layout, is_module=True)
    assert problems == ["missing 'node_slots' (archspec.contract.Layout.node_slots)"]


def test_checker_names_an_incompatible_signature():
    class Engine:
        def __init__(
            self, model, *, x, y, training, compiled=False, cluster=None, sample_weight=None, gradient_norms=False
        ): ...
        def train_step(self, indices, step): ...  # no learning_rate, offset, fraction
        def train_parts(self, parts, step, learning_rate): ...
        def losses_to_numpy(self, losses): ...
        def all_reduce_sum(self, values, device): ...  # requires a device the trainer does not pass
        def optimizer_state(self): ...
        def load_optimizer_state(self, state, step): ...
        def optimizer_step_only(self, grads, learning_rate, step): ...

        unwrap = None  # not callable

    problems = "\n".join(contract_problems(Engine, contract.Engine, is_module=False))
    assert "'train_step' (archspec.contract.Engine.train_step) has no parameter 'learning_rate'" in problems
    assert "train_step' (archspec.contract.Engine.train_step) has no parameter 'offset'" in problems
    assert "'all_reduce_sum' (archspec.contract.Engine.all_reduce_sum) requires 'device'" in problems
    assert "'unwrap' (archspec.contract.Engine.unwrap) is not callable" in problems
    assert "__init__" not in problems
