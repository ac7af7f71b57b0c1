"""`archspec expand` and the block hierarchy in `archspec summary`."""

import textwrap

import yaml

from archspec.api import load_with_graph
from archspec.cli import main

SPEC = textwrap.dedent(
    """
    name: stacked
    inputs:
      x: {shape: [6]}
    blocks:
      mlp:
        params:
          width: {type: int, default: 6}
        layers:
          - {type: dense, id: hidden, units: "${width}", activation: relu}
          - {type: layer_norm, id: norm}
      residual:
        layers:
          - {type: block, block: mlp, id: inner}
          - {type: add, id: sum, inputs: [input, inner]}
    layers:
      - {type: block, block: residual, id: stage, repeat: 2}
      - {type: dense, units: 2}
    training: {loss: mse}
    """
).lstrip()


def test_expand_prints_a_flat_spec_that_validates_to_the_same_model(tmp_path, capsys):
    path = tmp_path / "stacked.yaml"
    path.write_text(SPEC)
    assert main(["expand", str(path)]) == 0
    out = capsys.readouterr().out
    flat = yaml.safe_load(out)
    assert "blocks" not in flat and all(layer["type"] != "block" for layer in flat["layers"])
    assert "  id: stage_2/inner/hidden\n" in out and "  inputs: [stage_1/sum, stage_2/inner/norm]\n" in out
    flat_path = tmp_path / "flat.yaml"
    flat_path.write_text(out)
    assert list(load_with_graph(flat_path)[1].parameters) == list(load_with_graph(path)[1].parameters)
    assert main(["validate", str(flat_path)]) == 0


def test_expand_reports_mistakes_located_and_prints_nothing(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace('units: "${width}"', "units: -4"))
    assert main(["expand", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = path.read_text().splitlines()
    block_line = next(k for k, line in enumerate(lines, 1) if "id: hidden" in line)
    column = lines[block_line - 1].index("-4") + 1
    inner_use = next(k for k, line in enumerate(lines, 1) if "id: inner" in line)
    stage_use = next(k for k, line in enumerate(lines, 1) if "id: stage" in line)
    assert captured.err.strip() == (
        f"{path}:{block_line}:{column}: in block 'mlp' (used at {path}:{inner_use}:9) in block 'residual' "
        f"(used at {path}:{stage_use}:5): layers[0].units: expected a positive integer, received -4"
    )


def test_summary_shows_each_copy_with_its_layers_indented(tmp_path, capsys):
    path = tmp_path / "stacked.yaml"
    path.write_text(SPEC)
    assert main(["summary", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line[: len(line) - len(line.lstrip())] + line.split()[0] for line in lines[3:13]]
    assert names == [
        "x",
        "stage_1",
        "  inner",
        "    hidden",
        "    norm",
        "  sum",
        "stage_2",
        "  inner",
        "    hidden",
        "    norm",
    ]
    stage = lines[4].split()
    assert stage[:2] == ["stage_1", "block"] and stage[-1] == str(6 * 6 + 6 + 2 * 6)  # dense + layer_norm
    assert lines[8].split()[:3] == ["sum", "add", "x,"]  # inputs keep their full names


def test_a_warning_inside_a_block_names_the_block_line_and_the_use(tmp_path, capsys):
    path = tmp_path / "warned.yaml"
    path.write_text(
        "name: warned\ninputs: {x: {shape: [6, 6, 1]}}\nblocks:\n  conv_bn:\n    layers:\n"
        "      - {type: conv2d, filters: 2, kernel_size: 3, padding: same}\n"
        "      - {type: batch_norm}\n"
        "layers:\n  - {type: block, block: conv_bn, repeat: 2}\n  - {type: flatten}\n  - {type: dense, units: 1}\n"
    )
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2  # one per copy: each names its own layers
    assert err[0].startswith(
        f"{path}:6:9: warning: in block 'conv_bn' (used at {path}:9:5): layer 'conv_bn_1/conv2d_1'"
    )
    assert err[1].startswith(
        f"{path}:6:9: warning: in block 'conv_bn' (used at {path}:9:5): layer 'conv_bn_2/conv2d_1'"
    )
