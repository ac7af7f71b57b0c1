"""Everything checked before a framework is loaded: memory, checkpoint, data, batches.

The order matters: a run too large for the memory is refused before its data is loaded,
and a checkpoint that does not fit the spec before the data is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from archspec.data import Splits, load_dataset, splits_from_arrays
from archspec.data.files import FileSplits, check_files_unchanged, load_files, load_named_files
from archspec.data.splits import _check_finite as check_finite_values
from archspec.data.splits import sample_count
from archspec.errors import DataError, UsageError
from archspec.graph import ModelGraph, resolve
from archspec.losses import sample_weights
from archspec.resources import check_memory, estimate_for_training
from archspec.spec.files import FileData
from archspec.spec.training import Training
from archspec.targets import check_data_fits, file_target, file_targets, named_targets
from archspec.training.checkpoints import Checkpoint, DataFingerprint
from archspec.training.cluster import Cluster, check_batches
from archspec.training.order import batch_sizes
from archspec.training.resume import check_progress, check_resumable, fingerprint


@dataclass(frozen=True)
class TrainingData:
    """A run's checked data: the splits, and the training split as the engine trains on it."""

    splits: Splits
    x_train: dict[str, np.ndarray]  # by input name, cast to the run's dtype (or the input's integer dtype)
    y_train: dict[str, np.ndarray]  # by output name, in the form its loss reads (``prepare_targets``)
    batch_sizes: list[int]  # of every optimizer step of an epoch (accumulate_steps batches each)
    fingerprint: DataFingerprint | None  # with a run folder or a checkpoint only
    sample_weight: np.ndarray | None = None  # of every training sample: its weight times its class's
    split_weights: dict[str, np.ndarray] | None = None  # the same for every split (evaluation)

    @property
    def samples(self) -> int:
        return len(next(iter(self.x_train.values())))

    def inputs_of(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The training inputs of samples ``indices``, by input name."""
        return {name: array[indices] for name, array in self.x_train.items()}

    def weights_of(self, split: str) -> np.ndarray | None:
        """The loss weights of ``split``'s samples, or None (all 1)."""
        return (self.split_weights or {}).get(split)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batch_sizes)


def take_weights(data) -> tuple[object, dict[str, np.ndarray]]:
    """``data`` without its sample weights, and the weights by split.

    A split given as ``(x, y, sample_weight)`` carries its weights; so does ``data`` as a dict
    with a ``"sample_weight"`` entry (for the train split). Weights are (N,), finite, >= 0.
    """
    weights: dict[str, object] = {}
    if isinstance(data, (tuple, list)) and len(data) == 3:
        weights["train"] = data[2]
        data = tuple(data[:2])
    elif isinstance(data, Mapping):
        data = dict(data)
        if "sample_weight" in data:
            weights["train"] = data.pop("sample_weight")
        for split, pair in list(data.items()):
            if isinstance(pair, (tuple, list)) and len(pair) == 3:
                if split in weights:
                    raise DataError("expected the train split's sample weights once, received them twice")
                weights[split] = pair[2]
                data[split] = tuple(pair[:2])
    checked = {}
    for split, value in weights.items():
        array = np.asarray(value)
        if array.ndim != 1 or array.dtype.kind not in "fiu":
            raise DataError(
                f"expected {split} sample weights as numbers of shape (N,), received {array.dtype} {array.shape}"
            )
        array = array.astype(np.float64)
        if not np.isfinite(array).all() or (array < 0).any():
            raise DataError(f"expected {split} sample weights finite and >= 0, received min {array.min()}")
        checked[split] = array
    return data, checked


