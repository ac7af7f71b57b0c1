"""Everything checked before a framework is loaded: memory, checkpoint, data, batches.

The order matters: a run too large for the memory is refused before its data is loaded,
and a checkpoint that does not fit the spec before the data is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archspec.data import Splits, load_dataset, splits_from_arrays
from archspec.data.files import FileSplits, check_files_unchanged, load_files
from archspec.data.splits import _check_finite as check_finite_values
from archspec.errors import UsageError
from archspec.graph import ModelGraph, resolve
from archspec.resources import check_memory, estimate_for_training
from archspec.spec.files import FileData
from archspec.spec.training import Training
from archspec.targets import check_data_fits, file_target, prepare_targets
from archspec.training.checkpoints import Checkpoint, DataFingerprint
from archspec.training.cluster import Cluster, check_batches
from archspec.training.order import batch_sizes
from archspec.training.resume import check_progress, check_resumable, fingerprint


@dataclass(frozen=True)
class TrainingData:
    """A run's checked data: the splits, and the training split as the engine trains on it."""

    splits: Splits
    input_name: str
    x_train: np.ndarray  # cast to the run's dtype (or the input's integer dtype)
    y_train: np.ndarray  # in the form the loss reads (``prepare_targets``)
    batch_sizes: list[int]
    fingerprint: DataFingerprint | None  # with a run folder or a checkpoint only

    @property
    def samples(self) -> int:
        return len(self.x_train)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batch_sizes)


def load_splits(spec, data, data_dir) -> Splits:
    """The user's arrays (``data``), else the spec's data set."""
    if data is not None:
        num_classes = None
        if spec.training.loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
            graph = resolve(spec)
            num_classes = graph.node_by_id[graph.outputs[0]].output_shape[-1]
        elif spec.training.loss == "binary_crossentropy":
            num_classes = 2
        return splits_from_arrays(data, num_classes=num_classes)
    if spec.data is None:
        raise UsageError(f"spec '{spec.name}' has no 'data' section: pass data=(x, y) or add one")
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
    splits = load_splits(spec, data, data_dir)
    if checkpoint is not None and isinstance(splits, FileSplits):  # name a data file that changed
        check_files_unchanged(checkpoint.folder.parent, splits)
    check_data_fits(graph, splits)
    x, y = splits.train
    input_name = next(iter(spec.inputs))
    kind = spec.inputs[input_name].dtype
    with np.errstate(over="ignore"):  # an overflow to infinity is refused just below
        x_train = x.astype(dtype if kind == "float" else kind)
    if x_train.dtype.kind == "f":
        check_finite_values(x_train, f"train.x as {dtype}")
    y_train = prepare_targets(y, training.loss, splits.num_classes, dtype)
    check_memory(estimate_for_training(graph, training, data_samples=len(x_train)), memory_cap)
    sizes = batch_sizes(len(x_train), training.batch_size)
    if cluster is not None:
        check_batches(sizes, cluster.world_size)
    data_fingerprint = None
    if checkpoint is not None:
        data_fingerprint = fingerprint(x_train, y_train)
        check_progress(checkpoint, data_fingerprint, sizes)
    elif fingerprinted:
        data_fingerprint = fingerprint(x_train, y_train)
    return TrainingData(splits, input_name, x_train, y_train, sizes, data_fingerprint)
