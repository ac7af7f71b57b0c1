"""The JAX backend's side of importing models (``archspec.contract.Porting``): none yet.

archspec imports Keras models (``backends/tensorflow/porting.py``) and PyTorch modules
(``backends/torch/porting.py``); a Flax model has no importer, and ``import_model`` says so
rather than guessing at a module's structure. To bring a Flax model's weights into archspec,
write its spec and load the weights in the canonical layout (``docs/layout.md``) with
``set_weights``; README, "Known limits".
"""

from __future__ import annotations

from typing import Any

from archspec.errors import PortingError
from archspec.porting import Imported

FRAMEWORK = "flax"


def import_model(model: Any, example_input: Any = None) -> Imported:
    """Refuses every model: importing Flax models is not supported (``PortingError``)."""
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise PortingError(
        f"expected a Keras model (archspec.porting.import_keras) or a torch.nn.Module (from_torch), "
        f"received {kind}: archspec does not import Flax models; write the model as a spec and set its "
        "weights in the canonical layout instead (README, 'Known limits')"
    )
