"""The backend contract: what a backend package under ``backends/<name>/`` provides to the core.

Each protocol below is one module or class a backend supplies; ``tests/backends/test_contract.py``
checks every registered backend (``archspec.backend.REGISTRY``) against them, member by member,
signature by signature. ``docs/architecture.md`` says how to add a backend. Imports no framework:
arrays cross the contract as numpy arrays in the canonical layout (``docs/layout.md``); framework
objects (tensors, native models) stay inside the backend, except where a member says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # annotations only: the contract imports nothing it does not need to run
    from archspec.graph import ModelGraph, Node
    from archspec.layout import Slot
    from archspec.model import Inputs
    from archspec.spec.training import Training
    from archspec.training.cluster import Cluster

__all__ = ["MODULES", "Backend", "CompiledModel", "Distributed", "Engine", "Environment", "Export", "Layers", "Layout"]

# The modules of every backend folder, the same names in each (a reader who knows one finds
# their way in the others); the protocols below say what the contract needs from some of them.
MODULES = (
    "model",
    "layers",
    "layout",
    "engine",
    "optimizers",
    "distributed",
    "environment",
    "activations",
    "random",
    "export",
)


class CompiledModel(Protocol):
    """A spec built by one backend: ``build``'s result, a subclass of ``archspec.model.CompiledModel``.

    The base class supplies ``set_weights`` (checks names and shapes, then ``_assign_weights``),
    ``save_weights``, ``forward_batches``, ``forward_tensors``, ``param_count`` and input checking
    (``_as_input_dict``); a backend implements the rest. ``graph``, ``spec`` and ``dtype``
    (``"float32"`` or ``"float64"``) are set by the base class's constructor.
    """

    backend: str  # the registry name, as a class attribute: "torch"

    @property
    def native(self) -> Any:
        """The framework's own model object (``torch.nn.Module``, ``keras.Model``, ...), holding the weights.

        Takes the spec's inputs channels-last, in spec order, and returns the outputs.
        """

    def predict(self, inputs: Inputs, batch_size: int = 1024) -> np.ndarray | dict[str, np.ndarray]:
        """Inference-mode outputs as numpy arrays of the model's dtype.

        ``inputs``: one array ``(batch, *input shape)`` for a one-input spec, else a dict by input
        name; float inputs are cast to the model's dtype, integer inputs (embedding ids) are
        checked against the tables (``DataError``). Runs in batches of ``batch_size`` (a positive
        int, else ``UsageError``). Returns one array ``(batch, *output shape)``, or a dict by
        output id when the spec has several outputs. No side effects on weights or statistics.
        """

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every parameter, trainable or not, by canonical name in graph order, canonical layout.

        The arrays are copies of the model's dtype that never share memory with the native model.
        """

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Replace every parameter with canonical ``weights``.

        Names and shapes must match ``graph.parameters`` exactly (``CheckpointError`` naming the
        first mismatch otherwise); values are cast to the model's dtype and copied.
        """

    def forward(self, inputs: Inputs, *, training: bool = False, step: int = 0) -> dict[str, np.ndarray]:
        """Outputs by output id, plus every head's logits under their tensor name (``head.logits``).

        ``training=True``: dropout uses the masks of optimizer step ``step`` (``archspec.random``),
        batch normalisation uses batch statistics and updates its moving statistics (a side
        effect on the weights, as one training step would make). Otherwise no side effects.
        """

    def gradients(
        self, inputs: Inputs, cotangents: Mapping[str, np.ndarray], *, training: bool = False, step: int = 0
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Gradients of ``sum_k sum(tensor_k * cotangents[k])``, in the canonical layout.

        ``k``: an output id or the head's logits tensor name; each cotangent has that tensor's
        shape ``(batch, ...)``. Returns (trainable parameter's canonical name -> gradient, float
        input name -> gradient); a parameter the tensors do not depend on gets zeros. An empty
        or unknown key raises ``UsageError``. ``training`` and ``step`` as in :meth:`forward`.
        """

    def native_param_count(self) -> int:
        """The parameter count as the framework reports it (batch-norm statistics included);
        equals ``graph.param_count``, which tests check."""

    def save_weights(self, path: Any) -> None:
        """Write ``get_weights()`` to ``path`` as safetensors, with the spec's hash in the metadata."""

    def forward_batches(self, inputs: Inputs, batch_size: int = 2048) -> dict[str, np.ndarray]:
        """Inference-mode ``{"output": ..., "logits": ...}`` of the first output, run in batches."""

    def forward_tensors(self, inputs: Inputs, batch_size: int = 2048) -> dict[str, np.ndarray]:
        """Inference-mode outputs by output id and every head's logits by tensor name, in batches."""


