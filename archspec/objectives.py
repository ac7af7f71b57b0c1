"""What a training step minimises, output by output: each head's loss, its weight and metrics.

One output: its loss, weight 1, the history keys unprefixed (``loss``, ``validation_accuracy``).
Several outputs (as in Keras): the step loss is ``sum_o weight_o * loss_o`` plus the penalties
once, and each output's loss and metrics are reported under its name (``digit_loss``,
``validation_digit_accuracy``). ``docs/semantics.md``, "Several outputs", is the definition.
"""

from __future__ import annotations

from dataclasses import dataclass

from archspec.graph import Head, ModelGraph
from archspec.spec.training import Training


@dataclass(frozen=True)
class Objective:
    """One output's part of the step loss: its head, loss, weight and metrics.

    ``prefix``: what this output's history keys start with (``""`` for the only output,
    ``"{output}_"`` with several).
    """

    head: Head
    loss: str
    weight: float
    metrics: tuple[str, ...]
    prefix: str

    @property
    def output(self) -> str:
        return self.head.output


def objectives(graph: ModelGraph, training: Training) -> tuple[Objective, ...]:
    """Every output's objective, in the order of the spec's ``outputs``."""
    several = len(graph.heads) > 1
    return tuple(
        Objective(
            head,
            training.loss_of(head.output),
            training.loss_weight_of(head.output),
            tuple(training.metrics_of(head.output)),
            f"{head.output}_" if several else "",
        )
        for head in graph.heads
    )


def output_keys(graph: ModelGraph, training: Training) -> list[tuple[str, list[str]]]:
    """``(prefix, metrics)`` per output, as ``archspec.definitions.controls.history_keys`` reads them."""
    return [(objective.prefix, list(objective.metrics)) for objective in objectives(graph, training)]
