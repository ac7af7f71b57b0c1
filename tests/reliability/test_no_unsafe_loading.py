"""No code path can run code from a file: no pickle anywhere in archspec/ and backends/.

A scan of every module's tokens and syntax tree (comments and docstrings may say "pickle").
The scanner itself is tested on code it must flag, so a pass is not vacuous.
"""

import ast
import io
import tokenize

import pytest
from paths import ROOT

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNSAFE_YAML = {
    "load",
    "load_all",
    "unsafe_load",
    "unsafe_load_all",
    "full_load",
    "full_load_all",
    "Loader",
    "UnsafeLoader",
    "FullLoader",
    "CLoader",
    "CUnsafeLoader",
    "CFullLoader",
}
REQUIRED_KEYWORDS = {
    ("torch", "load"): ("weights_only", True),
    ("numpy", "load"): ("allow_pickle", False),
    ("keras", "load_model"): ("safe_mode", True),
}
ALIASES = {"np": "numpy", "tf": "tensorflow"}


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(ALIASES.get(node.id, node.id))
        return ".".join(reversed(parts))
    return None


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def unsafe_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every unsafe construct in ``source``, as ``file:line: what``."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.string in UNSAFE_MODULES:
            found.append(f"{filename}:{token.start[0]}: uses {token.string}")
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            for alias in node.names:
                if (root == "yaml" and alias.name in UNSAFE_YAML) or (
                    root in ("torch", "numpy") and alias.name == "load"
                ):
                    found.append(f"{filename}:{node.lineno}: imports {node.module}.{alias.name}")
        if isinstance(node, ast.Attribute) and _dotted(node) in {f"yaml.{name}" for name in UNSAFE_YAML}:
            found.append(f"{filename}:{node.lineno}: uses {_dotted(node)}")
        if isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            if isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                found.append(f"{filename}:{node.lineno}: calls {node.func.id}()")
            if name.endswith(".jit.load"):
                found.append(f"{filename}:{node.lineno}: calls {name}()")
            for (module, function), (keyword, value) in REQUIRED_KEYWORDS.items():
                if (
                    name.split(".")[0] == module
                    and name.endswith(f".{function}")
                    and _keyword(node, keyword) is not value
                ):
                    found.append(f"{filename}:{node.lineno}: calls {name}() without {keyword}={value}")
    return found


def _modules():
    return sorted(path for folder in ("archspec", "backends") for path in (ROOT / folder).rglob("*.py"))


# The one sanctioned exception: export verification runs the .pt2 file archspec has just written
# itself (torch.export.load takes no weights_only; a .pt2 may hold pickled tensor subclasses).
# No command loads a .pt2 it did not write (README, "Exporting").
SANCTIONED = ("backends/torch/export.py:", "calls torch.export.load() without weights_only=True")


def test_no_module_can_unpickle_or_run_code_from_a_file():
    modules = _modules()
    assert len(modules) > 40
    problems = [problem for path in modules for problem in unsafe_uses(path.read_text(), str(path.relative_to(ROOT)))]
    sanctioned = [p for p in problems if p.startswith(SANCTIONED[0]) and p.endswith(SANCTIONED[1])]
    assert len(sanctioned) <= 1, sanctioned  # one call, in verification's loader
    assert [p for p in problems if p not in sanctioned] == []


@pytest.mark.parametrize(
    "code",
    [
        "import pickle",
        "from pickle import loads",
        "import cloudpickle as c",
        "x = pickle.loads(data)",
        "import torch\ntorch.load(path)",
        "import torch\ntorch.load(path, weights_only=False)",
        "import numpy as np\nnp.load(path)",
        "import numpy\nnumpy.load(path, allow_pickle=True)",
        "import yaml\nyaml.load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.FullLoader)",
        "import yaml\nyaml.unsafe_load(text)",
        "from yaml import unsafe_load",
        "import keras\nkeras.models.load_model(path)",
        "eval(text)",
        "import torch\ntorch.jit.load(path)",
    ],
)
def test_the_scan_flags_unsafe_code(code):
    assert unsafe_uses(code)


@pytest.mark.parametrize(
    "code",
    [
        '"""Safetensors: no pickle."""\n# not pickle either',
        "import torch\ntorch.load(path, weights_only=True)",
        "import numpy as np\nnp.load(path, allow_pickle=False)",
        "import yaml\nyaml.safe_load(text)\nyaml.compose(text, Loader=yaml.SafeLoader)",
    ],
)
def test_the_scan_passes_safe_code(code):
    assert unsafe_uses(code) == []