class Engine(Protocol):
    """Runs optimizer steps for the neutral trainer; one per training run (``backends/<name>/engine.py``).

    The trainer owns the semantics (sample order, batches, schedule, metrics, checkpoints);
    the engine only turns sample indices into one optimizer update, following the reference
    optimizer formulas (``archspec/reference/optimizers.py``). The data stays on the device.
    """

    def __init__(
        self,
        model: Any,
        *,
        x: Mapping[str, np.ndarray],
        y: np.ndarray,
        training: Training,
        compiled: bool = False,
        cluster: Cluster | None = None,
        sample_weight: np.ndarray | None = None,
        gradient_norms: bool = False,
    ) -> None:
        """Hold ``model`` (this backend's compiled model) and the training set on its device.

        ``x``: the training inputs by name, ``(N, *input shape)``; ``y``: int64 labels ``(N,)``
        for sparse categorical cross-entropy, float one-hot ``(N, C)`` for categorical, float
        ``(N, 1)`` otherwise. ``training``: the spec's training section (loss, optimizer,
        regularisers read from the graph). ``compiled``: compile the step (``torch.compile``,
        ``tf.function(jit_compile=True)``) without changing its numbers beyond the dtype's
        tolerance. ``cluster``: set when training with several workers, after
        ``distributed.join(cluster, ...)`` was entered; gradients and batch statistics are then
        those of the global batch. ``sample_weight`` (N,): each sample's loss weight (the
        weighted loss ``sum(w * l) / batch``, ``docs/semantics.md``). ``gradient_norms``: keep
        every step's global gradient norm before clipping in ``last_gradient_norm`` (0-d
        tensor). The step clips its gradient as ``training.clip_value`` and
        ``training.clip_norm`` say. Raises ``UsageError`` for a model without a head and
        ``DataError`` when ``y`` has not one target per sample. The optimizer state starts at zero.
        """

    def train_step(
        self, indices: np.ndarray, step: int, learning_rate: float, *, offset: int = 0, fraction: float = 1.0
    ) -> Any:
        """One optimizer update on the samples ``indices`` (int, ``(batch,)``) of the training set.

        ``step``: the 0-based optimizer step (dropout masks depend on it; the optimizer's count
        is ``step + 1``); ``learning_rate``: this step's rate from the schedule. With workers,
        ``indices`` are this worker's share of the global batch, starting at position ``offset``
        in it and making up ``fraction`` of it. Updates the weights and the optimizer state.
        Returns the share's mean loss (regularisation penalties included) as a 0-d framework
        tensor, without synchronising the device: read it with :meth:`losses_to_numpy`.
        """

    def train_parts(self, parts: Sequence[tuple[np.ndarray, int, float]], step: int, learning_rate: float) -> Any:
        """One optimizer update on a global batch given in parts ``(indices, offset, fraction)``
        (the batches of ``accumulate_steps``, each as this worker's share with workers).

        The update's gradient is the sum over the parts of ``fraction`` times the gradient of
        the part's mean loss (all-reduced over workers), clipped; ``offset`` is where the part
        starts in the global batch (dropout masks index samples by it). Returns the sum of
        ``fraction * mean loss`` over the parts as a 0-d tensor, without synchronising.
        """

    def losses_to_numpy(self, losses: Sequence[Any]) -> np.ndarray:
        """Losses returned by :meth:`train_step` as one float64 array ``(len(losses),)``, synchronising once."""

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``values`` over all workers (``values`` itself with one worker).

        Every worker must call it with an array of the same shape and dtype; it blocks until all have.
        """

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """The optimizer state as ``"{canonical parameter name}/{slot}"`` -> array, canonical layout.

        One entry per trainable parameter and state slot of the optimizer
        (``archspec.definitions.optimizers.state_slots``), each shaped like its parameter;
        zeros before the first step. Copies.
        """

    def load_optimizer_state(self, state: Mapping[str, np.ndarray], step: int) -> None:
        """Restore a state saved by :meth:`optimizer_state`, taken ``step`` optimizer updates into the run.

        Raises ``UsageError`` naming the missing, unknown or misshapen entries if the state does
        not fit this model and optimizer.
        """

    def optimizer_step_only(self, grads: Mapping[str, np.ndarray], learning_rate: float, step: int) -> None:
        """Apply one optimizer update with the given gradients (trainable canonical name -> array); for tests.

        ``step`` is the 0-based index of this update, as in :meth:`train_step`.
        """

    def unwrap(self) -> None:
        """Let go of anything that holds the distributed runtime (torch: the ``DistributedDataParallel``
        wrapper), so that ``distributed.leave`` can shut it down; a no-op where nothing does."""


class Distributed(Protocol):
    """``backends/<name>/distributed.py``: the framework's own distributed runtime, for data-parallel training."""

    def join(self, cluster: Cluster, device: str) -> AbstractContextManager[Any]:
        """A context manager: this process joins ``cluster`` as worker ``cluster.rank`` on ``device``
        (``"auto"``, ``"cpu"`` or ``"cuda"``); the model and the engine are built inside it.

        Idempotent within a process. Raises ``BackendUnavailableError`` if the framework lacks
        what the cluster needs (a collective backend, a GPU).
        """

    def leave(self, engine: Engine) -> None:
        """Leave the cluster together with the other workers, after the last step.

        Waits for every worker (so no peer's pending collective reads a finished worker's
        buffers), calls ``engine.unwrap()`` where the runtime needs it, and shuts the runtime down
        where the framework allows it.
        """


