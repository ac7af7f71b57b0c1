"""archspec.export / archspec export: every format written, run in its runtime, verified; a broken
conversion refused with nothing written; recurrent and attention models in ONNX Runtime at a batch
size other than the traced one; command-line mistakes reported on one line."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

import archspec
from archspec.api import load_with_graph
from archspec.cli import main
from archspec.exporting.exporter import ExportError, export
from archspec.exporting.formats import EXACT_BOUNDS, FORMATS, FormatEntry
from archspec.reference.forward import reference_forward

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

SMALL = """
name: small-export
inputs:
  x: {shape: [6]}
layers:
  - {id: hidden, type: dense, units: 6, activation: tanh}
  - {id: out, type: dense, units: 3, activation: softmax}
"""

# Two inputs (ids and floats), an embedding's mask read by an LSTM and a GRU, masked attention,
# two outputs.
SEQUENCES = """
name: sequences-export
inputs:
  ids: {shape: [7], dtype: int64}
  extra: {shape: [7, 2]}
layers:
  - {id: emb, type: embedding, input_dim: 9, output_dim: 4, mask_zero: true, inputs: [ids]}
  - {id: joined, type: concatenate, axis: -1, inputs: [emb, extra]}
  - {id: lstm, type: lstm, units: 5, return_sequences: true}
  - {id: attention, type: multi_head_attention, num_heads: 2, key_dim: 3}
  - {id: gru, type: gru, units: 4, inputs: [lstm]}
  - {id: pooled, type: global_avgpool1d, inputs: [attention]}
  - {id: out, type: dense, units: 3, activation: softmax, inputs: [pooled]}
outputs: [out, gru]
"""

# The layer types no config of configs/ holds (make export-report covers those), two inputs in
# an order that is not alphabetical.
ZOO = """
name: layer-zoo
inputs:
  seq: {shape: [8, 3]}
  img: {shape: [6, 6, 2]}
layers:
  - {id: masked, type: masking, inputs: [seq]}
  - {id: rnn, type: simple_rnn, units: 4}
  - {id: mp1, type: maxpool1d, pool_size: 2, inputs: [seq]}
  - {id: ap1, type: avgpool1d, pool_size: 2}
  - {id: flat1, type: flatten}
  - {id: both, type: concatenate, inputs: [flat1, rnn]}
  - {id: c, type: conv2d, filters: 3, kernel_size: 3, padding: same, inputs: [img]}
  - {id: ap2, type: avgpool2d, pool_size: 2}
  - {id: gap, type: global_avgpool2d}
  - {id: gmp, type: global_maxpool2d, inputs: [c]}
  - {id: prod, type: multiply, inputs: [gap, gmp]}
  - {id: r, type: reshape, target_shape: [2, 5], inputs: [both]}
  - {id: rf, type: flatten}
  - {id: cat, type: concatenate, inputs: [rf, prod]}
  - {id: out, type: dense, units: 2}
