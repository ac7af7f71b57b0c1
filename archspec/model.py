"""The compiled model every backend returns: one surface over a native model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from archspec.errors import DataError, UsageError
from archspec.graph import ModelGraph
from archspec.spec.layers import Embedding
from archspec.weights import check_weights, save_weights

Inputs = np.ndarray | Mapping[str, np.ndarray]


class CompiledModel(ABC):
    """A spec built by one backend.

    ``native`` is the framework's own model (``torch.nn.Module`` or
    ``keras.Model``). Weights cross this surface only in the canonical layout
    (``docs/layout.md``), as a dict from canonical name to numpy array.
    """

    backend: str

    def __init__(self, graph: ModelGraph, dtype: str):
        self.graph = graph
        self.spec = graph.spec
        self.dtype = dtype

    @property
    @abstractmethod
    def native(self) -> Any:
        """The framework's own model object."""

    @abstractmethod
    def predict(self, inputs: Inputs, batch_size: int = 1024) -> np.ndarray | dict[str, np.ndarray]:
        """Inference-mode outputs as numpy: one array, or a dict when the spec has several outputs."""

    @abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        """Every parameter (trainable or not) by canonical name, canonical layout."""

    @abstractmethod
    def _assign_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Copy already-checked canonical weights into the native model."""

    @abstractmethod
    def forward(self, inputs: Inputs, *, training: bool = False, step: int = 0) -> dict[str, np.ndarray]:
        """Outputs by output id, plus every head's logits under their tensor name
        (``head.logits``, e.g. ``"dense_2:pre"``, never a layer id unless the
        output itself is the logits); in training mode dropout uses the masks of ``step``
        and batch norm updates its statistics."""

    @abstractmethod
    def gradients(self, inputs: Inputs, cotangents: Mapping[str, np.ndarray], *, training: bool = False, step: int = 0):
        """Gradients of ``sum_k sum(tensor_k * cotangents[k])`` where ``k`` is an output id or the
        head's logits tensor name: (by canonical parameter name, by float input name)."""

    @abstractmethod
    def native_param_count(self) -> int:
        """Parameter count as the framework itself reports it."""

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Replace every parameter; names and shapes must match this model exactly."""
        expected = {name: p.shape for name, p in self.graph.parameters.items()}
        check_weights(expected, dict(weights), "set_weights")
        self._assign_weights({name: np.asarray(value) for name, value in weights.items()})

    def forward_batches(self, inputs: Inputs, batch_size: int = 2048) -> dict[str, np.ndarray]:
        """Inference-mode ``{"output": ..., "logits": ...}`` of the (first) output, in batches."""
        tensors = self.forward_tensors(inputs, batch_size)
        output_id = self.graph.outputs[0]
        logits_name = self.graph.heads[0].logits if self.graph.heads else output_id
        return {"output": tensors[output_id], "logits": tensors[logits_name]}

    def forward_tensors(self, inputs: Inputs, batch_size: int = 2048) -> dict[str, np.ndarray]:
        """Inference-mode outputs by output id and every head's logits by tensor name, in batches."""
        arrays = self._as_input_dict(inputs)
        total = len(next(iter(arrays.values())))
        names = list(dict.fromkeys([*self.graph.outputs, *(head.logits for head in self.graph.heads)]))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for start in range(0, total, batch_size):
            batch = {name: array[start : start + batch_size] for name, array in arrays.items()}
            result = self.forward(batch, training=False)
            for name in names:
                parts[name].append(result[name])
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}

    @property
    def param_count(self) -> int:
        return self.graph.param_count

    def save_weights(self, path) -> None:
        """Write the weights as safetensors (canonical layout, spec hash in the metadata)."""
        save_weights(self.get_weights(), path, self.spec, self.backend)

    def _as_input_dict(self, inputs: Inputs) -> dict[str, np.ndarray]:
        names = list(self.spec.inputs)
        if not isinstance(inputs, Mapping):
            if len(names) != 1:
                raise UsageError(f"expected a dict of arrays for this model's inputs {names}, received one array")
            inputs = {names[0]: inputs}
        missing = [n for n in names if n not in inputs]
        if missing:
            raise UsageError(f"expected the model inputs {names}, received {list(inputs)}: '{missing[0]}' is missing")
        arrays = {}
        for name in names:
            array = np.asarray(inputs[name])
            expected = tuple(self.spec.inputs[name].shape)
            if array.shape[1:] != expected:
                raise UsageError(
                    f"input '{name}' expects arrays of shape [batch, {', '.join(map(str, expected))}], "
                    f"received {list(array.shape)}"
                )
            kind = self.spec.inputs[name].dtype
            if kind != "float":
                self._check_ids(name, array)
            arrays[name] = array.astype(self.dtype if kind == "float" else kind, copy=False)
        return arrays

    def _check_ids(self, name: str, ids: np.ndarray) -> None:
        """Integer inputs feed embeddings: every id must be a whole number inside each table."""
        if ids.dtype.kind not in "iu":
            raise DataError(f"input '{name}' expects integer ids, received an array of {ids.dtype}")
        for node in self.graph.nodes:
            if isinstance(node.layer, Embedding) and name in node.inputs and ids.size:
                low, high = int(ids.min()), int(ids.max())
                input_dim = node.layer.input_dim
                if low < 0 or high >= input_dim:
                    raise DataError(
                        f"input '{name}' feeds embedding '{node.id}' with input_dim {input_dim}: "
                        f"expected ids in [0, {input_dim - 1}], received ids from {low} to {high}"
                    )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.name!r} backend={self.backend} dtype={self.dtype} params={self.param_count}>"
