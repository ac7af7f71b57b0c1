"""The PyTorch backend: builds a spec's graph as a ``torch.nn.Module`` (see ``model.py``).

Its names are imported on first use, so ``environment`` (torchrun's variables, read by the
core before a framework loads) can be imported without importing torch.
"""

from archspec.backend import lazy_names

__all__ = ["Engine", "GraphModule", "TorchModel", "build", "distributed", "from_torch"]

_MODULE_OF = {
    "Engine": "engine",
    "GraphModule": "model",
    "TorchModel": "model",
    "build": "model",
    "from_torch": "porting",
}
__getattr__ = lazy_names(__name__, _MODULE_OF)
