"""One emitter per layer type for the torch code format: a graph node -> the lines of the
generated ``__init__`` and ``forward``, and its weights in the state-dict layout of the modules
those lines create (canonical -> torch, as ``docs/layout.md`` says)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from archspec.graph import Node
from archspec.spec import layers as spec

from ._writer import INDENT, Tensors, call, literal, statement

ACTIVATIONS = {
    "linear": "{}",
    "relu": "torch.relu({})",
    "leaky_relu": "F.leaky_relu({}, negative_slope=0.2)",
    "elu": "F.elu({}, alpha=1.0)",
    "gelu": "F.gelu({})",  # exact (erf), Keras' default
    "silu": "F.silu({})",
    "sigmoid": "torch.sigmoid({})",
    "tanh": "torch.tanh({})",
    "softmax": "torch.softmax({}, dim=-1)",
}


@dataclass
class TorchContext:
    """What the emitters fill: lines of ``__init__`` and ``forward`` (unindented), the state dict,
    the helpers the file must define. ``attribute`` gives a node's module attribute name."""

    tensors: Tensors
    attribute: Callable[[str], str]
    weights: Mapping[str, np.ndarray]
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    state: dict[str, np.ndarray] = field(default_factory=dict)
    helpers: set[str] = field(default_factory=set)

    def weight(self, node: Node, name: str) -> np.ndarray:
        return np.asarray(self.weights[f"{node.id}.{name}"])

    def module(self, node: Node, head: str, arguments: list[str], attribute: str | None = None) -> str:
        name = attribute or self.attribute(node.id)
        self.init.extend(call(f"self.{name} = {head}", arguments, INDENT * 2))
        return name

    def init_line(self, line: str) -> None:
        self.init.append(INDENT * 2 + line)

    def assign(self, target: str, expression: str, comment: str = "") -> None:
        """A line of ``forward``."""
        self.forward.extend(statement(target, expression, INDENT * 2, comment))


