"""The JAX model of a graph (``GraphModule``, a ``flax.nnx.Module``) and the CompiledModel around it.

Every computation of a float64 model runs inside ``jax.enable_x64(True)`` (``JaxModel.precision``):
JAX's 64-bit mode is a thread-local context here, never the process-wide flag, so a user's own
JAX code keeps its float32 defaults.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from archspec.errors import BackendUnavailableError, UsageError
from archspec.graph import ModelGraph
from archspec.layout import Slot, to_canonical, to_native
from archspec.model import CompiledModel, Inputs

from . import layout
from .activations import activation
from .context import BuildContext
from .core import Embedding, Masking
from .distributed import axis_name
from .layers import STEP_READERS, build_layer

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


def resolve_device(device: str) -> jax.Device:
    """``auto`` (JAX's default device: a GPU when JAX sees one, else the CPU), ``cpu`` or ``cuda``.

    This process's own device (``jax.local_devices``): with workers (``jax.distributed``),
    ``jax.devices()`` lists every process's devices, and the first is worker 0's.
    """
    if device == "auto":
        return jax.local_devices()[0]
    if device == "cpu":
        return jax.local_devices(backend="cpu")[0]
    if device == "cuda":
        try:
            return jax.local_devices(backend="gpu")[0]
        except RuntimeError:
            raise BackendUnavailableError(
                "expected a CUDA GPU for device 'cuda', received none: JAX sees no GPU "
                "(jax.devices('gpu') fails); use device 'auto' or 'cpu', or install jax[cuda12]"
            ) from None
    raise UsageError(f"expected device 'auto', 'cpu' or 'cuda', received {device!r}")


@contextmanager
def precision(dtype: str) -> Iterator[None]:
    """The context every computation of a ``dtype`` model runs in: JAX's 64-bit mode for float64,
    and full-precision float32 matmuls and convolutions (JAX may use TF32 on a GPU by default,
    which float32 parity cannot afford; the CPU computes the same either way)."""
    with jax.enable_x64(dtype == "float64"), jax.default_matmul_precision("highest"):
        yield


@dataclass(frozen=True)
class _PlannedNode:
    """One node as the GraphModule runs it, in graph order."""

    output: str  # the node id: its key in ``layers``
    inputs: tuple[str, ...]
    activation: str | None
    takes_step: bool  # dropout (of a dropout layer or of attention weights) reads the optimizer step
    takes_mask: bool  # a layer that honours a mask reads a masked input
    mask_input: int  # which input's mask it reads
    mask_source: str | None  # how its output's mask is computed (Node.mask_source)
    step_counts: tuple[int, ...]  # its inputs' step counts (a concatenation along the steps)


class DropoutStep(nnx.Variable):
    """The optimizer step whose dropout masks a training-mode call draws (uint32, 0-d)."""


class GraphModule(nnx.Module):
    """Runs a graph's nodes in order; every layer is a module in ``layers`` keyed by node id.

    ``__call__(*inputs)`` takes the model inputs in spec order (channels-last) and returns the
    output array, or a tuple in ``outputs`` order. ``tensors`` returns any named arrays, including
    pre-activations ``"{id}:pre"``. Mode is nnx's: ``train()`` / ``eval()`` (the default). A
    training-mode ``__call__`` (a user's own loop, under ``nnx.jit`` or not) draws the dropout
    masks of ``step`` and then advances it, so every batch gets fresh masks; archspec's engine
    passes the step itself to ``tensors``.
    """

    def __init__(self, graph: ModelGraph, context: BuildContext):
        self.input_names = tuple(graph.spec.inputs)
        self.output_names = tuple(graph.outputs)
        self.layers = nnx.data({node.id: build_layer(node, context) for node in graph.nodes})
        self.plan = tuple(
            _PlannedNode(
                node.id,
                tuple(node.inputs),
                node.activation,
                isinstance(self.layers[node.id], STEP_READERS),
                node.layer.mask_rule == "consume" and node.input_masked[node.mask_input],
                node.mask_input,
                node.mask_source,
                tuple(shape[0] if shape else 0 for shape in node.input_shapes),
            )
            for node in graph.nodes
        )
        self.has_dropout = any(node.takes_step for node in self.plan)
        self.step = DropoutStep(jnp.zeros((), dtype=jnp.uint32))
        self.deterministic = True

    def tensors(
        self,
        inputs: Mapping[str, jax.Array],
        names: Sequence[str],
        *,
        step: jax.Array | int | None = None,
        offset: jax.Array | int = 0,
    ) -> dict[str, jax.Array]:
        """The arrays named ``names`` (node ids, ``"{id}:pre"`` or input names) for ``inputs``;
        dropout draws the masks of ``step`` (default: the module's own ``step``) for samples at
        global batch positions ``offset``, ``offset + 1``, ..."""
        values = dict(inputs)
        masks: dict[str, jax.Array] = {}  # masked tensor -> (batch, steps) bool, True at valid steps
        if step is None:
            step = self.step[...]
        for node in self.plan:
            arguments = [values[name] for name in node.inputs]
            module = self.layers[node.output]
            # A layer that honours a mask gets the one it reads (a recurrent layer its input's,
            # attention its key's), as a keyword.
            keywords: dict[str, Any] = {}
            if node.takes_mask:
                keywords["mask"] = masks[node.inputs[node.mask_input]]
            if node.takes_step:
                keywords.update(step=step, offset=offset)
            result = module(*arguments, **keywords)
            if node.mask_source is not None:
                masks[node.output] = _output_mask(node, module, arguments, masks)
            if node.activation is not None:
                values[f"{node.output}:pre"] = result
                result = activation(node.activation)(result)
            values[node.output] = result
        return {name: values[name] for name in names}

    def __call__(self, *inputs: jax.Array) -> jax.Array | tuple[jax.Array, ...]:
        if len(inputs) != len(self.input_names):
            raise UsageError(
                f"expected {len(self.input_names)} input array(s) {list(self.input_names)}, received {len(inputs)}"
            )
        values = self.tensors(dict(zip(self.input_names, inputs)), self.output_names)
        if not self.deterministic and self.has_dropout:
            self.step[...] = self.step[...] + jnp.uint32(1)  # the next training call gets fresh masks
        outputs = tuple(values[name] for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs


def _output_mask(
    node: _PlannedNode, module: nnx.Module, arguments: list[jax.Array], masks: Mapping[str, jax.Array]
) -> jax.Array:
    """The mask of a masked node's output, as ``Node.mask_source`` says (docs/semantics.md, "Masks")."""
    if node.mask_source == "create":
        if not isinstance(module, (Embedding, Masking)):
            raise TypeError(f"layer '{node.output}' creates a mask, but its module {type(module).__name__} cannot")
        return module.make_mask(arguments[0])
    if node.mask_source == "input":
        return masks[node.inputs[0]]
    if node.mask_source == "steps":
        batch = arguments[0].shape[0]
        parts = [
            masks[name] if name in masks else jnp.ones((batch, count), dtype=bool)
            for name, count in zip(node.inputs, node.step_counts)
        ]
        return jnp.concatenate(parts, axis=1)
    present = [masks[name] for name in node.inputs if name in masks]
    combined = present[0]
    for other in present[1:]:
        combined = combined & other
    return combined


def apply(
    graphdef: nnx.GraphDef,
    states: tuple[nnx.State, ...],
    inputs: Mapping[str, jax.Array],
    names: tuple[str, ...],
    *,
    training: bool,
    step: jax.Array | int = 0,
    offset: jax.Array | int = 0,
) -> tuple[dict[str, jax.Array], nnx.State]:
    """The pure form of a model call, for ``jax.jit`` and ``jax.grad``: the arrays ``names`` of the
    model ``nnx.merge(graphdef, *states)`` in training or inference mode, and its batch-norm
    statistics after the call (updated in training mode)."""
    # copy: fresh variables of the current trace, so batch norm may update its statistics
    # inside jax.grad (variables merged from states of an outer trace refuse mutation).
    module = nnx.merge(graphdef, *states, copy=True)
    if training:
        module.train()
    values = module.tensors(inputs, names, step=step, offset=offset)
    return values, nnx.state(module, nnx.BatchStat)


# Jitted once for all models: the graph definition is a static argument, so two models of one
# spec (equal graph definitions) share their compiled programs.
@partial(jax.jit, static_argnames=("graphdef", "names", "training"))
def _run(graphdef, states, inputs, names, training, step, offset):
    return apply(graphdef, states, inputs, names, training=training, step=step, offset=offset)


@partial(jax.jit, static_argnames=("graphdef", "training"))
def _gradients(graphdef, params, others, float_inputs, other_inputs, cotangents, training, step):
    def total(params, float_inputs):
        names = tuple(cotangents)
        values, stats = apply(
            graphdef, (params, *others), {**float_inputs, **other_inputs}, names, training=training, step=step
        )
        return sum(jnp.sum(values[key] * cotangents[key]) for key in names), stats

    (param_grads, input_grads), stats = jax.grad(total, argnums=(0, 1), has_aux=True)(params, float_inputs)
    return param_grads, input_grads, stats


def variable_at(module: nnx.Module, path: str) -> nnx.Variable:
    """The variable at attribute ``path`` (``"forward.kernel"``) of a layer module."""
    owner: Any = module
    for name in path.split("."):
        owner = getattr(owner, name)
    return owner


class JaxModel(CompiledModel):
    """A spec built with JAX; ``native`` is a ``GraphModule`` (a ``flax.nnx.Module``)."""

    backend = "jax"

    def __init__(self, graph: ModelGraph, dtype: str, device: str = "auto", axis_name: str | None = None):
        super().__init__(graph, dtype)
        if dtype not in DTYPES:
            raise UsageError(f"expected dtype float32 or float64, received {dtype!r}")
        self.jax_dtype = DTYPES[dtype]
        self.device = resolve_device(device)
        seed = graph.spec.training.seed if graph.spec.training else 0
        with self.precision(), jax.default_device(self.device):
            self._module = GraphModule(graph, BuildContext(self.jax_dtype, seed, axis_name))
        self.graphdef = nnx.graphdef(self._module)
        self.slots = {slot.canonical: slot for node in graph.nodes for slot in layout.node_slots(node)}

    @property
    def native(self) -> GraphModule:
        return self._module

    def precision(self) -> AbstractContextManager[Any]:
        """The context every computation of this model runs in (JAX's 64-bit mode for float64,
        full-precision matmuls: :func:`precision`)."""
        return precision(self.dtype)

    # --- state ---------------------------------------------------------------------

    def states(self) -> tuple[nnx.State, nnx.State, nnx.State]:
        """(trainable parameters, batch statistics, the rest): the module's state for ``apply``."""
        params = nnx.state(self._module, nnx.Param)
        stats = nnx.state(self._module, nnx.BatchStat)
        rest = nnx.state(self._module, nnx.Not(nnx.Any(nnx.Param, nnx.BatchStat)))
        return params, stats, rest

    def update(self, *states: nnx.State) -> None:
        """Write states (new parameters, statistics) back into the module."""
        nnx.update(self._module, *states)

    def variable(self, slot: Slot, module: GraphModule | None = None) -> nnx.Variable:
        """The variable holding ``slot`` in ``module`` (default: this model's)."""
        return variable_at((module or self._module).layers[slot.node], slot.path)

    # --- weights ------------------------------------------------------------------

    def get_weights(self) -> dict[str, np.ndarray]:
        weights = {}
        for slot in self.slots.values():
            weights.update(to_canonical([slot], np.array(self.variable(slot)[...], copy=True)))
        return weights

    def _assign_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        with self.precision():
            for slot in self.slots.values():
                value = np.asarray(to_native([slot], weights), dtype=self.dtype)
                self.variable(slot).set_value(jax.device_put(value, self.device))

    def native_param_count(self) -> int:
        variables = jax.tree_util.tree_leaves(nnx.state(self._module, nnx.Param, nnx.BatchStat))
        return sum(int(np.prod(leaf.shape)) for leaf in variables)

    def trainable_slots(self) -> list[Slot]:
        """Every trainable parameter's slot, in canonical order."""
        return [slot for slot in self.slots.values() if slot.trainable]

    # --- running ------------------------------------------------------------------

    def input_arrays(self, arrays: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """Checked numpy inputs (from ``_as_input_dict``) as arrays on the model's device (ids as int32)."""
        return {
            name: jax.device_put(array.astype(np.int32) if array.dtype.kind in "iu" else array, self.device)
            for name, array in arrays.items()
        }

    def tensor_names(self) -> list[str]:
        """Names ``forward`` reports and ``gradients`` accepts: the outputs, then every head's logits tensor."""
        return list(dict.fromkeys([*self.graph.outputs, *(head.logits for head in self.graph.heads)]))

    def predict(self, inputs: Inputs, batch_size: int = 1024) -> np.ndarray | dict[str, np.ndarray]:
        results = self._inference(self._as_input_dict(inputs), tuple(self.graph.outputs), batch_size)
        return results[self.graph.outputs[0]] if len(results) == 1 else results

    def forward_tensors(self, inputs: Inputs, batch_size: int = 2048) -> dict[str, np.ndarray]:
        """Inference-mode outputs by output id and every head's logits by tensor name, in batches."""
        return self._inference(self._as_input_dict(inputs), tuple(self.tensor_names()), batch_size)

    def _inference(
        self, arrays: dict[str, np.ndarray], names: tuple[str, ...], batch_size: int
    ) -> dict[str, np.ndarray]:
        """The arrays ``names`` in inference mode, run in batches of ``batch_size``; a shorter last
        batch is padded with zeros (inference is per sample), so one program serves every batch."""
        if batch_size < 1:
            raise UsageError(f"expected a positive batch_size, received {batch_size}")
        count = len(next(iter(arrays.values())))
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
        with self.precision():
            states = self.states()
            for start in range(0, count, batch_size):
                batch = {name: array[start : start + batch_size] for name, array in arrays.items()}
                size = len(next(iter(batch.values())))
                if count > batch_size and size < batch_size:
                    batch = {name: _pad(array, batch_size) for name, array in batch.items()}
                values, _ = _run(self.graphdef, states, self.input_arrays(batch), names, False, 0, 0)
                for name, value in values.items():
                    chunks[name].append(np.asarray(value)[:size])
        return {
            name: np.concatenate(parts)
            if parts
            else np.zeros((0, *self.graph.output_shape(name.removesuffix(":pre"))), self.dtype)
            for name, parts in chunks.items()
        }

    def forward(self, inputs: Inputs, *, training: bool = False, step: int = 0) -> dict[str, np.ndarray]:
        """Outputs by id, plus every head's logits under their tensor name (``head.logits``).

        Training mode uses the dropout masks of ``step`` and updates batch-norm statistics.
        """
        arrays = self._as_input_dict(inputs)
        with self.precision():
            values, stats = _run(
                self.graphdef, self.states(), self.input_arrays(arrays), tuple(self.tensor_names()), training, step, 0
            )
            if training:
                self.update(stats)
            return {name: np.array(value) for name, value in values.items()}

    def gradients(
        self, inputs: Inputs, cotangents: Mapping[str, np.ndarray], *, training: bool = False, step: int = 0
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Gradients of ``sum_k sum(tensor_k * cotangents[k])``; k: an output id, the head's logits
        tensor name, or any other node id or ``"{id}:pre"``.

        Returns (canonical trainable parameter name -> gradient, float input name -> gradient).
        With ``training=True`` batch norm uses (and updates) batch statistics, as in ``forward``.
        """
        arrays = self._as_input_dict(inputs)
        known = {node.id for node in self.graph.nodes} | {f"{n.id}:pre" for n in self.graph.nodes if n.activation}
        unknown = [key for key in cotangents if key not in known]
        if unknown or not cotangents:
            raise UsageError(
                f"expected cotangents for output ids or the logits tensor {self.tensor_names()} "
                f"(or any node id / '{{id}}:pre'), received {list(cotangents)}"
            )
        float_names = [name for name in arrays if self.spec.inputs[name].dtype == "float"]
        with self.precision():
            device_arrays = self.input_arrays(arrays)
            params, stats, rest = self.states()
            param_grads, input_grads, new_stats = _gradients(
                self.graphdef,
                params,
                (stats, rest),
                {name: device_arrays[name] for name in float_names},
                {name: value for name, value in device_arrays.items() if name not in float_names},
                {key: jnp.asarray(np.asarray(value), dtype=self.jax_dtype) for key, value in cotangents.items()},
                training,
                step,
            )
            if training:
                self.update(new_stats)
            holder = nnx.merge(self.graphdef, param_grads, stats, rest)
        grads = {}
        for slot in self.trainable_slots():
            grads.update(to_canonical([slot], np.array(self.variable(slot, holder)[...])))
        return grads, {name: np.array(input_grads[name]) for name in float_names}


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` with rows of zeros appended up to ``size`` rows (inference is per sample)."""
    return np.concatenate([array, np.zeros((size - len(array), *array.shape[1:]), dtype=array.dtype)])


def build(
    graph: ModelGraph, weights: Mapping[str, np.ndarray], dtype: str = "float32", device: str = "auto"
) -> JaxModel:
    """Build ``graph`` as a JAX model holding ``weights`` (canonical layout).

    Built by a worker (after ``distributed.join``), its batch norm sums its statistics over the
    workers' axis when the engine's step runs it on the workers' mesh.
    """
    model = JaxModel(graph, dtype, device, axis_name())
    model.set_weights(weights)
    return model
