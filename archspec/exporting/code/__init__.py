"""Readable model code: one Python file per model, plain PyTorch (``nn.Module``) or plain
Keras (functional API), that loads its weights from a safetensors file and imports nothing
from archspec. The ``torch_code`` and ``keras_code`` formats of ``archspec.export(...)``.
"""
