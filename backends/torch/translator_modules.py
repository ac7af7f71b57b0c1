"""The ``torch.nn`` modules that map to spec layers, one handler each, with their conventions
converted: batch-norm momentum (torch's ``m`` is archspec's and Keras' ``1 - m``), symmetric
integer padding (``same``, ``valid`` or an explicit ``zero_padding`` layer), a linear layer's
rows after a channels-first flatten, and the recurrent layers' biases and gate orders (by
``layout.py``, from torch's own arrays)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from torch import fx, nn

from .translation import (
    ACTIVATION_MODULES,
    ADAPTIVE_POOL_MODULES,
    POOL_MODULES,
    AttentionCall,
    RecurrentCall,
    Tensor,
    Unsupported,
    array,
)

if TYPE_CHECKING:
    from .translator import Translator


def translate_module(self: Translator, node: fx.Node, module: nn.Module) -> Any:
    """What ``module``, called at ``node``, is in the spec."""
    if isinstance(module, (nn.Identity,)):
        return self._tensor(node.args[0])
    if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
        return _recurrent_call(self, node, module)
    if isinstance(module, nn.MultiheadAttention):
        return _attention(self, node, module)
    if len(node.args) != 1 or node.kwargs:
        raise Unsupported(f"expected one tensor argument, received {len(node.args)} and {sorted(node.kwargs)}")
    source = self._tensor(node.args[0])
    if type(module) in ACTIVATION_MODULES:
        return self._activation(source, ACTIVATION_MODULES[type(module)])
    if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
        if module.dim is None:
            raise Unsupported("expected an explicit dim, received none")
        return self._activation(source, "softmax" if isinstance(module, nn.Softmax) else "log_softmax", module.dim)
    if isinstance(module, nn.GELU):
        if module.approximate != "none":
            raise Unsupported(f"expected the exact GELU, received approximate={module.approximate!r}")
        return self._activation(source, "gelu")
    if isinstance(module, nn.ELU):
        if module.alpha != 1.0:
            raise Unsupported(f"expected alpha 1.0 (archspec's ELU), received {module.alpha}")
        return self._activation(source, "elu")
    if isinstance(module, nn.LeakyReLU):
        if module.negative_slope != 0.2:
            raise Unsupported(f"expected negative_slope 0.2 (archspec's leaky_relu), received {module.negative_slope}")
        return self._activation(source, "leaky_relu")
    if isinstance(module, nn.Dropout):
        return self._dropout(source, float(module.p))
    if isinstance(module, nn.Flatten):
        return self.flatten(source, module.start_dim, module.end_dim)
    if type(module) in POOL_MODULES:
        kind, rank = POOL_MODULES[type(module)]
        options = {
            name: getattr(module, name)
            for name in ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            if hasattr(module, name)
        }
        if kind.startswith("avg"):
            options["count_include_pad"] = module.count_include_pad
            options["divisor_override"] = getattr(module, "divisor_override", None)
        return self.pool(source, kind, rank, options)
    if type(module) in ADAPTIVE_POOL_MODULES:
        mode, rank = ADAPTIVE_POOL_MODULES[type(module)]
        return self.global_pool(source, mode, rank, module.output_size)
    handlers = {
        nn.Linear: _linear,
        nn.Conv1d: _convolution,
        nn.Conv2d: _convolution,
        nn.BatchNorm1d: _batch_norm,
        nn.BatchNorm2d: _batch_norm,
        nn.LayerNorm: _layer_norm,
        nn.Embedding: _embedding,
    }
    handler: Any = handlers.get(type(module))
    if handler is None:
        raise Unsupported("expected a module archspec maps (Linear, Conv1d/2d, pooling, norms, RNN/LSTM/GRU ...)")
    return handler(self, source, module)


def _linear(self: Translator, source: Tensor, module: nn.Linear) -> Tensor:
    if source.channels_first:
        raise Unsupported(
            "expected a linear layer on features, received a channels-first tensor (its last axis is width)"
        )
    weight = array(module.weight)
    if source.order is not None:
        # torch's feature i is the spec's feature order[i]: the kernel's rows follow it.
        permuted = np.empty_like(weight)
        permuted[:, source.order] = weight
        weight = permuted
    native = {"weight": weight}
    if module.bias is not None:
        native["bias"] = array(module.bias)
    layer = {"type": "dense", "units": module.out_features, "use_bias": module.bias is not None}
    return self._add(layer, [source], (*source.shape[:-1], module.out_features), native=native)


def _convolution(self: Translator, source: Tensor, module: nn.Conv1d | nn.Conv2d) -> Tensor:
    rank = 1 if isinstance(module, nn.Conv1d) else 2
    if not source.channels_first or len(source.shape) != rank + 1:
        raise Unsupported(f"expected a channels-first input of {rank} spatial axes, received {list(source.shape)}")
    if module.groups != 1 or module.padding_mode != "zeros":
        raise Unsupported(f"expected groups=1 and zero padding, received groups={module.groups}, {module.padding_mode}")
    kernel, strides, dilation = tuple(module.kernel_size), tuple(module.stride), tuple(module.dilation)
    torch_padding: Any = module.padding
    if max(strides) > 1 and max(dilation) > 1:
        raise Unsupported("expected strides or dilation, not both (as Keras requires)")
    spatial = source.shape[1:]
    if isinstance(torch_padding, str):  # torch's 'same' pads as TensorFlow's (the odd one after)
        padding = torch_padding
    else:
        padding = self._padding(spatial, kernel, strides, dilation, tuple(torch_padding))
    if padding == "explicit":
        source = _zero_padding(self, source, tuple(torch_padding))
        spatial = source.shape[1:]
        padding = "valid"
    out = tuple(
        -(-size // s) if padding == "same" else (size - d * (k - 1) - 1) // s + 1
        for size, k, s, d in zip(spatial, kernel, strides, dilation)
    )
    layer: dict[str, Any] = {
        "type": f"conv{rank}d",
        "filters": module.out_channels,
        "kernel_size": list(kernel) if rank == 2 else kernel[0],
        "strides": list(strides) if rank == 2 else strides[0],
        "padding": padding,
        "dilation_rate": list(dilation) if rank == 2 else dilation[0],
        "use_bias": module.bias is not None,
    }
    native = {"weight": array(module.weight)}
    if module.bias is not None:
        native["bias"] = array(module.bias)
    return self._add(layer, [source], (module.out_channels, *out), channels_first=True, native=native)


def _zero_padding(self: Translator, source: Tensor, padding: tuple[int, ...]) -> Tensor:
    """torch's symmetric padding that is not TensorFlow's 'same': an explicit layer before the convolution."""
    rank = len(padding)
    node = self.current
    name = f"{node.target}_padding" if node is not None else "padding"
    layer = {"type": f"zero_padding{rank}d", "padding": [[p, p] for p in padding] if rank == 2 else [padding[0]] * 2}
    shape = (source.shape[0], *(size + 2 * p for size, p in zip(source.shape[1:], padding)))
    return self._add(layer, [source], shape, channels_first=True, name=name, tap=False)


def _batch_norm(self: Translator, source: Tensor, module: nn.BatchNorm1d | nn.BatchNorm2d) -> Tensor:
    if module.momentum is None or not module.track_running_stats:
        raise Unsupported("expected running statistics with a momentum (not a cumulative average)")
    if not (source.channels_first or len(source.shape) == 1):
        raise Unsupported(f"expected (N, C), (N, C, L) or (N, C, H, W), received a channels-last {list(source.shape)}")
    layer = {
        "type": "batch_norm",
        # torch: running = (1 - m) * running + m * batch; archspec (Keras): moving = m' * moving + (1 - m') * batch.
        "momentum": 1.0 - float(module.momentum),
        "epsilon": float(module.eps),
        "center": module.affine,
        "scale": module.affine,
    }
    self.notes.append(
        f"{self.current}: torch updates running_var with the unbiased batch variance, archspec (as Keras) "
        "with the biased one; inference agrees, training's moving variance differs by a factor N/(N-1) on each update"
    )
    native = {"running_mean": _buffer(module.running_mean), "running_var": _buffer(module.running_var)}
    if module.affine:
        native.update(weight=array(module.weight), bias=array(module.bias))
    return self._add(layer, [source], source.shape, channels_first=source.channels_first, native=native)


def _layer_norm(self: Translator, source: Tensor, module: nn.LayerNorm) -> Tensor:
    if len(module.normalized_shape) != 1 or source.channels_first or source.order is not None:
        raise Unsupported(f"expected a layer norm over the last axis, received {tuple(module.normalized_shape)}")
    bias = getattr(module, "bias", None)
    layer = {
        "type": "layer_norm",
        "epsilon": float(module.eps),
        "scale": module.elementwise_affine,
        "center": module.elementwise_affine and bias is not None,
    }
    native = {}
    if module.elementwise_affine:
        native["weight"] = array(module.weight)
        if bias is not None:
            native["bias"] = array(bias)
    return self._add(layer, [source], source.shape, native=native)


def _embedding(self: Translator, source: Tensor, module: nn.Embedding) -> Tensor:
    if module.max_norm is not None:
        raise Unsupported("expected no max_norm (it rewrites the table during the forward)")
    if module.padding_idx is not None:
        self.notes.append(
            f"{self.current}: padding_idx={module.padding_idx} is not kept (archspec's embedding masks nothing "
            "without mask_zero); outputs agree, but training will update that row"
        )
    layer = {"type": "embedding", "input_dim": module.num_embeddings, "output_dim": module.embedding_dim}
    return self._add(layer, [source], (*source.shape, module.embedding_dim), native={"weight": array(module.weight)})


def _buffer(tensor: Any) -> np.ndarray:
    return array(tensor)


# --- recurrent layers -------------------------------------------------------------------


def _recurrent_call(self: Translator, node: fx.Node, module: nn.RNN | nn.LSTM | nn.GRU) -> RecurrentCall:
    if len(node.args) != 1 or node.kwargs:
        raise Unsupported("expected the input sequence only (a zero initial state), received an initial state")
    if getattr(module, "proj_size", 0):
        raise Unsupported("expected an LSTM without proj_size")
    source = self._tensor(node.args[0])
    if len(source.shape) != 2 or source.channels_first:
        raise Unsupported(f"expected a sequence (batch, steps, features), received {list(source.shape)}")
    if source.time_major == module.batch_first:
        held = "time-major" if source.time_major else "batch-first"
        raise Unsupported(f"expected a {'batch-first' if module.batch_first else 'time-major'} input, received {held}")
    return RecurrentCall(node, module, source)


def recurrent_layers(self: Translator, call: RecurrentCall, return_sequences: bool) -> Tensor:
    """The spec layers of a (stacked, maybe bidirectional) torch recurrent module."""
    module = call.module
    kind = {nn.GRU: "gru", nn.LSTM: "lstm", nn.RNN: "simple_rnn"}[type(module)]
    saved, self.current = self.current, call.node
    base = str(call.node.target)
    source = call.source
    try:
        for index in range(module.num_layers):
            last = index == module.num_layers - 1
            inner: dict[str, Any] = {"type": kind, "units": module.hidden_size, "use_bias": module.bias}
            inner["return_sequences"] = return_sequences or not last
            if kind == "simple_rnn":
                inner["activation"] = module.nonlinearity
            if kind == "lstm":
                inner["unit_forget_bias"] = False
            width = module.hidden_size * (2 if module.bidirectional else 1)
            shape = (source.shape[0], width) if inner["return_sequences"] else (width,)
            if module.bidirectional:
                native = {
                    f"{direction}_layer.{name}": value
                    for direction, suffix in (("forward", ""), ("backward", "_reverse"))
                    for name, value in _recurrent_arrays(module, kind, index, suffix).items()
                }
                layer = {"type": "bidirectional", "layer": inner, "merge_mode": "concat"}
            else:
                native = _recurrent_arrays(module, kind, index, "")
                layer = inner
            name = base if last else f"{base}_l{index}"
            time_major = source.time_major and bool(inner["return_sequences"])
            source = self._add(layer, [source], shape, native=native, name=name, tap=False, time_major=time_major)
            if not last and module.dropout > 0:
                source = self._dropout(source, float(module.dropout))
        return source
    finally:
        self.current = saved


def _recurrent_arrays(module: nn.RNNBase, kind: str, index: int, suffix: str) -> dict[str, np.ndarray]:
    """torch's arrays of one layer and direction, under archspec's module names. simple_rnn and
    lstm have one bias in the spec: torch's two are summed (archspec's ``bias_hh`` is a zero)."""
    native = {
        "weight_ih": array(getattr(module, f"weight_ih_l{index}{suffix}")),
        "weight_hh": array(getattr(module, f"weight_hh_l{index}{suffix}")),
    }
    if module.bias:
        bias_ih = array(getattr(module, f"bias_ih_l{index}{suffix}"))
        bias_hh = array(getattr(module, f"bias_hh_l{index}{suffix}"))
        if kind == "gru":  # reset-after: the recurrent bias sits inside r * (h U + b_hh)
            native.update(bias_ih=bias_ih, bias_hh=bias_hh)
        else:
            # In float64: a float32 sum would round, and the float64 proof would see it.
            native["bias_ih"] = np.add(bias_ih, bias_hh, dtype=np.float64)
    return native


# --- attention ------------------------------------------------------------------------


def _attention(self: Translator, node: fx.Node, module: nn.MultiheadAttention) -> AttentionCall:
    names = (
        "query",
        "key",
        "value",
        "key_padding_mask",
        "need_weights",
        "attn_mask",
        "average_attn_weights",
        "is_causal",
    )
    options = dict(zip(names, node.args))
    options.update(node.kwargs)
    if options.get("key_padding_mask") is not None or options.get("attn_mask") is not None or options.get("is_causal"):
        raise Unsupported("expected no key_padding_mask, attn_mask or is_causal")
    if not module.batch_first or module.bias_k is not None or module.add_zero_attn:
        raise Unsupported("expected batch_first=True, no add_bias_kv and no add_zero_attn")
    query, key, value = (options[name] for name in ("query", "key", "value"))
    q = self._tensor(query)
    inputs = [q]
    if not (key is query and value is query):
        inputs.append(self._tensor(value))
        if key is not value:
            inputs.append(self._tensor(key))
    embed, heads = module.embed_dim, module.num_heads
    head_dim = embed // heads
    if module._qkv_same_embed_dim:
        projections = np.split(array(module.in_proj_weight), 3)
    else:
        projections = [array(module.q_proj_weight), array(module.k_proj_weight), array(module.v_proj_weight)]
    use_bias = module.in_proj_bias is not None
    native = {f"{part}.weight": weight for part, weight in zip(("query", "key", "value"), projections)}
    native["output.weight"] = array(module.out_proj.weight)
    if use_bias:
        for part, bias in zip(("query", "key", "value"), np.split(array(module.in_proj_bias), 3)):
            native[f"{part}.bias"] = bias
        native["output.bias"] = array(module.out_proj.bias)
    layer = {
        "type": "multi_head_attention",
        "num_heads": heads,
        "key_dim": head_dim,
        "value_dim": head_dim,
        "output_dim": embed,
        "use_bias": use_bias,
        "dropout": float(module.dropout),
    }
    return AttentionCall(self._add(layer, inputs, (q.shape[0], embed), native=native))