class Environment(Protocol):
    """``backends/<name>/environment.py``: what the process environment says, read before the framework loads.

    Imports no framework (a test runs it in a fresh interpreter and checks ``sys.modules``):
    the core calls it on every ``load_backend`` and when a launcher starts workers.
    """

    ONE_ADDRESS_PER_WORKER: bool
    """True when every worker of a cluster listens on its own address, listed in rank order
    (TensorFlow's ``TF_CONFIG``); False when all workers meet at one coordinator's address and
    the cluster size is given separately (torchrun's ``MASTER_ADDR:MASTER_PORT``)."""

    def preflight(self) -> None:
        """Refuse, with ``BackendUnavailableError`` saying what to change, an environment in which the
        framework would load misconfigured (e.g. ``KERAS_BACKEND`` naming another framework)."""

    def cluster_from_environment(self, timeout: float) -> Cluster | None:
        """The cluster this process was started into by the framework's own launcher (torchrun's
        variables, ``TF_CONFIG``), with collectives timing out after ``timeout`` seconds; ``None``
        for a single process. Raises ``UsageError`` for variables it cannot read."""

    def variables(self, cluster: Cluster) -> dict[str, str]:
        """The environment variables that describe ``cluster``'s worker to this framework's
        launcher (the inverse of :meth:`cluster_from_environment`)."""


class Layers(Protocol):
    """``backends/<name>/layers.py``: one builder per layer type of the spec catalogue."""

    BUILDERS: Mapping[str, Callable[..., Any]]
    """Layer type (``"dense"``) -> a function building that layer's native object from a graph ``Node``.

    Its keys are exactly ``archspec.graph.layer_types()`` (the support matrix reads them).
    """


class Layout(Protocol):
    """``backends/<name>/layout.py``: where each canonical parameter lives in the native model.

    The only place that knows the framework's weight layout. Returns neutral
    ``archspec.layout.Slot`` values; ``archspec.layout`` groups them by native array and
    converts values, gradients and optimizer state both ways (``to_native``, ``to_canonical``).
    """

    def node_slots(self, node: Node) -> list[Slot]:
        """One ``Slot`` per parameter of ``node`` (``node.params``), in canonical order.

        ``slot.canonical`` is ``node.canonical_name(param)``, ``slot.node`` is ``node.id``,
        ``slot.path`` the attribute path from the node's native layer to the native array,
        ``slot.row`` its row when one array holds several parameters, ``slot.trainable``
        the parameter's; ``to_native``/``to_canonical`` are linear and inverse to each other.
        Pure: no framework object is touched. Raises ``BackendUnavailableError`` naming the
        layer type, the parameter and the backend when the table has no entry for them.
        """


class Export(Protocol):
    """``backends/<name>/export.py``: the export formats this framework writes and runs."""

    FORMATS: Mapping[str, Any]
    """Format name (``"onnx"``) -> an ``archspec.exporting.Format`` (``write`` a file from canonical
    weights, ``load`` it in its runtime). ``archspec.exporting.formats.FORMATS`` names each one;
    may be empty for a framework that writes none."""


class Backend(Protocol):
    """The package ``archspec.backends.<name>`` (``backends/<name>/__init__.py``).

    It imports its framework only when one of these names is first used, so that its
    ``environment`` module imports without it. Its folder has the module names of ``MODULES``,
    the same in every backend.
    """

    Engine: type[Engine]
    distributed: Distributed

    def build(
        self, graph: ModelGraph, weights: Mapping[str, np.ndarray], dtype: str = "float32", device: str = "auto"
    ) -> CompiledModel:
        """Build ``graph`` as this framework's model holding ``weights`` (canonical name -> array,
        canonical layout, exactly ``graph.parameters``), computing in ``dtype`` (``"float32"`` or
        ``"float64"``) on ``device`` (``"auto"``: a GPU if the framework sees one, else the CPU;
        ``"cpu"``; ``"cuda"``).

        Every layer type of the spec catalogue must be supported (``layers.BUILDERS``); the
        model's outputs must match the numpy reference (``archspec/reference/``) to the dtype's
        tolerance. Raises ``UsageError`` for an unknown dtype or device and
        ``BackendUnavailableError`` for a device the framework cannot see. Initialisation is
        not the backend's business: ``weights`` are always given.
        """
