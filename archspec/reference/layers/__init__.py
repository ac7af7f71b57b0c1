"""Reference layers in float64 numpy: the executable definition of every layer type.

Written to be read, not to be fast. Each function takes the layer's spec, its
parameters by local name (``kernel``, ``forward.bias``) in the canonical layout,
its input arrays (batch first, images channels-last), the mode and a
:class:`LayerContext`, and returns a :class:`LayerOutput`. One module per layer
family, as in ``archspec.spec.layers``; ``REFERENCE_LAYERS`` maps every type to its function.
"""

from __future__ import annotations

from archspec.errors import UsageError
from archspec.reference.layers._attention import multi_head_attention, position_embedding
from archspec.reference.layers._base import LayerContext, LayerFunction, LayerOutput, Params, output_mask
from archspec.reference.layers._convolution import (
    avgpool,
    convolution,
    global_avgpool,
    global_maxpool,
    maxpool,
    padding_amounts,
    zero_padding,
)
from archspec.reference.layers._core import activation_layer, dense, dropout, embedding, flatten, masking, reshape
from archspec.reference.layers._merge import add, concatenate, multiply
from archspec.reference.layers._normalization import batch_norm, layer_norm
from archspec.reference.layers._recurrent import bidirectional, recurrent

REFERENCE_LAYERS: dict[str, LayerFunction] = {
    "dense": dense,
    "activation": activation_layer,
    "dropout": dropout,
    "flatten": flatten,
    "reshape": reshape,
    "conv1d": convolution,
    "conv2d": convolution,
    "maxpool1d": maxpool,
    "avgpool1d": avgpool,
    "maxpool2d": maxpool,
    "avgpool2d": avgpool,
    "global_avgpool1d": global_avgpool,
    "global_maxpool1d": global_maxpool,
    "global_avgpool2d": global_avgpool,
    "global_maxpool2d": global_maxpool,
    "zero_padding1d": zero_padding,
    "zero_padding2d": zero_padding,
    "batch_norm": batch_norm,
    "layer_norm": layer_norm,
    "embedding": embedding,
    "masking": masking,
    "simple_rnn": recurrent,
    "lstm": recurrent,
    "gru": recurrent,
    "bidirectional": bidirectional,
    "multi_head_attention": multi_head_attention,
    "position_embedding": position_embedding,
    "add": add,
    "concatenate": concatenate,
    "multiply": multiply,
}


def reference_layer(layer_type: str) -> LayerFunction:
    """The reference function of a layer type; the error lists the known types."""
    if layer_type not in REFERENCE_LAYERS:
        raise UsageError(f"expected a layer type among {', '.join(REFERENCE_LAYERS)}, received {layer_type!r}")
    return REFERENCE_LAYERS[layer_type]


__all__ = [
    "REFERENCE_LAYERS",
    "LayerContext",
    "LayerFunction",
    "LayerOutput",
    "Params",
    "output_mask",
    "padding_amounts",
    "reference_layer",
]