"""


def weights_of(spec: str) -> dict[str, np.ndarray]:
    return archspec.compile(spec, "torch", device="cpu", seed=7).get_weights()


def leftovers(folder: Path, keep: Path | None = None) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path != keep)


def read_metadata(format_name: str, out: Path):
    if format_name == "onnx":
        from archspec.backends.torch.export import read_onnx_metadata

        return read_onnx_metadata(out)
    if format_name == "torch_export":
        import torch

        from archspec.exporting import ExportMetadata

        extra = {"archspec.json": ""}
        torch.export.load(str(out), extra_files=extra)
        return ExportMetadata.from_json(extra["archspec.json"])
    if format_name == "jax_export":
        from archspec.backends.jax.export import read_jax_export_metadata

        return read_jax_export_metadata(out)
    if format_name == "saved_model":
        from archspec.backends.tensorflow.export import read_saved_model_metadata

        return read_saved_model_metadata(out)
    from archspec.backends.tensorflow.export import read_litert_metadata

    return read_litert_metadata(out)


@pytest.mark.parametrize("format_name", ["onnx", "torch_export", "saved_model", "litert", "jax_export"])
def test_each_format_round_trips(tmp_path, format_name):
    weights = weights_of(SMALL)
    out = tmp_path / f"small{FORMATS[format_name].suffix}"
    result = archspec.export(SMALL, weights, format=format_name, out=out)
    assert result.verification is not None and result.verification.passed
    against = {row.against for row in result.verification.rows}
    assert against == {"reference (float64)", *(f"{backend} (float32)" for backend in archspec.BACKENDS)}
    assert result.verification.batch == 64  # traced with 2: the batch dimension is dynamic
    assert leftovers(tmp_path) == [out.name]  # no temporary file left beside it
    metadata = read_metadata(format_name, out)
    assert metadata == result.metadata
    assert metadata.inputs == {"x": ((None, 6), "float32")} and metadata.outputs == ["out"]
    assert metadata.spec_hash == archspec.weights.spec_hash(archspec.load(SMALL))
    assert metadata.archspec_version == archspec.__version__
    # Loaded again, at yet another batch size, it computes what the reference computes.
    x = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    outputs = FORMATS[format_name].load().load(out, "float32")({"x": x})
    graph = load_with_graph(SMALL)[1]
    expected = reference_forward(graph, weights, x).outputs["out"]
    np.testing.assert_allclose(outputs["out"], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("format_name", ["onnx", "torch_export", "saved_model", "litert", "jax_export"])
def test_the_layer_types_no_config_holds_export_to_each_format(tmp_path, format_name):
    result = export(ZOO, weights_of(ZOO), format=format_name, out=tmp_path / f"zoo{FORMATS[format_name].suffix}")
    assert result.verification is not None and result.verification.passed
    assert list(result.metadata.inputs) == ["seq", "img"]


def test_tensorflow_weights_reach_a_torch_format_through_the_canonical_layout(tmp_path):
    model = archspec.compile(SMALL, "tensorflow", device="cpu", seed=3)
    result = archspec.export(model, format="torch_export", out=tmp_path / "small.pt2")
    assert result.backend == "tensorflow" and result.metadata.extra["weights_from"] == "tensorflow"
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    outputs = FORMATS["torch_export"].load().load(result.path, "float32")({"x": x})
    np.testing.assert_allclose(outputs["out"], model.predict(x), rtol=0, atol=1e-6)


def test_recurrent_and_attention_model_runs_in_onnx_runtime_at_other_batch_sizes(tmp_path):
    import onnxruntime

    weights = weights_of(SEQUENCES)
    out = tmp_path / "sequences.onnx"
    result = export(SEQUENCES, weights, format="onnx", out=out)
    assert result.verification is not None and result.verification.passed
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [item.name for item in session.get_inputs()] == ["ids", "extra"]
    assert [item.name for item in session.get_outputs()] == ["out", "gru"]
    graph = load_with_graph(SEQUENCES)[1]
    rng = np.random.default_rng(4)
    for batch in (1, 9):  # traced with 2
        ids = rng.integers(1, 9, size=(batch, 7))
        ids[:, 5:] = 0  # padding at the end: the mask matters
        extra = rng.standard_normal((batch, 7, 2)).astype(np.float32)
        out_values, gru_values = session.run(["out", "gru"], {"ids": ids, "extra": extra})
        expected = reference_forward(graph, weights, {"ids": ids, "extra": extra}).outputs
        np.testing.assert_allclose(out_values, expected["out"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(gru_values, expected["gru"], rtol=0, atol=1e-6)


class TransposedKernel:
    """A test double of a broken conversion: the ONNX format, writing the hidden kernel transposed."""

    name = "broken_onnx"
    framework = "torch"
    suffix = ".onnx"

    def __init__(self):
        self.inner = FORMATS["onnx"].load()

    def write(self, spec, weights, out, dtype, metadata):
        broken = dict(weights)
        broken["hidden.kernel"] = np.ascontiguousarray(weights["hidden.kernel"].T)
        self.inner.write(spec, broken, out, dtype, metadata)

    def load(self, out, dtype):
        return self.inner.load(out, dtype)


@pytest.fixture
def broken_format(monkeypatch):
    module = types.ModuleType("archspec_test_broken_format")
    setattr(module, "BROKEN", TransposedKernel())  # noqa: B010 (a module built here, for the registry entry)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    entry = FormatEntry("broken_onnx", "torch", "onnxruntime", ".onnx", module.__name__, "BROKEN", EXACT_BOUNDS)
    monkeypatch.setitem(FORMATS, "broken_onnx", entry)


def test_a_broken_conversion_fails_verification_and_writes_nothing(tmp_path, broken_format):
    out = tmp_path / "small.onnx"
    out.write_bytes(b"an older export")
    with pytest.raises(ExportError) as caught:
        export(SMALL, weights_of(SMALL), format="broken_onnx", out=out)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{out}: verification failed, nothing written: output 'out' of the broken_onnx file")
    assert "differs from the reference (float64): max relative difference" in message
    assert out.read_bytes() == b"an older export" and leftovers(tmp_path) == [out.name]
    assert caught.value.verification is not None
    assert all(not row.passed for row in caught.value.verification.rows)


def test_cli_exports_and_prints_the_table(tmp_path, capsys):
    weights = tmp_path / "weights.safetensors"
    archspec.compile(SMALL, "tensorflow", device="cpu").save_weights(weights)
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    out = tmp_path / "model.onnx"
    argv = [
        "export",
        str(spec),
        "--weights",
        str(weights),
        "--format",
        "onnx",
        "--out",
        str(out),
        "--backend",
        "tensorflow",
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].split() == [
        "format",
        "runtime",
        "output",
        "compared",
        "with",
        "max",
        "abs",
        "diff",
        "max",
        "rel",
        "diff",
        "bound",
        "result",
    ]
    assert [line.split()[-1] for line in lines[1:4]] == ["pass", "pass", "pass"]
    assert lines[-1].startswith(f"wrote {out} (onnx, float32, weights through tensorflow): verified in onnxruntime")
    assert out.is_file()
    code = main(
        [
            "export",
            str(spec),
            "--weights",
            str(weights),
            "--format",
            "saved_model",
            "--out",
            str(tmp_path / "sm"),
            "--no-verify",
        ]
    )
    assert code == 0
    assert "UNVERIFIED (--no-verify), the file is unchecked" in capsys.readouterr().out
    assert (tmp_path / "sm" / "saved_model.pb").is_file()


def test_cli_verification_failure_is_one_line_exit_1(tmp_path, capsys, broken_format):
    weights = tmp_path / "weights.safetensors"
    archspec.compile(SMALL, "torch", device="cpu").save_weights(weights)
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    out = tmp_path / "model.onnx"
    code = main(["export", str(spec), "--weights", str(weights), "--format", "broken_onnx", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"archspec: error: {out}: verification failed, nothing written: output 'out'")
    assert "FAIL" in captured.out  # the table says which comparisons failed
    assert not out.exists() and leftovers(tmp_path) == ["small.yaml", "weights.safetensors"]


@pytest.mark.parametrize(
    ("arguments", "code", "expected"),
    [
        (
            ["--format", "onx"],
            2,
            "archspec: error: unknown export format: expected one of onnx, torch_export, saved_model, litert",
        ),
        (["--format", "onnx", "--weights", "missing.safetensors"], 1, "archspec: error: "),
        (
            ["--format", "litert", "--dtype", "float64"],
            2,
            "archspec: error: litert: expected dtype float32, received float64",
        ),
    ],
)
def test_cli_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, arguments, code, expected):
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "weights.safetensors"
    archspec.compile(SMALL, "torch", device="cpu").save_weights(weights)
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    options = {"--weights": str(weights), "--out": str(tmp_path / "model.out")}
    options.update(zip(arguments[::2], arguments[1::2]))
    argv = ["export", str(spec), *[item for pair in options.items() for item in pair]]
    assert main(argv) == code
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(expected)
    assert "Traceback" not in captured.err
    assert leftovers(tmp_path) == ["small.yaml", "weights.safetensors"]


def test_a_file_its_runtime_cannot_run_is_refused_in_one_line(tmp_path):
    """ONNX Runtime's CPU LSTM kernel takes float32 only: a float64 LSTM file is written, fails to
    run, and is removed."""
    spec = """
