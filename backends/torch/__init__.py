"""The PyTorch backend: builds a spec's graph as a ``torch.nn.Module`` (see ``model.py``)."""

from . import distributed
from .engine import Engine
from .model import GraphModule, TorchModel, build

__all__ = ["Engine", "GraphModule", "TorchModel", "build", "distributed"]
