"""Warnings for legal but wasteful specs: located, printed by ``archspec validate``, exit 0."""

from __future__ import annotations

import archspec
from archspec.checks import SpecWarning, spec_warnings
from archspec.cli import main
from archspec.graph import resolve

BIAS_INTO_NORM = """\
name: w
inputs: {x: {shape: [8, 8, 1]}}
layers:
  - {id: conv, type: conv2d, filters: 4, kernel_size: 3}
  - {type: batch_norm}
  - {type: flatten}
  - type: dense
    units: 8
    use_bias: true
  - {id: norm, type: batch_norm}
  - {type: dense, units: 2}
"""


def _warnings(text: str) -> list[SpecWarning]:
    return spec_warnings(resolve(archspec.load(text)))


def test_bias_before_batch_norm_warns_from_python():
    warnings = _warnings(BIAS_INTO_NORM)
    assert [w.location for w in warnings] == [("layers", 0, "use_bias"), ("layers", 3, "use_bias")]
    assert warnings[0].message == (
        "layer 'conv' adds a bias right before batch_norm 'batch_norm_1', which subtracts the batch mean "
        "and so removes it: its gradient is zero and RMSprop or Adam amplify rounding noise into it; "
        "set use_bias: false"
    )
    assert "layer 'dense_1' adds a bias right before batch_norm 'norm'" in warnings[1].message


def test_validate_prints_located_warnings_and_succeeds(tmp_path, capsys):
    path = tmp_path / "wasteful.yaml"
    path.write_text(BIAS_INTO_NORM)
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{path}: ok (w: 6 layers, 1,266 parameters)\n"
    lines = captured.err.splitlines()
    assert len(lines) == 2
    # use_bias not written: the layer's mapping; written: its value.
    assert lines[0].startswith(f"{path}:4:5: warning: layer 'conv' adds a bias right before batch_norm")
    assert lines[0].endswith("; set use_bias: false")
    assert lines[1].startswith(f"{path}:9:15: warning: layer 'dense_1' adds a bias right before batch_norm 'norm'")


def test_no_warning_without_a_bias():
    text = BIAS_INTO_NORM.replace("kernel_size: 3}", "kernel_size: 3, use_bias: false}")
    text = text.replace("use_bias: true", "use_bias: false")
    assert _warnings(text) == []


def test_no_warning_when_a_layer_sits_between():
    text = BIAS_INTO_NORM.replace(
        "  - {type: batch_norm}\n", "  - {type: dropout, rate: 0.1}\n  - {type: batch_norm}\n"
    )
    text = text.replace(
        "  - {id: norm, type: batch_norm}\n",
        "  - {type: activation, activation: tanh}\n  - {id: norm, type: batch_norm}\n",
    )
    assert _warnings(text) == []


def test_no_warning_when_the_bias_is_followed_by_a_nonlinearity():
    # relu(x + b) depends on b even after normalisation: the bias is not wasted.
    text = BIAS_INTO_NORM.replace("kernel_size: 3}", "kernel_size: 3, activation: relu}")
    text = text.replace("use_bias: true", "activation: tanh")
    assert _warnings(text) == []


def test_no_warning_when_the_biased_output_is_also_read_elsewhere():
    text = """\
name: w
inputs: {x: {shape: [4]}}
layers:
  - {id: a, type: dense, units: 4}
  - {id: n, type: batch_norm}
  - {type: add, inputs: [a, n]}
"""
    assert _warnings(text) == []


def test_layer_norm_keeps_the_bias():
    # layer_norm subtracts a mean over channels, not per channel: a bias vector still matters.
    text = BIAS_INTO_NORM.replace("type: batch_norm", "type: layer_norm")
    assert _warnings(text) == []


def test_every_config_is_free_of_warnings(configs_dir, capsys):
    paths = sorted(str(p) for p in configs_dir.glob("*.yaml"))
    assert main(["validate", *paths]) == 0
    assert capsys.readouterr().err == ""
