"""The reference stays a witness: production code does not import ``archspec.reference``.

The numpy reference is what the tests hold both backends to; if production code computed
with it, a mistake there would be shared by the witness and the witnessed and go unseen.
Shared facts live in ``archspec.definitions``. The two exceptions are the divergence locator,
whose job is to replay a failing step through the reference, and the proof of an imported
model, which compares the original's layer outputs with the reference's to locate a difference.
"""

from __future__ import annotations

import ast
from pathlib import Path

from paths import ROOT

REFERENCE = "archspec.reference"
# Packages as installed (pyproject's package-dir): the folder ``backends/`` is ``archspec.backends``.
SOURCES = {"archspec": ROOT / "archspec", "archspec.backends": ROOT / "backends"}
# The divergence locator replays a bad step through the reference; a port's proof compares the
# original's layer outputs with it to name the first layer that differs; an export's verification holds
# the exported file to it.
ALLOWED = {"archspec.training.divergence", "archspec.porting.proof", "archspec.exporting.verification"}


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module an ``import``, ``from ... import`` (relative ones resolved) or
    ``importlib.import_module("...")`` anywhere in the file names, with its line."""
    found = []
    own_package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = own_package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((node.lineno, base))
            # ``from archspec import reference`` imports the module through its parent
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def reference_imports_outside_the_reference() -> list[str]:
    offenders = []
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            module = module_name(package, folder, path)
            if module == REFERENCE or module.startswith(REFERENCE + ".") or module in ALLOWED:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            lines = {}  # one entry per import statement: the first reference module it names
            for line, name in imported_modules(tree, module, path.name == "__init__.py"):
                if name == REFERENCE or name.startswith(REFERENCE + "."):
                    lines.setdefault(line, name)
            offenders += [f"{path.relative_to(ROOT)}:{line} imports {name}" for line, name in sorted(lines.items())]
    return offenders


def test_production_code_does_not_import_the_reference():
    offenders = reference_imports_outside_the_reference()
    assert not offenders, "production code imports the numpy reference (use archspec.definitions):\n" + "\n".join(
        offenders
    )


def test_the_check_sees_every_kind_of_import():
    source = """import archspec.reference.layers
from archspec.reference.losses import loss_value
from archspec import reference
from ..reference import forward
def late():
    from ..reference.optimizers import apply
    importlib.import_module("archspec.reference.schedules")
from archspec.definitions import optimizers
from .reference import nothing_to_do_with_it
"""
    found = imported_modules(ast.parse(source), "archspec.training.trainer", is_package=False)
    offending_lines = {line for line, name in found if name == REFERENCE or name.startswith(REFERENCE + ".")}
    assert offending_lines == {1, 2, 3, 4, 6, 7}


def test_the_exception_names_an_existing_module():
    modules = {
        module_name(package, folder, path) for package, folder in SOURCES.items() for path in folder.rglob("*.py")
    }
    assert modules >= ALLOWED