def load_splits(spec, data, data_dir) -> Splits:
    """The user's arrays (``data``, without sample weights), else the spec's data set."""
    if data is not None:
        num_classes = None  # several outputs: each output's labels are checked by check_data_fits
        graph = resolve(spec)
        loss = spec.training.loss_of(graph.outputs[0])
        one_output = len(graph.outputs) == 1
        if one_output and loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
            num_classes = graph.node_by_id[graph.outputs[0]].output_shape[-1]
        elif one_output and loss == "binary_crossentropy":
            num_classes = 2
        return splits_from_arrays(data, num_classes=num_classes)
    if spec.data is None:
        raise UsageError(f"spec '{spec.name}' has no 'data' section: pass data=(x, y) or add one")
    if isinstance(spec.data, FileData) and (len(spec.inputs) > 1 or len(resolve(spec).outputs) > 1):
        return load_named_files(spec.data, list(spec.inputs), file_targets(spec), seed=spec.training.seed)
    if isinstance(spec.data, FileData):
        return load_files(spec.data, file_target(spec), seed=spec.training.seed)
    return load_dataset(spec.data.model_dump(mode="json"), data_dir=data_dir, seed=spec.training.seed)


def prepare(
    graph: ModelGraph,
    training: Training,
    data,
    data_dir,
    checkpoint: Checkpoint | None,
    memory_cap,
    *,
    cluster: Cluster | None,
    fingerprinted: bool,
) -> TrainingData:
    """Check memory, checkpoint and data, in that order, and return the data as trained on."""
    spec = graph.spec
    dtype = training.dtype
    check_memory(estimate_for_training(graph, training), memory_cap)
    if checkpoint is not None:
        check_resumable(checkpoint, graph, training)
    data, given = take_weights(data) if data is not None else (None, {})
    splits = load_splits(spec, data, data_dir)
    if checkpoint is not None and isinstance(splits, FileSplits):  # name a data file that changed
        check_files_unchanged(checkpoint.folder.parent, splits)
    check_data_fits(graph, splits)
    first_output = graph.outputs[0]
    split_weights = {}
    for split, (x, y) in splits.as_dict().items():
        count = sample_count(x)
        if split in given and len(given[split]) != count:
            raise DataError(f"expected one {split} sample weight per sample ({count}), received {len(given[split])}")
        # class_weight: one output only (several: refused by the spec's checks, as in Keras).
        labels = y[first_output] if isinstance(y, dict) else y
        weights = sample_weights(labels, training.loss_of(first_output), training.class_weight, given.get(split))
        if weights is not None:
            split_weights[split] = weights
    unknown = sorted(set(given) - set(split_weights))
    if unknown:
        raise DataError(f"expected sample weights for the splits given, received weights for {unknown}")
    x, y = splits.train
    x_train = {}
    for name, array in (x if isinstance(x, dict) else {next(iter(spec.inputs)): x}).items():
        kind = spec.inputs[name].dtype
        with np.errstate(over="ignore"):  # an overflow to infinity is refused just below
            x_train[name] = array.astype(dtype if kind == "float" else kind)
        if x_train[name].dtype.kind == "f":
            where = f"train.x[{name!r}]" if isinstance(x, dict) else "train.x"
            check_finite_values(x_train[name], f"{where} as {dtype}")
    y_train = named_targets(y, graph, training, splits.num_classes, dtype)
    samples = sample_count(x)
    check_memory(estimate_for_training(graph, training, data_samples=samples), memory_cap)
    sizes = batch_sizes(samples, training.batch_size * training.accumulate_steps)
    if cluster is not None:
        # Every batch is shared out: with accumulate_steps, every one of a step's batches.
        check_batches(batch_sizes(samples, training.batch_size), cluster.world_size)
    train_weights = split_weights.get("train")
    if train_weights is not None:
        train_weights = train_weights.astype(dtype)
    # Inputs in the spec's order, then targets in the outputs' order (one of each: as before).
    arrays = [x_train[name] for name in spec.inputs] + [y_train[name] for name in graph.outputs]
    if train_weights is not None:
        arrays.append(train_weights)
    data_fingerprint = None
    if checkpoint is not None:
        data_fingerprint = fingerprint(*arrays)
        check_progress(checkpoint, data_fingerprint, sizes)
    elif fingerprinted:
        data_fingerprint = fingerprint(*arrays)
    return TrainingData(splits, x_train, y_train, sizes, data_fingerprint, train_weights, split_weights or None)
