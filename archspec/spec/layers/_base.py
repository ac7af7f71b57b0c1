"""What every layer class shares: the base class, parameter descriptions, shape errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from archspec.spec.common import Initializer, InitializerName, Regularizer, Shape, StrictModel


class LayerShapeError(ValueError):
    """A layer cannot take the shapes it was given (turned into a located Problem)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a layer, in the canonical layout.

    ``name`` is local to the layer (``kernel``); the canonical name of the
    parameter in a model is ``"{layer_id}.{name}"``.
    """

    name: str
    shape: Shape
    initializer: Initializer
    trainable: bool = True
    regularizer: Regularizer | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def init(name: InitializerName, **options) -> Initializer:
    """A default initializer for a field (``init("zeros")``)."""
    return Initializer(type=name, **options)


MaskRule = Literal["create", "pass", "consume", "combine", "refuse"]
"""How a layer type treats the mask of a sequence (which steps are padding), one rule per type
(``docs/semantics.md``, "Masks"):

- ``create``: the layer marks padded steps itself (embedding with ``mask_zero``, masking); an
  incoming mask is replaced;
- ``pass``: the layer acts on each step alone, so its output carries its input's mask unchanged;
- ``consume``: the layer honours the mask of one input (``mask_input``: recurrent layers skip
  padded steps, global 1-D pooling ignores them, attention ignores padded keys); its output
  keeps its first input's mask only when it keeps the step axis (``keeps_steps``);
- ``combine``: a merge; a step of the output is valid when it is valid in every masked input;
- ``refuse``: the layer cannot honour a mask; a masked input is a located validation error."""


class LayerBase(StrictModel):
    """Fields every layer has, and the facts about a layer type that the graph, the
    initializers and the resource estimate ask for (so no other module lists layer
    types). Not a layer type itself."""

    # "/" separates the names of block copies from a layer's own (``encoder_2/attention``).
    id: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
    inputs: list[str] | None = Field(None, min_length=1)

    # How many inputs the layer takes: (minimum, maximum or None for any).
    arity: ClassVar[tuple[int, int | None]] = (1, 1)

    activation_after: ClassVar[bool] = False
    """The layer's ``activation`` field is applied as a separate step after its own
    computation, so the pre-activation tensor ``"{id}:pre"`` exists (dense, conv2d)."""

    activation_only: ClassVar[bool] = False
    """The layer is nothing but its ``activation`` (its own computation is the identity),
    so its input is its pre-activation (the activation layer)."""

    integer_input: ClassVar[bool] = False
    """The layer reads integer ids, and only it may: integer model inputs feed these
    layers and nothing else (embedding)."""

    removes_channel_offsets: ClassVar[bool] = False
    """The layer subtracts a per-channel mean over the batch, so a constant per-channel
    offset in its input (a bias just before it) has no effect (batch_norm)."""

    mask_rule: ClassVar[MaskRule] = "refuse"
    """How the layer treats a mask on its input (see ``MaskRule``); layers refuse one unless
    their type says otherwise."""

    def creates_mask(self) -> bool:
        """The layer marks padded steps (rule ``create``): masking always, embedding with ``mask_zero``."""
        return False

    def keeps_steps(self) -> bool:
        """A ``consume`` layer's output still has its first input's step axis (``return_sequences``,
        attention's query), so it carries that input's mask on."""
        return False

    def mask_input(self, input_count: int) -> int:
        """Which input's mask a ``consume`` layer honours (the first; attention: the key's)."""
        return 0

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def parameters(self, input_shapes: list[Shape]) -> list[ParamSpec]:
        return []

    def initial_constants(self, param_name: str) -> tuple[tuple[slice, float], ...]:
        """Parts of parameter ``param_name`` (slices of its first axis) that start at a
        constant whatever its initializer says; none unless a layer type says otherwise."""
        return ()

    def step_state_size(self) -> int:
        """Values per sample and time step a recurrent layer keeps for the backward pass
        (gates and states; 0 for layers that do not recur)."""
        return 0

    def internal_elements(self, input_shapes: list[Shape]) -> int:
        """Values per sample the layer keeps for the backward pass besides its output: a
        recurrent layer's per-step state (``step_state_size``), attention's projections and
        weights; 0 for most layers."""
        per_step = self.step_state_size()
        return input_shapes[0][0] * per_step if per_step else 0


def need_rank(layer: str, shape: Shape, rank: int, what: str) -> None:
    """Refuse an input of the wrong rank, naming what ``layer`` expects."""
    if len(shape) != rank:
        raise LayerShapeError(f"{layer} expects {what} (rank {rank} per sample), received shape {list(shape)}")
