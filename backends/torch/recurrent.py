"""The recurrent layers of the torch backend: simple_rnn, lstm and gru, and bidirectional wrappers.

They call torch's fused recurrent kernels with the canonical weights converted to
torch's layout (``layout.py``); inputs are (batch, steps, features), batch first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from archspec.graph import Node
from archspec.spec import layers as spec

from .context import BuildContext, parameter


class Recurrent(nn.Module):
    """One unidirectional simple_rnn, lstm or gru on (batch, steps, features), batch first.

    Calls the fused kernels behind ``nn.RNN``/``nn.LSTM``/``nn.GRU`` with the flat
    weight list ``[weight_ih, weight_hh, bias_ih, bias_hh]``. simple_rnn and lstm have
    one bias in the spec, so ``bias_hh`` is a constant zero buffer there, not a parameter.

    With a mask (``(batch, steps)``, True at valid steps) it runs torch's cell step by step
    and skips masked steps (state kept, previous output repeated), Keras' rule, which
    ``pack_padded_sequence`` cannot express for padding anywhere but at the end.
    """

    def __init__(self, context: BuildContext, layer: spec.SimpleRNN | spec.LSTM | spec.GRU, features: int):
        super().__init__()
        self.kind = layer.type
        functions: dict[str, Callable[..., tuple[torch.Tensor, ...]]] = {
            "lstm": torch.lstm,
            "gru": torch.gru,
            "simple_rnn": torch.rnn_relu if getattr(layer, "activation", "tanh") == "relu" else torch.rnn_tanh,
        }
        self.function = functions[self.kind]
        # One step of the same recurrence, for masked sequences (lstm: torch.lstm_cell).
        self.cell: Callable[..., torch.Tensor] = torch.gru_cell
        if self.kind == "simple_rnn":
            self.cell = torch.rnn_relu_cell if self.function is torch.rnn_relu else torch.rnn_tanh_cell
        self.units, self.return_sequences, self.use_bias = layer.units, layer.return_sequences, layer.use_bias
        width = layer.gates * layer.units
        self.weight_ih = parameter(context, width, features)
        self.weight_hh = parameter(context, width, layer.units)
        if self.use_bias:
            self.bias_ih = parameter(context, width)
            if self.kind == "gru":
                self.bias_hh = parameter(context, width)
            else:
                self.register_buffer(
                    "bias_hh", torch.zeros(width, dtype=context.dtype, device=context.device), persistent=False
                )

    # torch.compile cannot trace the fused recurrent kernels (it leaves nn.LSTM alone for
    # the same reason), so the recurrence runs eagerly inside a compiled step.
    @torch.compiler.disable
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            return self._masked(x, mask)
        weights = [self.weight_ih, self.weight_hh]
        if self.use_bias:
            weights += [self.bias_ih, self.bias_hh]
        h0 = x.new_zeros((1, x.shape[0], self.units))
        hidden = (h0, h0) if self.kind == "lstm" else h0
        # Arguments: has_biases, num_layers, dropout, train, bidirectional, batch_first.
        outputs, last, *_ = self.function(x, hidden, weights, self.use_bias, 1, 0.0, self.training, False, True)
        return outputs if self.return_sequences else last[0]

    def _masked(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        biases = (self.bias_ih, self.bias_hh) if self.use_bias else (None, None)
        h = x.new_zeros((x.shape[0], self.units))
        c = h
        valid = mask.unsqueeze(-1)
        outputs = []
        for t in range(x.shape[1]):
            if self.kind == "lstm":
                h_new, c_new = torch.lstm_cell(x[:, t], (h, c), self.weight_ih, self.weight_hh, *biases)
                c = torch.where(valid[:, t], c_new, c)
            else:
                h_new = self.cell(x[:, t], h, self.weight_ih, self.weight_hh, *biases)
            h = torch.where(valid[:, t], h_new, h)
            outputs.append(h)
        return torch.stack(outputs, dim=1) if self.return_sequences else h

    def extra_repr(self) -> str:
        return f"{self.kind}, units={self.units}, return_sequences={self.return_sequences}"


class Bidirectional(nn.Module):
    """A forward and a backward recurrent layer; the backward one reads the reversed sequence."""

    def __init__(self, context: BuildContext, node: Node):
        super().__init__()
        features = node.input_shapes[0][-1]
        layer = node.layer_as(spec.Bidirectional)
        self.merge_mode = layer.merge_mode
        self.return_sequences = layer.layer.return_sequences
        # Not 'forward'/'backward': those names are nn.Module methods.
        self.forward_layer = Recurrent(context, layer.layer, features)
        self.backward_layer = Recurrent(context, layer.layer, features)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        forward = self.forward_layer(x, mask)
        # The mask is reversed with the sequence: the backward copy starts at the last valid step.
        backward = self.backward_layer(x.flip(1), None if mask is None else mask.flip(1))
        if self.return_sequences:
            backward = backward.flip(1)  # line the backward outputs up in time
        if self.merge_mode == "concat":
            return torch.cat([forward, backward], dim=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "mul":
            return forward * backward
        return (forward + backward) / 2

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode}"