def _swap_first_blocks(array: np.ndarray) -> np.ndarray:
    """GRU gate blocks z, r, h (archspec's, Keras') -> torch's r, z, n, on the last axis."""
    z, r, h = np.split(array, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _channels_first(rank: int) -> tuple[str, str]:
    return ("transpose(1, 2)", "transpose(1, 2)") if rank == 1 else ("permute(0, 3, 1, 2)", "permute(0, 2, 3, 1)")


def _dense(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer_as(spec.Dense)
    name = c.module(
        node, "nn.Linear", [str(node.input_shapes[0][-1]), str(layer.units), f"bias={layer.use_bias}", "dtype=dtype"]
    )
    c.state[f"{name}.weight"] = c.weight(node, "kernel").T  # torch keeps (out, in)
    if layer.use_bias:
        c.state[f"{name}.bias"] = c.weight(node, "bias")
    return f"self.{name}({x[0]})"


def _padding(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(before, after) of one axis: TensorFlow's "same" (the odd one after), Keras' "causal"."""
    if padding == "valid":
        return 0, 0
    span = (kernel - 1) * dilation + 1
    if padding == "causal":
        return span - 1, 0
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _pads(node: Node, padding: str, kernel, strides, dilation) -> list[tuple[int, int]]:
    sizes = node.input_shapes[0][:-1]
    return [_padding(sizes[a], kernel[a], strides[a], dilation[a], padding) for a in range(len(sizes))]


def _f_pad(pads: list[tuple[int, int]]) -> tuple[int, ...]:
    """F.pad's order: the last axis first."""
    return tuple(amount for before_after in reversed(pads) for amount in before_after)


def _convolution(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer_as(spec.Conv1D if node.type == "conv1d" else spec.Conv2D)
    kernel, strides, dilation = layer.kernel_sizes, layer.stride_sizes, layer.dilation_sizes
    pads = _pads(node, layer.padding, kernel, strides, dilation)
    even = all(before == after for before, after in pads)
    symmetric = tuple(before for before, _ in pads) if even else (0,) * layer.rank
    one = (lambda v: literal(v[0])) if layer.rank == 1 else literal
    arguments = [str(node.input_shapes[0][-1]), str(layer.filters), one(kernel), f"stride={one(strides)}"]
    arguments += [f"padding={one(symmetric)}", f"dilation={one(dilation)}", f"bias={layer.use_bias}", "dtype=dtype"]
    name = c.module(node, f"nn.Conv{layer.rank}d", arguments)
    c.state[f"{name}.weight"] = np.moveaxis(
        c.weight(node, "kernel"), (-1, -2), (0, 1)
    )  # (*k, in, out) -> (out, in, *k)
    if layer.use_bias:
        c.state[f"{name}.bias"] = c.weight(node, "bias")
    to_first, to_last = _channels_first(layer.rank)
    source = f"{x[0]}.{to_first}"
    if not even:  # torch pads both sides alike: uneven ("same" with an odd total, "causal") is explicit
        source = f"F.pad({source}, {literal(_f_pad(pads))})"
    return f"self.{name}({source}).{to_last}"


def _pool(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer
    if not isinstance(layer, (spec.MaxPool1D, spec.AvgPool1D, spec.MaxPool2D, spec.AvgPool2D)):
        raise TypeError(f"layer '{node.id}' is a {node.type} layer, not a pooling")
    mode = "max" if node.type.startswith("max") else "avg"
    kernel, stride = layer.pool_sizes, layer.stride_sizes
    pads = _pads(node, layer.padding, kernel, stride, (1,) * layer.rank)
    if any(sum(p) for p in pads):
        c.helpers.add("same_pool")
        return f"same_pool({x[0]}, {literal(mode)}, {literal(kernel)}, {literal(stride)}, {literal(_f_pad(pads))})"
    if layer.rank == 1:
        return f"F.{mode}_pool1d({x[0]}.transpose(1, 2), {kernel[0]}, {stride[0]}).transpose(1, 2)"
    return f"F.{mode}_pool2d({x[0]}.permute(0, 3, 1, 2), {literal(kernel)}, {literal(stride)}).permute(0, 2, 3, 1)"


def _global_pool(node: Node, c: TorchContext, x: list[str]) -> str:
    mode = "max" if node.type.startswith("global_max") else "avg"
    if node.input_masked and node.input_masked[0]:
        c.helpers.add("masked_pool")
        return f"masked_global_pool({x[0]}, {c.tensors.masks[node.inputs[0]]}, {literal(mode)})"
    dims = "1" if node.type.endswith("1d") else "(1, 2)"
    return f"{x[0]}.amax(dim={dims})" if mode == "max" else f"{x[0]}.mean(dim={dims})"


def _norm(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer
    if not isinstance(layer, (spec.BatchNorm, spec.LayerNorm)):
        raise TypeError(f"layer '{node.id}' is a {node.type} layer, not a normalisation")
    channels = node.input_shapes[0][-1]
    if isinstance(layer, spec.BatchNorm):
        c.helpers.add("batch_norm")
        options = [str(channels), str(layer.momentum), str(layer.epsilon), f"scale={layer.scale}"]
        name = c.module(node, "BatchNorm", [*options, f"center={layer.center}", "dtype=dtype"])
        c.state[f"{name}.running_mean"] = c.weight(node, "moving_mean")
        c.state[f"{name}.running_var"] = c.weight(node, "moving_variance")
    else:
        options = [str(channels), f"eps={layer.epsilon}", f"elementwise_affine={layer.scale or layer.center}"]
        name = c.module(node, "nn.LayerNorm", [*options, f"bias={layer.center}", "dtype=dtype"])
        if layer.center and not layer.scale:  # torch's affine always scales: a weight of ones, kept fixed
            c.init_line(f"self.{name}.weight.requires_grad_(False)  # the spec has no scale (gamma)")
            c.state[f"{name}.weight"] = np.ones(channels)
    if layer.scale:
        c.state[f"{name}.weight"] = c.weight(node, "gamma")
    if layer.center:
        c.state[f"{name}.bias"] = c.weight(node, "beta")
    return f"self.{name}({x[0]})"


def _embedding(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer_as(spec.Embedding)
    name = c.module(node, "nn.Embedding", [str(layer.input_dim), str(layer.output_dim), "dtype=dtype"])
    c.state[f"{name}.weight"] = c.weight(node, "embeddings")
    if node.masked:
        mask = c.tensors.add_mask(node.id)
        c.assign(mask, f"{x[0]} != 0", "mask_zero: the id 0 is padding (its row is still looked up)")
    return f"self.{name}({x[0]}.long())"


def _masking(node: Node, c: TorchContext, x: list[str]) -> str:
    value = node.layer_as(spec.Masking).mask_value
    mask = c.tensors.add_mask(node.id)
    c.assign(mask, f"({x[0]} != {value!r}).any(dim=-1)", f"steps whose features all equal {value!r} are padding")
    return f"torch.where({mask}.unsqueeze(-1), {x[0]}, torch.zeros_like({x[0]}))"


_RECURRENT_MODULES = {"lstm": "nn.LSTM", "gru": "nn.GRU", "simple_rnn": "nn.RNN"}


def _recurrent_module(node: Node, c: TorchContext, layer, attribute: str, prefix: str) -> str:
    """One batch-first torch RNN/LSTM/GRU module holding the canonical weights under ``prefix``."""
    arguments = [str(node.input_shapes[0][-1]), str(layer.units), "batch_first=True", f"bias={layer.use_bias}"]
    if layer.type == "simple_rnn":
        arguments.append(f"nonlinearity={literal(layer.activation)}")
    name = c.module(node, _RECURRENT_MODULES[layer.type], [*arguments, "dtype=dtype"], attribute)
    convert = _swap_first_blocks if layer.type == "gru" else (lambda a: a)
    c.state[f"{name}.weight_ih_l0"] = convert(c.weight(node, f"{prefix}kernel")).T
    c.state[f"{name}.weight_hh_l0"] = convert(c.weight(node, f"{prefix}recurrent_kernel")).T
    if layer.use_bias:
        c.state[f"{name}.bias_ih_l0"] = convert(c.weight(node, f"{prefix}bias"))
        if layer.type == "gru":  # reset-after GRU (Keras' reset_after=True): torch's own formulation
            c.state[f"{name}.bias_hh_l0"] = convert(c.weight(node, f"{prefix}recurrent_bias"))
        else:
            c.init_line(f"# archspec's {layer.type} has one bias: torch's second (bias_hh) stays a constant 0.")
            c.init_line(f"self.{name}.bias_hh_l0.requires_grad_(False)")
            c.state[f"{name}.bias_hh_l0"] = np.zeros(layer.gates * layer.units)
    return name


def _run_recurrent(c: TorchContext, module: str, x: str, mask: str | None, sequences: bool) -> str:
    if mask is None:
        c.helpers.add("recurrence")
        return f"recurrence(self.{module}, {x}, sequences={sequences})"
    c.helpers.add("masked_recurrence")
    return f"masked_recurrence(self.{module}, {x}, {mask}, sequences={sequences})"


def _recurrent(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer
    if not isinstance(layer, (spec.SimpleRNN, spec.LSTM, spec.GRU)):
        raise TypeError(f"layer '{node.id}' is a {node.type} layer, not a recurrent one")
    name = _recurrent_module(node, c, layer, c.attribute(node.id), "")
    mask = c.tensors.masks[node.inputs[0]] if node.input_masked[0] else None
    return _run_recurrent(c, name, x[0], mask, layer.return_sequences)


def _bidirectional(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer_as(spec.Bidirectional)
    inner, sequences = layer.layer, layer.layer.return_sequences
    base = c.attribute(node.id)
    forward = _recurrent_module(node, c, inner, f"{base}_forward", "forward.")
    backward = _recurrent_module(node, c, inner, f"{base}_backward", "backward.")
    mask = c.tensors.masks[node.inputs[0]] if node.input_masked[0] else None
    var = c.tensors[node.id]
    c.assign(f"{var}_forward", _run_recurrent(c, forward, x[0], mask, sequences))
    # The backward copy reads the reversed sequence (and mask: it starts at the last valid step).
    if mask is not None:
        c.assign(
            f"{var}_backward", f"masked_backward_recurrence(self.{backward}, {x[0]}, {mask}, sequences={sequences})"
        )
    else:
        c.assign(f"{var}_backward", _run_recurrent(c, backward, f"{x[0]}.flip(1)", None, sequences))
        if sequences:
            c.assign(f"{var}_backward", f"{var}_backward.flip(1)", "lined up in time")
    merged = {
        "concat": f"torch.cat([{var}_forward, {var}_backward], dim=-1)",
        "sum": f"{var}_forward + {var}_backward",
        "mul": f"{var}_forward * {var}_backward",
        "ave": f"({var}_forward + {var}_backward) / 2",
    }
    return merged[layer.merge_mode]


def _attention(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer_as(spec.MultiHeadAttention)
    c.helpers.update({"attention", "dropout"})
    shapes = node.input_shapes
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    key = shapes[2] if len(shapes) > 2 else value
    features = (query[-1], value[-1], key[-1])
    arguments = [f"features={literal(features)}", f"heads={layer.num_heads}", f"key_dim={layer.key_dim}"]
    arguments += [f"value_dim={layer.value_size}", f"output_dim={node.output_shape[-1]}"]
    arguments += [f"bias={layer.use_bias}", f"causal={layer.causal}"]
    arguments += [f"dropout={layer.dropout!r}", f"layer={node.index}", "dtype=dtype"]
    name = c.module(node, "MultiHeadAttention", arguments)
    for projection in ("query", "key", "value", "output"):
        c.state[f"{name}.{projection}.weight"] = c.weight(node, f"{projection}_kernel").T
        if layer.use_bias:
            c.state[f"{name}.{projection}.bias"] = c.weight(node, f"{projection}_bias")
    masked = node.input_masked[node.mask_input]
    extra = [f"mask={c.tensors.masks[node.inputs[node.mask_input]]}"] if masked else []
    return f"self.{name}({', '.join([*x, *extra, 'step=step'])})"


def _position(node: Node, c: TorchContext, x: list[str]) -> str:
    layer = node.layer_as(spec.PositionEmbedding)
    steps, features = node.input_shapes[0]
    name = c.attribute(node.id)
    if layer.kind == "learned":
        c.init_line(f"self.{name} = nn.Parameter(torch.zeros({layer.max_length}, {features}, dtype=dtype))")
        c.state[name] = c.weight(node, "embeddings")
        return f"{x[0]} + self.{name}[:{steps}]"
    c.helpers.add("sinusoidal")
    c.init_line(f'self.register_buffer("{name}", sinusoidal_table({steps}, {features}).to(dtype), persistent=False)')
    return f"{x[0]} + self.{name}"


def _dropout(node: Node, c: TorchContext, x: list[str]) -> str:
    rate = node.layer_as(spec.Dropout).rate
    c.helpers.add("dropout")
    return f"archspec_dropout({x[0]}, rate={rate!r}, layer={node.index}, step=step, training=self.training)"


def _merge(node: Node, c: TorchContext, x: list[str]) -> str:
    if node.type == "concatenate":
        axis = node.layer_as(spec.Concatenate).axis
        return f"torch.cat([{', '.join(x)}], dim={axis + 1 if axis >= 0 else axis})"
    return (" + " if node.type == "add" else " * ").join(x)


def _reshape(node: Node, c: TorchContext, x: list[str]) -> str:
    return f"{x[0]}.reshape({x[0]}.shape[0], {', '.join(str(s) for s in node.output_shape)})"


Emitter = Callable[[Node, TorchContext, list[str]], str]

EMITTERS: dict[str, Emitter] = {
    "dense": _dense,
    "activation": lambda node, c, x: x[0],  # the node's activation does the work
    "dropout": _dropout,
    "flatten": lambda node, c, x: f"{x[0]}.flatten(1)",
    "reshape": _reshape,
    "conv1d": _convolution,
    "conv2d": _convolution,
    **dict.fromkeys(("maxpool1d", "avgpool1d", "maxpool2d", "avgpool2d"), _pool),
    **dict.fromkeys(("global_avgpool1d", "global_maxpool1d", "global_avgpool2d", "global_maxpool2d"), _global_pool),
    "batch_norm": _norm,
    "layer_norm": _norm,
    "embedding": _embedding,
    "masking": _masking,
    "simple_rnn": _recurrent,
    "lstm": _recurrent,
    "gru": _recurrent,
    "bidirectional": _bidirectional,
    "multi_head_attention": _attention,
    "position_embedding": _position,
    "add": _merge,
    "multiply": _merge,
    "concatenate": _merge,
}
