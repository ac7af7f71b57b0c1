"""The generated files run without archspec: a fresh interpreter whose path holds only the
frameworks' site-packages (no site processing, no current folder, an import of archspec refused)
loads the torch and the Keras file and computes archspec's outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import archspec

from .cases import CASES
from .code_support import export, random_inputs
from .test_code_forward import FORMATS, assert_close, sequence_padding

SCRIPT = r"""
import importlib.util, json, sys
folder, name = sys.argv[1], sys.argv[2]
sys.path[:] = [p for p in sys.path if "site-packages" not in p] + json.loads(sys.argv[3])


class RefuseArchspec:
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] == "archspec":
            raise ModuleNotFoundError(f"no archspec here: {fullname}")
        return None


sys.meta_path.insert(0, RefuseArchspec())
try:
    import archspec
    sys.exit("archspec was importable")
except ModuleNotFoundError:
    pass
import numpy as np

spec = importlib.util.spec_from_file_location("generated", f"{folder}/{name}.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
inputs = dict(np.load(f"{folder}/inputs.npz"))
model = module.load_model(dtype="float64")
outputs = module.predict(model, inputs)
np.savez(f"{folder}/outputs.npz", **outputs)
print(sorted(name.split(".")[0] for name in sys.modules if name.split(".")[0] == "archspec"))
"""


def framework_paths(format_name: str) -> list[str]:
    """The site-packages folders the file's imports live in (torch or keras, safetensors, numpy)."""
    import numpy
    import safetensors

    if format_name == "torch_code":
        import torch as framework
    else:
        import keras as framework
    modules = (framework, safetensors, numpy)
    return sorted({str(Path(module.__file__).resolve().parents[1]) for module in modules})


@pytest.mark.parametrize("case", ["sequences_masked_transformer", "mnist_cnn"])
@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_generated_file_runs_where_archspec_cannot_be_imported(format_name, case, tmp_path):
    code_format, backend = FORMATS[format_name]
    spec = archspec.load(CASES[case].encode())
    model = archspec.compile(spec, backend=backend, dtype="float64")
    export(code_format, spec, model.get_weights(), tmp_path, case, "float64")
    inputs = random_inputs(spec, 3, "float64")
    sequence_padding(inputs)
    np.savez(tmp_path / "inputs.npz", **inputs)
    paths = framework_paths(format_name)
    assert not any((Path(path) / "archspec").exists() for path in paths)
    command = [sys.executable, "-I", "-S", "-c", SCRIPT, str(tmp_path), case, json.dumps(paths)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("[]"), result.stdout
    received = dict(np.load(tmp_path / "outputs.npz"))
    expected = model.predict(inputs)
    expected = expected if isinstance(expected, dict) else {model.graph.outputs[0]: expected}
    assert sorted(received) == sorted(expected)
    for name in expected:
        assert_close(f"{case} {name} standalone", expected[name], received[name], "float64")
