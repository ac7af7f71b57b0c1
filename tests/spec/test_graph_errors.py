"""Every kind of graph and cross-field mistake gives a located, actionable message."""

import textwrap

import pytest

import archspec
from archspec.errors import SpecError

HEADER = "name: t\ninputs: {x: {shape: [784]}}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        archspec.load(textwrap.dedent(text))
    return [str(p) for p in caught.value.problems]


CASES = {
    "unknown reference": (
        HEADER + "layers:\n  - {id: a, type: dense, units: 3}\n  - {type: dense, units: 3, inputs: [b]}\n",
        "<spec>:5:",
        "unknown input or layer id 'b'",
    ),
    "duplicate id": (
        HEADER + "layers:\n  - {id: a, type: dense, units: 3}\n  - {id: a, type: dense, units: 3}\n",
        "<spec>:5:",
        "duplicate layer id 'a' (first used by layers[0])",
    ),
    "id shadows input": (
        HEADER + "layers:\n  - {id: x, type: dense, units: 3}\n",
        "<spec>:4:",
        "layer id 'x' is already the name of an input",
    ),
    "cycle": (
        HEADER
        + "layers:\n  - {id: a, type: dense, units: 4, inputs: [b]}\n  - {id: b, type: dense, units: 4, inputs: [a]}\n"
        "  - {id: c, type: dense, units: 4, inputs: [x]}\noutputs: [c]\n",
        "<spec>:4:",
        "form a cycle",
    ),
    "dangling layer": (
        HEADER + "layers:\n  - {id: a, type: dense, units: 3}\n  - {id: b, type: dense, units: 3, inputs: [x]}\n",
        "<spec>:4:",
        "layer 'a' is not used by any layer or output",
    ),
    "merge shapes disagree": (
        HEADER + "layers:\n  - {id: a, type: dense, units: 3}\n  - {id: b, type: dense, units: 4, inputs: [x]}\n"
        "  - {type: add, inputs: [a, b]}\n",
        "<spec>:6:",
        "add expects inputs of one shape, received [3], [4]",
    ),
    "merge with one input": (
        HEADER + "layers:\n  - {id: a, type: dense, units: 3}\n  - {type: add, inputs: [a]}\n",
        "<spec>:5:",
        "add takes at least 2 input(s), received 1",
    ),
    "conv needs an image": (
        HEADER + "layers:\n  - {type: conv2d, filters: 3, kernel_size: 3}\n",
        "<spec>:4:",
        "conv2d expects an image (height, width, channels)",
    ),
    "recurrent needs a sequence": (
        HEADER + "layers:\n  - {type: gru, units: 3}\n",
        "<spec>:4:",
        "gru expects a sequence (steps, features)",
    ),
    "kernel larger than image": (
        "name: t\ninputs: {x: {shape: [4, 4, 1]}}\nlayers:\n  - {type: conv2d, filters: 3, kernel_size: 5}\n",
        "<spec>:4:",
        "does not fit an image of 4x4",
    ),
    "reshape size": (
        HEADER + "layers:\n  - {type: reshape, target_shape: [27, 28]}\n",
        "<spec>:4:",
        "reshape expects 756 values per sample",
    ),
    "softmax with binary loss": (
        HEADER + "layers:\n  - {type: dense, units: 1, activation: softmax}\ntraining: {loss: binary_crossentropy}\n",
        "<spec>:4:",
        "binary_crossentropy expects a sigmoid (or linear) output with 1 unit, received a softmax output",
    ),
    "sigmoid with categorical loss": (
        HEADER
        + "layers:\n  - {type: dense, units: 10, activation: sigmoid}\ntraining: {loss: sparse_categorical_crossentropy}\n",
        "<spec>:4:",
        "expects a softmax (or linear) output, received sigmoid",
    ),
    "relu into cross-entropy": (
        HEADER
        + "layers:\n  - {type: dense, units: 10, activation: relu}\ntraining: {loss: categorical_crossentropy}\n",
        "<spec>:4:",
        "expects the output layer's activation to be softmax, sigmoid or linear (logits), received relu",
    ),
    "mnist view vs input": (
        HEADER + "layers:\n  - {type: dense, units: 10, activation: softmax}\n"
        "training: {loss: sparse_categorical_crossentropy}\ndata: {dataset: mnist, view: image}\n",
        "<spec>:2:",
        "mnist view 'image' gives samples of shape [28, 28, 1]",
    ),
    "mnist needs 10 outputs": (
        HEADER + "layers:\n  - {type: dense, units: 9, activation: softmax}\n"
        "training: {loss: sparse_categorical_crossentropy}\ndata: {dataset: mnist}\n",
        "<spec>:4:",
        "expected an output of shape [10], received [9]",
    ),
    "regression metric on a classifier": (
        HEADER + "layers:\n  - {type: dense, units: 10, activation: softmax}\n"
        "training: {loss: sparse_categorical_crossentropy, metrics: [accuracy, mae]}\n",
        "<spec>:5:",
        "metric 'mae' is for regression",
    ),
    "embedding on float input": (
        HEADER + "layers:\n  - {type: embedding, input_dim: 10, output_dim: 4}\n",
        "<spec>:4:",
        "embedding expects an integer model input",
    ),
    "integer input into dense": (
        "name: t\ninputs: {ids: {shape: [5], dtype: int64}}\nlayers:\n  - {type: dense, units: 2}\n",
        "<spec>:4:",
        "integer input 'ids' can only feed an embedding layer",
    ),
    "nesterov without momentum": (
        HEADER
        + "layers:\n  - {type: dense, units: 1}\ntraining:\n  loss: mse\n  optimizer: {type: sgd, nesterov: true}\n",
        "<spec>:7:",
        "expected momentum > 0 with nesterov: true",
    ),
    "strides with dilation": (
        "name: t\ninputs: {x: {shape: [8, 8, 1]}}\nlayers:\n  - {type: conv2d, filters: 1, kernel_size: 3, strides: 2, dilation_rate: 2}\n",
        "<spec>:4:",
        "expected strides of 1 when dilation_rate > 1",
    ),
    "conv1d needs a sequence": (
        "name: t\ninputs: {x: {shape: [8, 8, 1]}}\nlayers:\n  - {type: conv1d, filters: 3, kernel_size: 3}\n",
        "<spec>:4:",
        "conv1d expects a sequence (steps, channels) (rank 2 per sample), received shape [8, 8, 1]",
    ),
    "kernel longer than sequence": (
        "name: t\ninputs: {x: {shape: [6, 4]}}\nlayers:\n  - {type: conv1d, filters: 3, kernel_size: 4, dilation_rate: 2}\n",
        "<spec>:4:",
        "does not fit a sequence of 6",
    ),
    "causal is for conv1d only": (
        "name: t\ninputs: {x: {shape: [8, 8, 1]}}\nlayers:\n  - {type: conv2d, filters: 1, kernel_size: 3, padding: causal}\n",
        "<spec>:4:",
        "layers[0].padding: expected one of 'valid', 'same', received 'causal'",
    ),
    "conv1d strides with dilation": (
        "name: t\ninputs: {x: {shape: [6, 4]}}\nlayers:\n  - {type: conv1d, filters: 1, kernel_size: 2, strides: 2, dilation_rate: 2}\n",
        "<spec>:4:",
        "expected strides of 1 when dilation_rate > 1",
    ),
    "sequence longer than max_length": (
        "name: t\ninputs: {x: {shape: [6, 4]}}\nlayers:\n  - {type: dense, units: 4}\n  - {type: position_embedding, max_length: 5}\n",
        "<spec>:5:",
        "position_embedding expects at most max_length=5 steps, received 6",
    ),
    "attention key and value lengths differ": (
        "name: t\ninputs: {x: {shape: [6, 4]}, m: {shape: [3, 2]}}\nlayers:\n"
        "  - {id: a, type: multi_head_attention, num_heads: 2, key_dim: 2, inputs: [x, m, x]}\n",
        "<spec>:4:",
        "multi_head_attention expects a key as long as the value, received key steps 6, value steps 3",
    ),
    "attention with four inputs": (
        "name: t\ninputs: {x: {shape: [6, 4]}}\nlayers:\n  - {type: multi_head_attention, num_heads: 1, key_dim: 2, inputs: [x, x, x, x]}\n",
        "<spec>:4:",
        "multi_head_attention takes",
    ),
    "attention on flat vectors": (
        HEADER + "layers:\n  - {type: multi_head_attention, num_heads: 1, key_dim: 2}\n",
        "<spec>:4:",
        "multi_head_attention query expects a sequence (steps, features)",
    ),
    "unknown output": (
        HEADER + "layers:\n  - {id: dense, type: dense, units: 1}\noutputs: [dnse]\n",
        "<spec>:5:",
        "unknown layer id 'dnse'; did you mean 'dense'?",
    ),
    "wrapped layer with id": (
        "name: t\ninputs: {x: {shape: [5, 3]}}\nlayers:\n  - {type: bidirectional, layer: {type: lstm, units: 2, id: inner}}\n",
        "<spec>:4:",
        "the wrapped layer takes no 'id' or 'inputs'",
    ),
    "mask reaches flatten": (
        "name: t\ninputs: {x: {shape: [5], dtype: int64}}\nlayers:\n"
        "  - {id: e, type: embedding, input_dim: 4, output_dim: 2, mask_zero: true}\n"
        "  - {type: dense, units: 3}\n  - {type: flatten}\n",
        "<spec>:6:",
        "layer 'flatten_1' (flatten) cannot honour a mask: expected an input without one, received 'dense_1', "
        "whose padded steps were marked by 'e'",
    ),
    "mask reaches batch_norm": (
        "name: t\ninputs: {x: {shape: [5, 3]}}\nlayers:\n  - {type: masking}\n  - {type: batch_norm}\n"
        "  - {type: lstm, units: 2}\n",
        "<spec>:5:",
        "layer 'batch_norm_1' (batch_norm) cannot honour a mask",
    ),
    "masked output with a loss": (
        "name: t\ninputs: {x: {shape: [5, 3]}}\nlayers:\n  - {type: masking}\n"
        "  - {type: lstm, units: 2, return_sequences: true}\ntraining: {loss: mse}\n",
        "<spec>:5:",
        "output 'lstm_1' carries a mask (padding marked by 'masking_1') and the loss cannot skip padded steps",
    ),
    "mask_zero on ids that are not a sequence": (
        "name: t\ninputs: {x: {shape: [5, 2], dtype: int64}}\nlayers:\n"
        "  - {type: embedding, input_dim: 4, output_dim: 2, mask_zero: true}\n  - {type: flatten}\n",
        "<spec>:4:",
        "embedding with mask_zero expects a sequence of ids (steps,) (rank 1 per sample), received shape [5, 2]",
    ),
    "masking a vector": (
        HEADER + "layers:\n  - {type: masking}\n",
        "<spec>:4:",
        "masking expects a sequence (steps, features) (rank 2 per sample), received shape [784]",
    ),
    "dropout rate": (
        HEADER + "layers:\n  - {type: dropout, rate: 1.5}\n",
        "<spec>:4:",
        "rate",
    ),
    "duplicate key": (
        HEADER + "layers:\n  - {type: dense, units: 3, units: 4}\n",
        "<spec>:4:",
        "duplicate key 'units'",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mistake_is_located(name):
    text, where, message = CASES[name]
    found = problems(text)
    assert any(p.startswith(where) and message in p for p in found), found


def test_all_problems_reported_at_once():
    found = problems(
        HEADER + "layers:\n  - {type: dense, units: -1}\n  - {type: dropout, rate: 2}\n  - {type: lstm, unitz: 3}\n"
    )
    assert len(found) >= 3
    assert [p.split(":")[1] for p in found] == sorted((p.split(":")[1] for p in found), key=int)


def test_load_from_text_path_and_spec(configs_dir):
    path = configs_dir / "mnist_mlp.yaml"
    from_path = archspec.load(path)
    from_text = archspec.load(path.read_text())
    assert from_path == from_text
    assert archspec.load(from_path) is from_path
    assert isinstance(from_path, archspec.Spec)
    assert from_path.layers[0].units == 256
