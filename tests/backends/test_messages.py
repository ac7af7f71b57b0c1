"""Every message about wrong input reads ``expected ..., received ...``: one wording across the code.

The scan reads the string literals of ``archspec/`` and ``backends/`` (docstrings
left out) and lists each one in another wording as ``FILE:LINE``, so a new message
cannot drift back to Keras' "Received:" or Python's "but got".
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from paths import ROOT

PACKAGES = ("archspec", "backends")

# Anywhere in a message: these never belong to the project's wording.
EVERYWHERE = {
    re.compile(r"\bReceived\b"): "'Received' with a capital: write ', received ...'",
    re.compile(r"[.;:!?]\s*received\b"): "'received' after a stop: write ', received ...'",
    re.compile(r"\bbut got\b"): "'but got': write 'expected ..., received ...'",
}
# Only in what an error says: "got" is an ordinary word elsewhere ("the walk got lost").
IN_ERRORS = {re.compile(r"\bgot\b"): "'got': write 'expected ..., received ...'"}

ERROR_CALL = re.compile(r"(Error|Exception|Problem)$")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (the first statement of a module, class or function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _strings(node: ast.AST) -> Iterator[ast.Constant]:
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child


def _is_error_message(node: ast.AST) -> bool:
    if isinstance(node, ast.Raise):
        return True
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return bool(ERROR_CALL.search(name))
    return False


def wording_problems(source: str, filename: str) -> list[str]:
    """``FILE:LINE: why`` for every string literal of ``source`` in another wording."""
    tree = ast.parse(source, filename)
    docstrings = _docstrings(tree)
    in_errors = {id(s) for node in ast.walk(tree) if _is_error_message(node) for s in _strings(node)}
    lines = source.splitlines()
    problems = []
    for constant in _strings(tree):
        if id(constant) in docstrings:
            continue
        rules = {**EVERYWHERE, **IN_ERRORS} if id(constant) in in_errors else EVERYWHERE
        for pattern, why in rules.items():
            if pattern.search(constant.value):
                problems.append(f"{filename}:{constant.lineno}: {why}: {lines[constant.lineno - 1].strip()}")
    return problems


def source_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_messages_say_expected_then_received_after_a_comma():
    problems = []
    for path in source_files():
        problems += wording_problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not problems, f"{len(problems)} messages in another wording:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "line, flagged",
    [
        ('raise UsageError(f"expected a loss among mse, mae, received {name!r}")', False),
        ('raise UsageError(f"expected a loss among mse, mae. Received: {name!r}")', True),
        ('raise UsageError(f"expected a loss. received {name!r}")', True),
        ('raise ValueError(f"expected 3 values but got {n}")', True),
        ('raise DataError(f"got {n} samples")', True),
        ('problems.append(Problem(f"got {n}"))', True),
        ('note = "the walk got lost here"', False),
        ('def f():\n    """Received: a docstring may say anything."""', False),
        ('message = "Received: no"', True),
    ],
)
def test_the_scan_flags_only_other_wordings(line, flagged):
    assert bool(wording_problems(line, "example.py")) == flagged
