"""archspec: describe a neural network once, in YAML; build and train it with
PyTorch, TensorFlow/Keras or JAX (Flax NNX), from identical weights, with one training semantics.

Importing archspec imports no framework; a backend is imported when first used.
"""

from archspec.api import compile, load, load_weights
from archspec.backend import BACKENDS
from archspec.errors import (
    ArchSpecError,
    BackendUnavailableError,
    CheckpointError,
    DataError,
    PortingError,
    ResourceError,
    ShapeError,
    SpecError,
    TrainingError,
    UnsupportedModelError,
    UsageError,
)
from archspec.spec import *  # noqa: F403  (the spec models are part of the public API)
from archspec.spec import Spec
from archspec.spec import __all__ as _spec_names
from archspec.version import __version__


def train(spec, backend: str = "torch", **options):
    """Train ``spec`` on ``backend``; see ``archspec.training.train``."""
    # Imported on first use: `import archspec` (and `archspec validate`) stays quick.
    from archspec.training import train as _train

    return _train(spec, backend=backend, **options)


def compare(spec, backends: tuple[str, ...] | None = None, **options):
    """Train ``spec`` on each backend in its own process (``None``: every registered backend whose
    framework is installed) and compare every pair; see ``archspec.comparison.compare``."""
    # Imported on first use: `import archspec` (and `archspec validate`) stays quick.
    from archspec.comparison import compare as _compare

    return _compare(spec, backends=backends, **options)


def predict(spec, weights, data, **options):
    """Run a trained run's model on a new data file; see ``archspec.prediction.predict``."""
    from archspec.prediction import predict as _predict  # on first use, as train

    return _predict(spec, weights, data, **options)


def from_keras(model):
    """Import a built Sequential or functional Keras 3 model: ``(spec, weights)``, the spec with a
    training section from its ``compile()`` settings and the weights in the canonical layout.
    Raises ``UnsupportedModelError`` listing every layer archspec cannot express. To prove the
    port, ``archspec.porting.proof.prove(archspec.porting.import_keras(model))``."""
    from archspec.porting import import_keras  # on first use: it imports Keras

    imported = import_keras(model)
    return load(Spec.model_validate(imported.document)), imported.weights


def from_torch(module, example_input):
    """Import a ``torch.nn.Module`` as ``(spec, weights)``: the spec and its canonical weights.

    ``example_input`` is one batch as the module reads it (NCHW for a CNN); the spec reads
    images channels-last. Raises ``PortingError`` listing every module or op it cannot map.
    See ``archspec.backends.torch.porting``.
    """
    from archspec.backend import load_backend  # imports torch: on first use only

    imported = load_backend("torch").from_torch(module, example_input)
    return load(imported.document), imported.weights


def export(model_or_spec, weights=None, *, format: str, out, **options):
    """Export a model (or a spec with weights) as ``format`` at ``out``, verified in its runtime;
    see ``archspec.exporting.exporter.export``."""
    from archspec.exporting.exporter import export as _export  # on first use, as train

    return _export(model_or_spec, weights, format=format, out=out, **options)


__all__ = [
    "BACKENDS",
    "ArchSpecError",
    "BackendUnavailableError",
    "CheckpointError",
    "DataError",
    "PortingError",
    "ResourceError",
    "ShapeError",
    "SpecError",
    "TrainingError",
    "UnsupportedModelError",
    "UsageError",
    "__version__",
    "compare",
    "compile",
    "export",
    "from_keras",
    "from_torch",
    "load",
    "load_weights",
    "predict",
    "train",
]
__all__.extend(_spec_names)  # the spec models, as archspec.spec lists them
