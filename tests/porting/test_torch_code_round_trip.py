"""The torch round trip through plain PyTorch: spec -> archspec's ``torch_code`` file (a
generated ``nn.Module`` and its weights, importing nothing from archspec) -> ``from_torch`` ->
the same spec, up to generated names, and bit-identical weights.

Unlike ``from_torch`` on a compiled model's own ``GraphModule`` (read from the graph it keeps,
``test_torch_import.py``), this traces the generated code as any user's module. "The same
spec" is the computation: inputs, every node's type and options and what it reads, the
outputs; a layer's activation and an activation layer after it are one computation (the file
writes ``torch.relu(self.dense_1(x))``, which torch cannot tell from two layers).
"""

from __future__ import annotations

import numpy as np
import pytest
from paths import CONFIGS

torch = pytest.importorskip("torch")
torch_code = pytest.importorskip("archspec.exporting.code.torch_code")

import archspec  # noqa: E402
from archspec.api import graph_of  # noqa: E402
from archspec.backends.torch.porting import from_torch  # noqa: E402
from archspec.errors import PortingError  # noqa: E402
from archspec.exporting import ExportMetadata  # noqa: E402
from archspec.exporting.code._writer import import_file, weights_path  # noqa: E402
from archspec.version import __version__  # noqa: E402
from archspec.weights import spec_hash  # noqa: E402

# Configs whose generated file torch.fx traces into modules and calls archspec maps.
ROUND_TRIP = [
    "breast_cancer",
    "digits_images",
    "keras_example",
    "linear_regression",
    "logistic_regression",
    "mnist_cnn",
    "mnist_gru",
    "mnist_mlp",
    "mnist_schedule",
    "mnist_two_heads",
    "sine_series",
    "torch_example",
]
# The others, and the one call of their generated file that from_torch cannot map (the file
# writes archspec's own behaviour out in plain torch, which is no torch.nn module or call).
REFUSED = {
    "mnist_bidirectional": "flip (method Tensor.flip)",  # the backward direction: flip, LSTM, flip
    # recurrence() picks h_n[0] with `isinstance(state, tuple)`, which is False for fx's proxy of an
    # LSTM's (h_n, c_n): the trace takes h_n itself, (layers, batch, units), which no spec layer is.
    "mnist_lstm": "received h_n of every layer",
    "mnist_residual": "get_attr block_norm.running_mean",  # batch norm written as F.batch_norm
    "mnist_tcn": "pad (function torch.nn.functional.pad)",  # causal padding
    "mnist_transformer": "get_attr tokens",  # position ids as a tensor attribute
    "sequences_masked_lstm": "expected a forward that torch.fx can trace",  # the mask's packed sequences
    "sequences_masked_transformer": "ne (function _operator.ne)",  # the mask: ids != 0
}
_WINDOWS = ("kernel_size", "strides", "dilation_rate", "pool_size")


def test_every_config_is_listed():
    names = sorted(path.stem for path in CONFIGS.glob("*.yaml"))
    assert sorted([*ROUND_TRIP, *REFUSED]) == names


def generated(name: str, folder) -> tuple[archspec.Spec, dict[str, np.ndarray], torch.nn.Module]:
    """The config, its compiled model's weights, and the generated file's model holding them (float32)."""
    spec = archspec.load(CONFIGS / f"{name}.yaml")
    weights = archspec.compile(spec, "torch", "float32").get_weights()
    graph = graph_of(spec)
    inputs = {input_name: ((None, *item.shape), item.dtype) for input_name, item in spec.inputs.items()}
    metadata = ExportMetadata(spec_hash(spec), __version__, inputs, list(graph.outputs), [])
    out = folder / f"{name}.py"
    torch_code.TorchCode().write(spec, weights, out, "float32", metadata)
    return spec, weights, import_file(out).load_model(weights_path(out), "float32")


def example(spec) -> tuple:
    """One sample per input, channels-last as the generated file reads it."""
    return tuple(
        torch.zeros(1, *item.shape, dtype=torch.float32 if item.dtype == "float" else torch.long)
        for item in spec.inputs.values()
    )


def computation(spec) -> dict:
    """The spec as a computation without its generated names or its layers' order: each output
    as the expression that computes it (node type and options, applied to the expressions of
    what it reads; inputs by position), a layer's activation as an activation node after it."""
    graph = graph_of(spec)
    expressions: dict[str, tuple] = {name: ("input", index) for index, name in enumerate(spec.inputs)}
    for node in graph.nodes:  # graph order: every node after what it reads
        options = node.layer.model_dump(mode="json", exclude={"id", "inputs"}, exclude_none=True)
        options = {k: v for k, v in options.items() if not k.endswith(("_initializer", "_regularizer"))}
        rank = 2 if node.type.endswith("2d") else 1
        if "pool_size" in options and options.get("strides") is None:
            options["strides"] = options["pool_size"]
        for key in _WINDOWS:
            if isinstance(options.get(key), int):
                options[key] = [options[key]] * rank
        activation = options.pop("activation", None) if node.type != "activation" else None
        expression = (node.type, repr(sorted(options.items())), tuple(expressions[s] for s in node.inputs))
        if activation not in (None, "linear"):
            expression = ("activation", repr([("activation", activation), ("type", "activation")]), (expression,))
        expressions[node.id] = expression
    return {
        "inputs": [(list(item.shape), item.dtype) for item in spec.inputs.values()],
        "outputs": [expressions[output] for output in graph.outputs],
    }


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_generated_torch_code_imports_back_to_the_same_spec_and_weights(name, tmp_path):
    spec, weights, module = generated(name, tmp_path)
    imported = from_torch(module, example(spec))
    back = archspec.load(imported.document)
    assert computation(back) == computation(spec)
    assert list(imported.weights) == list(weights)  # the file's modules keep the spec's layer ids
    for key, value in weights.items():
        assert imported.weights[key].dtype == value.dtype, key
        assert np.array_equal(imported.weights[key], value), key


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_generated_torch_code_archspec_cannot_read_back_is_refused_by_name(name, tmp_path):
    spec, _, module = generated(name, tmp_path)
    with pytest.raises(PortingError) as refused:
        from_torch(module, example(spec))
    assert REFUSED[name] in str(refused.value)
