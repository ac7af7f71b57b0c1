"""What every reference layer shares: its context (dropout counters, input masks), its
output, and how a node's output mask follows from its inputs' masks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from archspec.reference.activations import activation

Params = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class LayerContext:
    """Counters of the neutral dropout stream: the spec's training seed, the
    layer's index in the spec (``node.index``) and the 0-based optimizer step;
    and the masks of the layer's inputs (``(batch, steps)`` booleans, True at valid
    steps; None for an input without one), which a ``consume`` layer honours."""

    seed: int = 0
    layer_index: int = 0
    step: int = 0
    masks: tuple[np.ndarray | None, ...] = ()

    @property
    def mask(self) -> np.ndarray | None:
        """The first input's mask (the one a recurrent layer reads), or None."""
        return self.masks[0] if self.masks else None


@dataclass(frozen=True)
class LayerOutput:
    """What a layer computes.

    ``pre_activation`` is set for layers with an ``activation`` applied after their
    own computation (``output = activation(pre_activation)``). ``state`` holds new
    values of non-trainable parameters by local name (batch-norm moving statistics
    in training mode). ``mask`` is the mask a ``create`` layer made (True at valid steps).
    """

    output: np.ndarray
    pre_activation: np.ndarray | None = None
    state: dict[str, np.ndarray] = field(default_factory=dict)
    mask: np.ndarray | None = None


LayerFunction = Callable[[object, Params, list, bool, LayerContext], LayerOutput]


def activated(name: str, pre: np.ndarray) -> LayerOutput:
    """The output of a layer whose ``activation`` follows its own computation ``pre``."""
    return LayerOutput(activation(name, pre), pre)


def output_mask(node, masks: list[np.ndarray | None], created: np.ndarray | None) -> np.ndarray | None:
    """The mask of ``node``'s output (``(batch, steps)``, True at valid steps) from its inputs'
    masks and the one its layer made, as ``node.mask_source`` says."""
    source = node.mask_source
    if source is None:
        return None
    if source == "create":
        return created
    if source == "input":
        return masks[0]
    if source == "steps":
        batch = next(m for m in masks if m is not None).shape[0]
        whole = [np.ones((batch, shape[0]), bool) if m is None else m for m, shape in zip(masks, node.input_shapes)]
        return np.concatenate(whole, axis=1)
    return np.logical_and.reduce([m for m in masks if m is not None])
