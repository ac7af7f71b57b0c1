"""The PyTorch backend: builds a spec's graph as a ``torch.nn.Module`` (see ``model.py``).

Its names are imported on first use, so ``environment`` (torchrun's variables, read by the
core before a framework loads) can be imported without importing torch.
"""

from importlib import import_module

__all__ = ["Engine", "GraphModule", "TorchModel", "build", "distributed"]

_MODULE_OF = {"Engine": "engine", "GraphModule": "model", "TorchModel": "model", "build": "model"}


def __getattr__(name: str):
    if name != "distributed" and name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # The first name asked for loads every module of the backend at once, in one order, before
    # any of them is used: a torch module first imported after the process group was created
    # (the layers, when the trainer joins the cluster before building) left gloo's threads
    # running after destroy_process_group, which can abort the process at exit.
    for module in ("distributed", "model", "engine"):
        import_module(f"{__name__}.{module}")
    if name == "distributed":
        return import_module(f"{__name__}.distributed")
    return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