name: lstm64
inputs:
  x: {shape: [4, 2]}
layers:
  - {type: lstm, units: 3}
"""
    weights = archspec.compile(spec, "torch", dtype="float64", device="cpu").get_weights()
    out = tmp_path / "lstm.onnx"
    with pytest.raises(
        ExportError,
        match=r"lstm\.onnx: the onnx file does not run in onnxruntime: .*LSTM operator does not support double",
    ):
        export(spec, weights, format="onnx", out=out)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("format_name", ["torch_code", "keras_code"])
def test_a_code_export_moves_its_weights_with_it_and_removes_both_on_failure(tmp_path, monkeypatch, format_name):
    out = tmp_path / "model.py"
    export(SMALL, weights_of(SMALL), format=format_name, out=out)
    assert sorted(leftovers(tmp_path)) == ["model.py", "model.safetensors"]
    # Bounds no float32 file can meet: verification fails, and neither file of the pair is left.
    strict = FormatEntry(**{**FORMATS[format_name].__dict__, "bounds": {"float32": 0.0}})
    monkeypatch.setitem(FORMATS, format_name, strict)
    again = tmp_path / "again" / "model.py"
    with pytest.raises(ExportError, match="verification failed, nothing written"):
        export(SMALL, weights_of(SMALL), format=format_name, out=again)
    assert leftovers(again.parent) == []
