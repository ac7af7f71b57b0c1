"""The recurrent layers of the torch backend: simple_rnn, lstm and gru, and bidirectional wrappers.

They call torch's fused recurrent kernels with the canonical weights converted to
torch's layout (``layout.py``); inputs are (batch, steps, features), batch first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

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
            lengths = trailing_padding_lengths(mask)
            return self._masked(x, mask) if lengths is None else self._packed(x, mask, lengths)
        h0 = x.new_zeros((1, x.shape[0], self.units))
        hidden = (h0, h0) if self.kind == "lstm" else h0
        # Arguments: has_biases, num_layers, dropout, train, bidirectional, batch_first.
        outputs, last, *_ = self.function(x, hidden, self._weights(), self.use_bias, 1, 0.0, self.training, False, True)
        return outputs if self.return_sequences else last[0]

    def _weights(self) -> list[torch.Tensor]:
        weights: list[torch.Tensor] = [self.weight_ih, self.weight_hh]
        if self.use_bias:
            weights += [self.bias_ih, self.bias_hh]
        return weights

    def _packed(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Sequences padded at the end only (what a torch user packs with ``pack_padded_sequence``):
        the fused kernel reads each sequence's valid steps; the outputs at padded steps repeat
        the last valid one, as the masked rule says."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h0 = x.new_zeros((1, x.shape[0], self.units))
        hidden = (h0, h0) if self.kind == "lstm" else h0  # zeros: no need to sort them like the batch
        # The packed overload: data, batch_sizes, hidden, weights, has_biases, num_layers, dropout, train, bidirectional.
        data, last, *_ = self.function(
            packed.data, packed.batch_sizes, hidden, self._weights(), self.use_bias, 1, 0.0, self.training, False
        )
        order = packed.unsorted_indices  # the kernel's batch is sorted by length
        final = last[0] if order is None else last[0].index_select(0, order)
        if not self.return_sequences:
            return final
        result = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        outputs, _ = pad_packed_sequence(result, batch_first=True, total_length=x.shape[1])
        return torch.where(mask.unsqueeze(-1), outputs, final.unsqueeze(1))

    def _masked(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Any mask: torch's cell step by step, keeping state and output at masked steps."""
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


def trailing_padding_lengths(mask: torch.Tensor) -> torch.Tensor | None:
    """The valid lengths when every sequence of ``mask`` (batch, steps) is valid up to its length
    and padded after it, and none is empty; else None (one host sync to decide)."""
    if torch.compiler.is_exporting():  # an exported program cannot branch on the mask: the path for any mask
        return None
    lengths = mask.sum(dim=1)
    steps = torch.arange(mask.shape[1], device=mask.device)
    if bool(torch.equal(steps.unsqueeze(0) < lengths.unsqueeze(1), mask)) and bool((lengths > 0).all()):
        return lengths
    return None


def _reversed_within(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(batch, steps) step indices that reverse each sequence's first ``length`` steps and keep the rest."""
    positions = torch.arange(steps, device=lengths.device).unsqueeze(0)
    return torch.where(positions < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - positions, positions)


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
        lengths = None if mask is None else trailing_padding_lengths(mask)
        if mask is None or lengths is None:
            # The mask is reversed with the sequence: the backward copy skips the (now leading)
            # padding and starts at the last valid step.
            backward = self.backward_layer(x.flip(1), None if mask is None else mask.flip(1))
            if self.return_sequences:
                backward = backward.flip(1)  # line the backward outputs up in time
        else:
            # Padding at the end only: reverse each sequence within its length, so the backward
            # copy reads packed sequences too; at padded steps its output is zeros (what it has
            # output before reaching the first valid step of the reversed sequence).
            index = _reversed_within(lengths, x.shape[1]).unsqueeze(-1)
            backward = self.backward_layer(x.gather(1, index.expand_as(x)), mask)
            if self.return_sequences:
                backward = backward.gather(1, index.expand_as(backward))
                backward = torch.where(mask.unsqueeze(-1), backward, torch.zeros_like(backward))
        if self.merge_mode == "concat":
            return torch.cat([forward, backward], dim=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "mul":
            return forward * backward
        return (forward + backward) / 2

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode}"
