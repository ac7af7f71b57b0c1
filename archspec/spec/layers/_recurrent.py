"""Recurrent layers (simple RNN, LSTM, GRU) and the bidirectional wrapper."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from archspec.spec.common import Initializer, PositiveInteger, Regularizer
from archspec.spec.layers._base import LayerBase, MaskRule, ParamSpec, init, need_rank


class _Recurrent(LayerBase):
    """Options shared by the recurrent layers. The initial state is zeros.

    A masked step is skipped (Keras' rule): the state stays as it was and the step's output
    repeats the previous one (zeros before the first valid step), so without
    ``return_sequences`` the result is the output of the last valid step."""

    mask_rule: ClassVar[MaskRule] = "consume"

    units: PositiveInteger
    return_sequences: bool = False
    use_bias: bool = True
    kernel_initializer: Initializer = init("glorot_uniform")
    recurrent_initializer: Initializer = init("orthogonal")
    bias_initializer: Initializer = init("zeros")
    kernel_regularizer: Regularizer | None = None
    recurrent_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None

    gates: ClassVar[int] = 1  # blocks stacked along the last axis of the kernels
    states_per_step: ClassVar[int] = 1  # tensors of ``units`` values (gates, states) kept per time step

    def output_shape(self, input_shapes):
        need_rank(self.type, input_shapes[0], 2, "a sequence (steps, features)")
        if self.return_sequences:
            return (input_shapes[0][0], self.units)
        return (self.units,)

    def step_state_size(self) -> int:
        return self.states_per_step * self.units

    def keeps_steps(self) -> bool:
        return self.return_sequences

    def _bias_params(self) -> list[ParamSpec]:
        size = (self.gates * self.units,)
        return [ParamSpec("bias", size, self.bias_initializer, True, self.bias_regularizer)]

    def parameters(self, input_shapes):
        features = input_shapes[0][-1]
        width = self.gates * self.units
        params = [
            ParamSpec("kernel", (features, width), self.kernel_initializer, True, self.kernel_regularizer),
            ParamSpec(
                "recurrent_kernel", (self.units, width), self.recurrent_initializer, True, self.recurrent_regularizer
            ),
        ]
        if self.use_bias:
            params.extend(self._bias_params())
        return params


class SimpleRNN(_Recurrent):
    """``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

    type: Literal["simple_rnn"]
    activation: Literal["tanh", "relu"] = "tanh"


class LSTM(_Recurrent):
    """LSTM with gate blocks in the order input, forget, cell, output (i, f, g, o),
    sigmoid gates and tanh cell, one bias. ``unit_forget_bias`` starts the
    forget-gate bias at 1 (Keras' default)."""

    type: Literal["lstm"]
    unit_forget_bias: bool = True
    gates: ClassVar[int] = 4
    states_per_step: ClassVar[int] = 6

    def initial_constants(self, param_name: str) -> tuple[tuple[slice, float], ...]:
        if self.unit_forget_bias and param_name == "bias":
            return ((slice(self.units, 2 * self.units), 1.0),)  # the forget gate's block
        return ()


class GRU(_Recurrent):
    """GRU with gate blocks in the order update, reset, candidate (z, r, h) and
    two biases, the reset gate applied after the recurrent product
    (Keras' ``reset_after=True``, PyTorch's formulation)::

        z = sigmoid(x Wz + bz + h Uz + rz);  r = sigmoid(x Wr + br + h Ur + rr)
        n = tanh(x Wh + bh + r * (h Uh + rh));  h' = z * h + (1 - z) * n
    """

    type: Literal["gru"]
    gates: ClassVar[int] = 3
    states_per_step: ClassVar[int] = 4

    def _bias_params(self):
        size = (self.gates * self.units,)
        return [
            ParamSpec("bias", size, self.bias_initializer, True, self.bias_regularizer),
            ParamSpec("recurrent_bias", size, self.bias_initializer, True, self.bias_regularizer),
        ]


RecurrentLayer = Annotated[SimpleRNN | LSTM | GRU, Field(discriminator="type")]


class Bidirectional(LayerBase):
    """Runs ``layer`` forwards and a copy of it over the reversed sequence.
    With ``return_sequences`` the backward outputs are re-reversed to line up in
    time; without, the backward output is its state after reading step 0.
    Parameters are ``{id}.forward.*`` and ``{id}.backward.*``. With a mask both directions
    skip the masked steps, so the backward one starts at the last valid step."""

    type: Literal["bidirectional"]
    mask_rule: ClassVar[MaskRule] = "consume"
    layer: RecurrentLayer
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"

    @field_validator("layer")
    @classmethod
    def _no_graph_fields(cls, value):
        if value.id is not None or value.inputs is not None:
            raise ValueError("the wrapped layer takes no 'id' or 'inputs'; give them to the bidirectional layer")
        return value

    def output_shape(self, input_shapes):
        inner = self.layer.output_shape(input_shapes)
        if self.merge_mode == "concat":
            return (*inner[:-1], 2 * inner[-1])
        return inner

    def parameters(self, input_shapes):
        inner = self.layer.parameters(input_shapes)
        return [
            ParamSpec(f"{direction}.{p.name}", p.shape, p.initializer, p.trainable, p.regularizer)
            for direction in ("forward", "backward")
            for p in inner
        ]

    def initial_constants(self, param_name: str) -> tuple[tuple[slice, float], ...]:
        _direction, _, inner_name = param_name.partition(".")
        return self.layer.initial_constants(inner_name)

    def step_state_size(self) -> int:
        return 2 * self.layer.step_state_size()  # both directions

    def keeps_steps(self) -> bool:
        return self.layer.return_sequences
