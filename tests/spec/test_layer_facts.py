"""The facts a layer class declares for the graph, the initializers and the estimates."""

from __future__ import annotations

import archspec
from archspec.graph import resolve
from archspec.spec import GRU, LSTM, Bidirectional, SimpleRNN
from archspec.spec.layers import LAYER_TYPES, layer_type_name


def _types_where(fact: str) -> set[str]:
    return {layer_type_name(cls) for cls in LAYER_TYPES if getattr(cls, fact)}


def test_which_layer_types_declare_each_fact():
    assert _types_where("activation_after") == {"dense", "conv2d"}
    assert _types_where("activation_only") == {"activation"}
    assert _types_where("integer_input") == {"embedding"}
    assert _types_where("removes_channel_offsets") == {"batch_norm"}


def test_which_layer_types_declare_each_mask_rule():
    rules: dict[str, set[str]] = {}
    for cls in LAYER_TYPES:
        rules.setdefault(cls.mask_rule, set()).add(layer_type_name(cls))
    assert rules.pop("create") == {"embedding", "masking"}
    assert rules.pop("pass") == {"dense", "activation", "dropout", "layer_norm"}
    assert rules.pop("consume") == {"simple_rnn", "lstm", "gru", "bidirectional"}
    assert rules.pop("combine") == {"add", "multiply", "concatenate"}
    assert rules.pop("refuse") >= {"flatten", "reshape", "conv2d", "batch_norm", "global_avgpool2d"}
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
