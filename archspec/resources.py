"""How much memory a training run needs, estimated from the graph before anything is allocated.

The estimate is deliberately simple and on the generous side: parameters, their gradients
and optimizer slots; every node's output (and pre-activation) for one batch, twice over for
the backward pass; recurrent layers' per-step gates; the training set held on the device.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from archspec.definitions.optimizers import state_slots
from archspec.errors import ResourceError, UsageError
from archspec.graph import ModelGraph

BYTES = {"float32": 4, "float64": 8, "int32": 4, "int64": 8}
EVALUATION_BATCH = 2048  # the batch size of ``archspec.training.evaluation.evaluate``
MEMORY_CAP_VARIABLE = "ARCHSPEC_MEMORY_CAP"
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training run needs, by part. ``activation_bytes`` is for one training batch
    (forward and backward); ``evaluation_bytes`` for one inference batch of up to 2048, where
    only the widest layer's tensors are alive at once."""

    dtype: str
    batch_size: int
    parameter_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    evaluation_bytes: int
    data_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        working = max(self.activation_bytes, self.evaluation_bytes)
        return self.parameter_bytes + self.gradient_bytes + self.optimizer_bytes + working + self.data_bytes

    def describe(self) -> str:
        """One line: the total and its parts."""
        parts = [
            f"parameters {format_bytes(self.parameter_bytes)}",
            f"gradients {format_bytes(self.gradient_bytes)}",
            f"optimizer state {format_bytes(self.optimizer_bytes)}",
            f"activations {format_bytes(self.activation_bytes)} per batch of {self.batch_size}",
        ]
        if self.evaluation_bytes > self.activation_bytes:
            parts.append(f"evaluation {format_bytes(self.evaluation_bytes)} per batch of {EVALUATION_BATCH}")
        if self.data_bytes:
            parts.append(f"training data {format_bytes(self.data_bytes)}")
        return f"about {format_bytes(self.total_bytes)} in {self.dtype} ({', '.join(parts)})"


def format_bytes(count: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def parse_size(text: str | int, name: str = MEMORY_CAP_VARIABLE) -> int:
    """Bytes from an integer or a size such as ``"512MiB"``, ``"2 GB"``, ``"1.5GiB"``."""
    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
        if not match or match.group(2).lower() not in _UNITS:
            raise UsageError(f"expected {name} as bytes or a size like 512MiB or 2GB, received {text!r}")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size < 1:
        raise UsageError(f"expected {name} to be a positive size, received {text!r}")
    return size


def _activation_elements(graph: ModelGraph) -> int:
    """Elements of every tensor one sample keeps for the backward pass."""
    total = 0
    for node in graph.nodes:
        size = math.prod(node.output_shape)
        total += size * (2 if node.activation not in (None, "linear") else 1)
        total += node.layer.internal_elements(list(node.input_shapes))  # gates and states, attention weights
    return total


def _widest_node(graph: ModelGraph) -> int:
    """Elements per sample of the largest layer's inputs and outputs: inference frees the rest."""
    widths = [
        sum(math.prod(shape) for shape in node.input_shapes) + 2 * math.prod(node.output_shape) for node in graph.nodes
    ]
    return max(widths, default=0)


def estimate_memory(
    graph: ModelGraph, *, dtype: str, batch_size: int, optimizer_slots: int, data_samples: int = 0
) -> MemoryEstimate:
    """Estimate a training run of ``graph`` in ``dtype`` with batches of ``batch_size``.

    ``optimizer_slots``: state tensors the optimizer keeps per trainable parameter (Adam 2);
    ``data_samples``: training samples held on the device (0: not counted).
    """
    width = BYTES[dtype]
    trainable = graph.trainable_param_count
    per_sample = _activation_elements(graph) + sum(math.prod(shape.shape) for shape in graph.spec.inputs.values())
    input_bytes = sum(
        math.prod(model_input.shape) * (width if model_input.dtype == "float" else BYTES[model_input.dtype])
        for model_input in graph.spec.inputs.values()
    )
    training = graph.spec.training
    target_bytes = 0  # every output's targets: int64 labels for sparse cross-entropy, else one value per unit
    for output in graph.outputs:
        loss = training.loss_of(output) if training is not None and training.names_loss(output) else None
        sparse = loss == "sparse_categorical_crossentropy"
        target_bytes += BYTES["int64"] if sparse else math.prod(graph.output_shape(output)) * width
    return MemoryEstimate(
        dtype=dtype,
        batch_size=batch_size,
        parameter_bytes=graph.param_count * width,
        gradient_bytes=trainable * width,
        optimizer_bytes=trainable * optimizer_slots * width,
        activation_bytes=2 * per_sample * batch_size * width,
        evaluation_bytes=_widest_node(graph) * min(EVALUATION_BATCH, max(data_samples, batch_size)) * width,
        data_bytes=data_samples * (input_bytes + target_bytes),
    )


def estimate_for_training(
    graph: ModelGraph, training, *, dtype: str | None = None, data_samples: int = 0
) -> MemoryEstimate:
    """``estimate_memory`` with the batch size, optimizer and dtype of a spec's training section."""
    options = {
        "lr": training.optimizer.learning_rate,
        **training.optimizer.model_dump(exclude={"type", "learning_rate"}),
    }
    slots = len(state_slots(training.optimizer.type, options))
    return estimate_memory(
        graph,
        dtype=dtype or training.dtype,
        batch_size=training.batch_size,
        optimizer_slots=slots,
        data_samples=data_samples,
    )


def available_memory(meminfo: str | os.PathLike = "/proc/meminfo") -> int | None:
    """MemAvailable in bytes, or None where the system does not report it."""
    try:
        text = Path(meminfo).read_text()
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def memory_limit(cap: str | int | None = None) -> tuple[int | None, str]:
    """The limit a run must fit in and where it comes from: ``cap``, else $ARCHSPEC_MEMORY_CAP,
    else the memory available now; (None, ...) when none is known."""
    if cap is not None:
        return parse_size(cap, "memory_cap"), "memory_cap"
    if os.environ.get(MEMORY_CAP_VARIABLE):
        return parse_size(os.environ[MEMORY_CAP_VARIABLE]), f"${MEMORY_CAP_VARIABLE}"
    return available_memory(), "available memory (MemAvailable)"


def check_memory(estimate: MemoryEstimate, cap: str | int | None = None) -> None:
    """Refuse a run whose estimate exceeds the limit, showing the estimate."""
    limit, source = memory_limit(cap)
    if limit is not None and estimate.total_bytes > limit:
        raise ResourceError(
            f"this run needs {estimate.describe()}, more than the {format_bytes(limit)} of {source}; "
            f"use a smaller batch_size or model, float32, or raise the cap"
        )
