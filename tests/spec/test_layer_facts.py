"""The facts a layer class declares for the graph, the initializers and the estimates."""

from __future__ import annotations

import archspec
from archspec.graph import resolve
from archspec.spec import GRU, LSTM, Bidirectional, SimpleRNN
from archspec.spec.layers import LAYER_TYPES, layer_type_name


def _types_where(fact: str) -> set[str]:
    return {layer_type_name(cls) for cls in LAYER_TYPES if getattr(cls, fact)}


def test_which_layer_types_declare_each_fact():
    assert _types_where("activation_after") == {"dense", "conv1d", "conv2d"}
    assert _types_where("activation_only") == {"activation"}
    assert _types_where("integer_input") == {"embedding"}
    assert _types_where("removes_channel_offsets") == {"batch_norm"}


def test_which_layer_types_declare_each_mask_rule():
    rules: dict[str, set[str]] = {}
    for cls in LAYER_TYPES:
        rules.setdefault(cls.mask_rule, set()).add(layer_type_name(cls))
    assert rules.pop("create") == {"embedding", "masking"}
    assert rules.pop("pass") == {"dense", "activation", "dropout", "layer_norm", "position_embedding"}
    assert rules.pop("consume") == {
        "simple_rnn",
        "lstm",
        "gru",
        "bidirectional",
        "global_avgpool1d",
        "global_maxpool1d",
        "multi_head_attention",
    }
    assert rules.pop("combine") == {"add", "multiply", "concatenate"}
    assert rules.pop("refuse") >= {
        "flatten",
        "reshape",
        "conv1d",
        "conv2d",
        "maxpool1d",
        "batch_norm",
        "global_avgpool2d",
    }
    assert not rules


def test_nodes_say_which_tensors_carry_a_mask():
    graph = resolve(
        archspec.load(
            "name: m\ninputs: {x: {shape: [7], dtype: int64}, y: {shape: [7, 2]}}\nlayers:\n"
            "  - {id: e, type: embedding, input_dim: 5, output_dim: 2, mask_zero: true, inputs: [x]}\n"
            "  - {id: s, type: lstm, units: 2, return_sequences: true}\n"
            "  - {id: plain, type: dense, units: 2, inputs: [y]}\n"
            "  - {id: both, type: add, inputs: [s, plain]}\n"
            "  - {id: steps, type: concatenate, axis: 0, inputs: [both, plain]}\n"
            "  - {id: last, type: gru, units: 2}\n"
            "  - {id: out, type: dense, units: 1}\n"
        )
    )
    masked = {node.id: (node.input_masked, node.mask_source) for node in graph.nodes}
    assert masked == {
        "e": ((False,), "create"),
        "s": ((True,), "input"),
        "plain": ((False,), None),
        "both": ((True, False), "all"),
        "steps": ((True, False), "steps"),
        "last": ((True,), None),
        "out": ((False,), None),
    }


def test_attention_honours_the_key_mask_and_carries_the_query_mask():
    graph = resolve(
        archspec.load(
            "name: m\ninputs: {x: {shape: [7], dtype: int64}, y: {shape: [7, 2]}}\nlayers:\n"
            "  - {id: e, type: embedding, input_dim: 5, output_dim: 2, mask_zero: true, inputs: [x]}\n"
            "  - {id: plain, type: dense, units: 2, inputs: [y]}\n"
            "  - {id: to_masked, type: multi_head_attention, num_heads: 1, key_dim: 2, inputs: [plain, e]}\n"
            "  - {id: from_masked, type: multi_head_attention, num_heads: 1, key_dim: 2, inputs: [e, plain, plain]}\n"
            "  - {id: both, type: add, inputs: [to_masked, from_masked]}\n"
            "  - {type: global_avgpool1d}\n"
        )
    )
    nodes = graph.node_by_id
    assert (nodes["to_masked"].mask_input, nodes["to_masked"].input_masked, nodes["to_masked"].masked) == (
        1,
        (False, True),
        False,
    )
    assert (nodes["from_masked"].mask_input, nodes["from_masked"].masked) == (2, True)
    assert nodes["both"].mask_source == "all" and nodes["global_avgpool1d_1"].masked is False


def test_node_activation_follows_the_class_facts():
    graph = resolve(
        archspec.load(
            "name: a\ninputs: {x: {shape: [5, 3]}}\nlayers:\n"
            "  - {type: simple_rnn, units: 4, activation: relu, return_sequences: true}\n"
            "  - {type: flatten}\n"
            "  - {type: dense, units: 3, activation: tanh}\n"
            "  - {type: dropout, rate: 0.5}\n"
            "  - {type: activation, activation: softmax}\n"
            "training: {loss: sparse_categorical_crossentropy}\n"
        )
    )
    # simple_rnn's activation acts inside the recurrence: no pre-activation tensor after it.
    assert [node.activation for node in graph.nodes] == [None, None, "tanh", None, "softmax"]
    assert graph.heads[0].logits == "dropout_1"  # the activation layer's input is its pre-activation


def test_initial_constants():
    lstm = LSTM(type="lstm", units=3)
    assert lstm.initial_constants("bias") == ((slice(3, 6), 1.0),)
    assert lstm.initial_constants("kernel") == ()
    assert LSTM(type="lstm", units=3, unit_forget_bias=False).initial_constants("bias") == ()
    assert GRU(type="gru", units=3).initial_constants("bias") == ()
    wrapped = Bidirectional(type="bidirectional", layer=lstm)
    assert wrapped.initial_constants("backward.bias") == ((slice(3, 6), 1.0),)
    assert wrapped.initial_constants("forward.recurrent_kernel") == ()


def test_step_state_sizes():
    assert SimpleRNN(type="simple_rnn", units=5).step_state_size() == 5
    assert LSTM(type="lstm", units=5).step_state_size() == 30
    assert GRU(type="gru", units=5).step_state_size() == 20
    assert Bidirectional(type="bidirectional", layer=GRU(type="gru", units=5)).step_state_size() == 40


def test_internal_elements_of_attention_and_recurrent_layers():
    from archspec.spec import MultiHeadAttention

    # q (6 * 2 * 3) + k, v (4 * 2 * (3 + 5)) + scores, weights and dropped weights (3 * 2 * 6 * 4) + attended (6 * 2 * 5)
    attention = MultiHeadAttention(type="multi_head_attention", num_heads=2, key_dim=3, value_dim=5, dropout=0.1)
    assert attention.internal_elements([(6, 7), (4, 9)]) == 36 + 64 + 144 + 60
    assert LSTM(type="lstm", units=5).internal_elements([(7, 3)]) == 7 * 30
    assert SimpleRNN(type="simple_rnn", units=5).internal_elements([(7, 3)]) == 7 * 5
