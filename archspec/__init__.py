"""archspec: describe a neural network once, in YAML; build and train it with
PyTorch or TensorFlow/Keras, from identical weights, with one training semantics.

Importing archspec imports no framework; a backend is imported when first used.
"""

from archspec.api import compile, load, load_weights
from archspec.errors import (
    ArchSpecError,
    BackendUnavailableError,
    CheckpointError,
    DataError,
    ResourceError,
    ShapeError,
    SpecError,
    TrainingError,
    UsageError,
)
from archspec.spec import *  # noqa: F403  (the spec models are part of the public API)
from archspec.spec import __all__ as _spec_names

__version__ = "0.1.0"


def train(spec, backend="torch", **options):
    """Train ``spec`` on ``backend``; see ``archspec.trainer.train``."""
    from archspec.trainer import train as _train

    return _train(spec, backend=backend, **options)


def compare(spec, backends=("torch", "tensorflow"), **options):
    """Train ``spec`` on each backend in its own process; see ``archspec.compare.compare``."""
    from archspec.compare import compare as _compare

    return _compare(spec, backends=backends, **options)


__all__ = [
    "ArchSpecError",
    "BackendUnavailableError",
    "CheckpointError",
    "DataError",
    "ResourceError",
    "ShapeError",
    "SpecError",
    "TrainingError",
    "UsageError",
    "compare",
    "compile",
    "load",
    "load_weights",
    "train",
    "__version__",
    *_spec_names,
]
