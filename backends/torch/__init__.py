"""The PyTorch backend: builds a spec's graph as a ``torch.nn.Module`` (see ``model.py``).

Its names are imported on first use, so ``environment`` (torchrun's variables, read by the
core before a framework loads) can be imported without importing torch.
"""

from importlib import import_module

__all__ = ["Engine", "GraphModule", "TorchModel", "build", "distributed"]

_MODULE_OF = {"Engine": "engine", "GraphModule": "model", "TorchModel": "model", "build": "model"}


def __getattr__(name: str):
    if name == "distributed":
        return import_module(f"{__name__}.distributed")
    if name in _MODULE_OF:
        return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
