"""Reusable blocks: expansion, nesting, repeat, parameters, and mistakes located at the block's
line and the use's, all at once."""

from __future__ import annotations

import textwrap

import pytest

from archspec.api import expand, load_document, load_with_graph
from archspec.errors import SpecError
from archspec.spec.source import parse_yaml
from archspec.weights import spec_hash


def spec_text(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n")


def errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_with_graph(text)
    return [str(problem) for problem in caught.value.problems]


def at(text: str, fragment: str, occurrence: int = 1) -> str:
    """``<spec>:LINE:COL`` of the ``occurrence``-th ``fragment`` in ``text``."""
    offset = -1
    for _ in range(occurrence):
        offset = text.index(fragment, offset + 1)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"<spec>:{line}:{column}"


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line holding ``fragment``."""
    found = [k + 1 for k, line in enumerate(text.splitlines()) if fragment in line]
    return found[occurrence - 1]


ENCODER = spec_text(
    """
    name: encoder_stack
    inputs:
      x: {shape: [5, 8]}
    blocks:
      encoder:
        params:
          width: {type: int, default: 8}
          hidden: int
          rate: {type: float, default: 0}
        layers:
          - {type: dense, id: attention, units: "${width}"}
          - {type: add, id: residual, inputs: [input, attention]}
          - {type: layer_norm, id: norm}
          - {type: dense, id: expand, units: "${hidden}", activation: relu}
          - {type: dropout, rate: "${rate}"}
          - {type: dense, id: project, units: "${width}"}
          - {type: add, inputs: [norm, project]}
    layers:
      - {type: dense, units: 8}
      - {type: block, block: encoder, repeat: 2, with: {hidden: 16}}
      - {type: dense, units: 3}
    training: {loss: mse}
    """
)


def test_repeat_chains_copies_and_names_show_the_nesting():
    graph = load_with_graph(ENCODER)[1]
    ids = [node.id for node in graph.nodes]
    assert ids == [
        "dense_1",
        *[
            f"encoder_{k}/{name}"
            for k in (1, 2)
            for name in ("attention", "residual", "norm", "expand", "dropout_1", "project", "add_1")
        ],
        "dense_2",
    ]
    nodes = graph.node_by_id
    assert nodes["encoder_1/residual"].inputs == ("dense_1", "encoder_1/attention")
    assert nodes["encoder_2/attention"].inputs == ("encoder_1/add_1",)  # copy 2 reads copy 1's output
    assert nodes["encoder_2/residual"].inputs == ("encoder_1/add_1", "encoder_2/attention")
    assert nodes["encoder_2/add_1"].inputs == ("encoder_2/norm", "encoder_2/project")
    assert nodes["dense_2"].inputs == ("encoder_2/add_1",)
    assert "encoder_2/attention.kernel" in graph.parameters
    assert graph.parameters["encoder_1/expand.kernel"].shape == (8, 16)
    # Parameters: defaults fill in, an integer given for a float parameter becomes a float.
    dropout = nodes["encoder_1/dropout_1"].layer
    assert dropout.rate == 0.0 and isinstance(dropout.rate, float)


def test_expand_gives_a_flat_spec_with_the_same_graph_and_hash():
    flat = expand(ENCODER)
    assert "blocks" not in flat
    assert all(layer["type"] != "block" for layer in flat["layers"])
    assert flat["layers"][1] == {"type": "dense", "id": "encoder_1/attention", "units": 8}
    # Inputs are written only where the flat list would not imply them.
    assert "inputs" not in flat["layers"][1]
    assert flat["layers"][2]["inputs"] == ["dense_1", "encoder_1/attention"]
    spec, graph = load_with_graph(ENCODER)
    flat_spec, flat_graph = load_with_graph(flat)
    assert list(flat_graph.parameters) == list(graph.parameters)
    assert spec_hash(flat_spec) == spec_hash(spec)


def test_a_spec_without_blocks_is_not_touched():
    text = "name: plain\ninputs: {x: {shape: [3]}}\nlayers:\n  - {type: dense, units: 2}\n"
    document = parse_yaml(text)
    assert load_document(text).data == document.data
    assert load_document(text).origins == ()


NESTED = spec_text(
    """
    name: nested
    inputs:
      x: {shape: [6]}
    blocks:
      mlp:
        params:
          width: {type: int, default: 4}
          activation: {type: str, default: relu}
        layers:
          - {type: dense, id: hidden, units: "${width}", activation: "${activation}"}
          - {type: layer_norm, id: norm}
      residual:
        params:
          width: int
        layers:
          - {type: block, block: mlp, id: inner, with: {width: "${width}", activation: tanh}}
          - {type: add, id: sum, inputs: [input, inner]}
    layers:
      - {type: block, block: residual, id: stage, repeat: 3, with: {width: 6}}
      - {type: block, block: mlp, with: {width: 2}}
    outputs: [mlp]
    """
)


def test_blocks_use_blocks_and_parameters_pass_down():
    graph = load_with_graph(NESTED)[1]
    nodes = graph.node_by_id
    assert [node.id for node in graph.nodes][:4] == [
        "stage_1/inner/hidden",
        "stage_1/inner/norm",
        "stage_1/sum",
        "stage_2/inner/hidden",
    ]
    assert nodes["stage_1/inner/hidden"].layer.units == 6
    assert nodes["stage_1/inner/hidden"].layer.activation == "tanh"
    assert nodes["stage_2/sum"].inputs == ("stage_1/sum", "stage_2/inner/norm")
    assert nodes["mlp/hidden"].inputs == ("stage_3/sum",)
    assert nodes["mlp/hidden"].layer.activation == "relu"  # the default
    assert graph.outputs == ("mlp/norm",)  # an output may name a use: its output tensor
    assert "stage_3/inner/norm.gamma" in graph.parameters


def test_several_inputs_an_explicit_output_and_forward_references():
    text = spec_text(
        """
        name: cross
        inputs:
          x: {shape: [4]}
        blocks:
          mix:
            inputs: [query, memory]
            output: mixed
            layers:
              - {type: dense, id: mixed, units: 4, inputs: [query]}
              - {type: add, id: unused_sum, inputs: [mixed, memory]}
        layers:
          - {type: dense, id: head, units: 1, inputs: [decoder]}
          - {type: dense, id: memory, units: 4}
          - {type: block, block: mix, id: decoder, repeat: 2, inputs: [x, memory]}
        outputs: [head, decoder_2/unused_sum, decoder_1/unused_sum]
        """
    )
    graph = load_with_graph(text)[1]
    nodes = graph.node_by_id
    assert nodes["head"].inputs == ("decoder_2/mixed",)  # the block's output, not its last layer
    assert nodes["decoder_1/mixed"].inputs == ("x",)
    assert nodes["decoder_2/mixed"].inputs == ("decoder_1/mixed",)  # copy 2: copy 1's output
    assert nodes["decoder_2/unused_sum"].inputs == ("decoder_2/mixed", "memory")  # other inputs stay


def test_unnamed_uses_are_named_after_the_block_without_clashes():
    text = spec_text(
        """
        name: twice
        inputs:
          x: {shape: [3]}
        blocks:
          unit:
            layers:
              - {type: dense, units: 3}
        layers:
          - {type: block, block: unit, repeat: 2}
          - {type: block, block: unit}
          - {type: block, block: unit}
        """
    )
    ids = [node.id for node in load_with_graph(text)[1].nodes]
    assert ids == ["unit_1/dense_1", "unit_2/dense_1", "unit_3/dense_1", "unit_4/dense_1"]


def test_string_interpolation_and_list_parameters():
    text = spec_text(
        """
        name: interpolate
        inputs:
          x: {shape: [4]}
        blocks:
          shaped:
            params:
              kind: {type: str, default: glorot}
              shape: {type: list, default: [2, 2]}
            layers:
              - {type: dense, units: 4, kernel_initializer: "${kind}_uniform"}
              - {type: reshape, target_shape: "${shape}"}
        layers:
          - {type: block, block: shaped, with: {kind: he}}
        """
    )
    nodes = load_with_graph(text)[1].nodes
    assert nodes[0].layer.kernel_initializer.type == "he_uniform"
    assert nodes[1].output_shape == (2, 2)


def test_a_mistake_inside_a_block_names_the_block_line_and_the_use():
    text = spec_text(
        """
        name: located
        inputs:
          x: {shape: [4]}
        blocks:
          encoder:
            params:
              width: {type: int, default: 4}
            layers:
              - {type: dense, units: "${width}"}
              - {type: layer_norm}
              - {type: dense, units: -1}
        layers:
          - {type: dense, units: 4}
          - {type: block, block: encoder, repeat: 3}
          - {type: dense, unitz: 2}
        """
    )
    block_line, use_line = line_of(text, "units: -1"), line_of(text, "block: encoder,")
    found = errors(text)
    # Reported once for the three copies, at the block's line, with the use; and the top-level
    # layers keep their own indexes (layers[2], not its index in the expanded list).
    assert found[0] == (
        f"<spec>:{block_line}:30: in block 'encoder' (used at <spec>:{use_line}:5): "
        "layers[2].units: expected a positive integer, received -1"
    )
    assert sorted(found[1:]) == sorted(
        [
            f"{at(text, 'unitz')}: layers[2]: unknown field 'unitz' in dense layer; did you mean 'units'?",
            f"{at(text, '{type: dense, unitz')}: layers[2]: missing required field 'units' in dense layer",
        ]
    )


def test_a_wrong_parameter_value_is_placed_at_the_reference_in_the_block():
    text = spec_text(
        """
        name: reference
        inputs:
          x: {shape: [4]}
        blocks:
          inner:
            params:
              width: int
            layers:
              - {type: dense, units: "${width}"}
          outer:
            layers:
              - {type: block, block: inner, with: {width: -2}}
        layers:
          - {type: block, block: outer}
        """
    )
    reference, inner_use, outer_use = (
        line_of(text, "${width}"),
        line_of(text, "block: inner"),
        line_of(text, "block: outer"),
    )
    assert errors(text) == [
        f"<spec>:{reference}:30: in block 'inner' (used at <spec>:{inner_use}:9) in block 'outer' "
        f"(used at <spec>:{outer_use}:5): layers[0].units: expected a positive integer, received -2"
    ]


def test_graph_problems_inside_a_block_are_located_there_too():
    text = spec_text(
        """
        name: shapes
        inputs:
          x: {shape: [4]}
        blocks:
          bad:
            layers:
              - {type: dense, units: 3}
              - {type: add, inputs: [input, dense_1]}
        layers:
          - {type: block, block: bad}
        """
    )
    (message,) = errors(text)
    assert message.startswith(f"<spec>:{line_of(text, 'type: add')}:")
    assert f"in block 'bad' (used at <spec>:{line_of(text, 'block: bad}')}:5): " in message
    assert "layer 'bad/add_1'" in message


def test_every_block_mistake_is_reported_at_once_with_validation_mistakes():
    text = spec_text(
        """
        name: everything
        inputs:
          x: {shape: [4]}
        blocks:
          mlp:
            params:
              width: {type: int, default: 4}
              depth: {type: integer}
              scale: {type: float, default: fast}
            layers:
              - {type: dense, units: "${widht}"}
          ok:
            params:
              width: int
            layers:
              - {type: dense, units: "${width}"}
              - {type: dense, units: 0}
          loop_a:
            layers:
              - {type: block, block: loop_b}
          loop_b:
            layers:
              - {type: block, block: loop_a}
          self_loop:
            layers:
              - {type: block, block: self_loop}
        layers:
          - {type: block, block: ok, with: {widht: 3, width: 1.5}}
          - {type: block, block: ok}
          - {type: block, block: okk}
          - {type: block, block: ok, repeat: 0, with: {width: 2}}
          - {type: block, block: loop_a}
          - {type: block, block: self_loop}
          - {type: dense, units: "${width}"}
          - {type: dense, units: -3}
        """
    )
    found = errors(text)
    expected = [
        f"{at(text, 'integer')}: blocks.mlp.params.depth.type: expected one of 'int', 'float', 'str', 'bool', 'list', received 'integer'; did you mean 'int'?",
        f"{at(text, 'fast')}: blocks.mlp.params.scale.default: expected a number, received 'fast'",
        f"{at(text, chr(34) + '${widht}')}: blocks.mlp: unknown parameter '${{widht}}'; did you mean 'width'?",
        f"{at(text, 'widht: 3')}: with: unknown parameter 'widht'; did you mean 'width'?",
        f"{at(text, '1.5')}: with.width: expected an integer, received 1.5",
        f"{at(text, '{type: block, block: ok}')}: missing required parameter 'width' (int) of block 'ok' in 'with'",
        f"{at(text, 'okk')}: unknown block 'okk'; did you mean 'ok'?",
        f"{at(text, '0, with')}: repeat: expected a positive integer, received 0",
        f"{at(text, chr(34) + '${width}', 2)}: parameter references (${{name}}) are only allowed in the layers of a block",
        f"{at(text, '-3')}: layers[7].units: expected a positive integer, received -3",
        f"{at(text, 'loop_a}')}: in block 'loop_b' (used at {at(text, '{type: block, block: loop_b}')}) in block "
        f"'loop_a' (used at {at(text, '{type: block, block: loop_a}', 2)}): block 'loop_a' uses itself "
        "(loop_a -> loop_b -> loop_a); expected blocks that do not recur",
        f"{at(text, 'self_loop}')}: in block 'self_loop' (used at {at(text, '{type: block, block: self_loop}', 2)}): "
        "block 'self_loop' uses itself (self_loop -> self_loop); expected blocks that do not recur",
    ]
    # Nothing else: a use left unexpanded by its mistakes adds none of its own layers' mistakes,
    # and a mistake in the copies of a block is reported once.
    assert sorted(found) == sorted(expected)
    assert found == sorted(found, key=lambda m: tuple(int(part) for part in m.split(":")[1:3]))


def test_a_block_layer_validation_mistake_is_reported_once_for_all_copies():
    text = spec_text(
        """
        name: repeated
        inputs:
          x: {shape: [4]}
        blocks:
          ok:
            layers:
              - {type: dense, units: 0}
        layers:
          - {type: block, block: ok, repeat: 4}
        """
    )
    assert len(errors(text)) == 1


@pytest.mark.parametrize(
    ("use", "message"),
    [
        ("{type: block, block: unit, with: [1]}", "with: expected a mapping of parameter values, received a list"),
        ("{type: block, block: unit, repeats: 2}", "unknown field 'repeats' in block use; did you mean 'repeat'?"),
        ("{type: block}", "missing required field 'block' in block use (the name of a block)"),
        ("{type: block, block: unit, repeat: true}", "repeat: expected a positive integer, received true"),
        (
            "{type: block, block: unit, id: a/b}",
            "id: expected an id made of letters, digits and '_' for a block use, received 'a/b'",
        ),
        ("{type: block, block: unit, id: x}", "id 'x' is already the name of an input"),
        ("{type: block, block: pair}", "block 'pair' takes 2 input(s) (a, b), received 1"),
    ],
)
def test_mistakes_in_a_use(use, message):
    text = spec_text(
        """
        name: uses
        inputs:
          x: {shape: [4]}
        blocks:
          unit:
            params:
              width: {type: int, default: 4}
            layers:
              - {type: dense, units: "${width}"}
          pair:
            inputs: [a, b]
            layers:
              - {type: add, inputs: [a, b]}
        layers:
          - USE
          - {type: dense, units: 1}
        """
    ).replace("USE", use)
    found = errors(text)
    assert any(m.startswith(f"<spec>:{line_of(text, '{type: block')}:") and m.endswith(message) for m in found), found


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("{layers: []}", "blocks.b.layers: expected a non-empty list of layers, received a list"),
        ("{params: {w: int}}", "blocks.b: missing required field 'layers' in block"),
        ("{layer: [{type: dense, units: 1}]}", "blocks.b: unknown field 'layer' in block; did you mean 'layers'?"),
        ("[1, 2]", "blocks.b: expected a mapping with 'layers' (and 'params', 'inputs', 'output'), received a list"),
        (
            "{params: {w: {type: int, defalt: 1}}, layers: [{type: dense, units: 1}]}",
            "blocks.b.params.w: unknown field 'defalt' in parameter; did you mean 'default'?",
        ),
        ("{inputs: [a, a], layers: [{type: dense, units: 1}]}", "blocks.b.inputs[1]: duplicate input name 'a'"),
        (
            "{output: nowhere, layers: [{type: dense, units: 1}]}",
            "blocks.b.output: unknown layer id 'nowhere'; expected one of 'dense_1'",
        ),
        (
            "{layers: [{type: dense, units: 1, inputs: [inptu]}]}",
            "unknown input or layer id 'inptu' in block 'b'; did you mean 'input'?",
        ),
        (
            "{params: {w: list}, layers: [{type: dense, units: 1, id: 'x_${w}'}]}",
            "parameter 'w' is a list: expected it as a whole value ('${w}'), not inside text",
        ),
        (
            "{layers: [{type: dense, units: 1, id: a/b}]}",
            "id: expected an id made of letters, digits and '_' for a layer in a block, received 'a/b'",
        ),
    ],
)
def test_mistakes_in_a_block_definition(block, message):
    text = f"name: defs\ninputs: {{x: {{shape: [4]}}}}\nblocks:\n  b: {block}\nlayers:\n  - {{type: block, block: b, with: WITH}}\n"
    text = text.replace("WITH", "{w: [1]}" if "w: list" in block else "{}")
    found = errors(text)
    assert any(m.endswith(message) for m in found), found


def test_too_many_layers_once_expanded_is_refused():
    text = spec_text(
        """
        name: huge
        inputs:
          x: {shape: [2]}
        blocks:
          unit:
            layers:
              - {type: dense, units: 2}
              - {type: dense, units: 2}
        layers:
          - {type: block, block: unit, repeat: 6000}
        """
    )
    found = errors(text)
    assert any("expected at most 10000 layers once blocks are expanded" in m for m in found), found


def test_ids_with_slashes_are_accepted_in_a_flat_spec():
    text = "name: flat\ninputs: {x: {shape: [3]}}\nlayers:\n  - {type: dense, id: a/b, units: 2}\n  - {type: dense, id: a/c, units: 1}\n"
    assert [n.id for n in load_with_graph(text)[1].nodes] == ["a/b", "a/c"]
    assert "a/c.kernel" in load_with_graph(text)[1].parameters
    bad = "name: flat\ninputs: {x: {shape: [3]}}\nlayers:\n  - {type: dense, id: a//b, units: 2}\n"
    assert errors(bad)[0].startswith("<spec>:4:")


def test_the_schema_describes_blocks_with_the_fields_expansion_reads():
    from archspec.spec import blocks
    from archspec.spec.schema import spec_json_schema

    schema = spec_json_schema()
    definitions = schema["$defs"]
    assert schema["properties"]["blocks"]["additionalProperties"] == {"$ref": "#/$defs/BlockDefinition"}
    assert schema["properties"]["layers"]["items"]["discriminator"]["mapping"]["block"] == "#/$defs/BlockUse"
    assert set(definitions["BlockUse"]["properties"]) == set(blocks.USE_FIELDS)
    assert set(definitions["BlockDefinition"]["properties"]) == set(blocks.BLOCK_FIELDS)
    assert set(definitions["BlockParam"]["properties"]) == set(blocks.PARAM_FIELDS)
    assert definitions["BlockParam"]["properties"]["type"]["enum"] == list(blocks.PARAM_TYPES)


def test_repeat_and_booleans_from_parameters_and_null_defaults():
    text = spec_text(
        """
        name: deep
        inputs: {x: {shape: [4]}}
        blocks:
          unit:
            params:
              initializer: {type: str, default: null}
              bias: {type: bool, default: true}
            layers:
              - {type: dense, units: 4, use_bias: "${bias}"}
          stack:
            params:
              depth: int
            layers:
              - {type: block, block: unit, repeat: "${depth}", with: {bias: false}}
        layers:
          - {type: block, block: stack, with: {depth: 3}}
          - {type: block, block: unit, with: {initializer: null}}
        """
    )
    nodes = load_with_graph(text)[1].nodes
    assert [node.id for node in nodes] == [
        "stack/unit_1/dense_1",
        "stack/unit_2/dense_1",
        "stack/unit_3/dense_1",
        "unit/dense_1",
    ]
    assert [node.layer.use_bias for node in nodes] == [False, False, False, True]
    required = text.replace("depth: 3", "depth: null")
    assert errors(required) == [f"{at(required, 'null}}')}: with.depth: expected an integer, received null"]


def test_a_layer_may_not_take_the_name_of_a_copy():
    text = spec_text(
        """
        name: clash
        inputs: {x: {shape: [3]}}
        blocks:
          unit:
            layers:
              - {type: dense, units: 3}
        layers:
          - {type: block, block: unit, id: enc, repeat: 2}
          - {type: dense, id: enc_2, units: 3}
        """
    )
    assert errors(text) == [f"{at(text, 'enc_2')}: id 'enc_2' is also the name of a copy of the block use layers[0]"]
