"""Readable model code: one Python file per model, plain PyTorch (``nn.Module``) or plain
Keras (functional API), that loads its weights from a safetensors file and imports nothing
from archspec. The ``torch_code`` and ``keras_code`` formats of ``archspec.export(...)``.

A code export writes two files: the code at ``out`` (``model.py``) and its weights beside it
(``weights_path(out)``: ``model.safetensors``), in the framework's own layout. Generating the text
imports no framework; ``load`` imports the generated file, which imports its framework.
"""

from archspec.exporting.code._writer import weights_path
from archspec.exporting.code.keras_code import KerasCode
from archspec.exporting.code.torch_code import TorchCode

FORMATS = {"torch_code": TorchCode(), "keras_code": KerasCode()}
"""The two formats' objects, by name (``archspec.exporting.formats.FormatEntry`` reads this mapping)."""

__all__ = ["FORMATS", "KerasCode", "TorchCode", "weights_path"]
