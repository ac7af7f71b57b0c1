"""The spec models: a document, its layers, training and data."""

from archspec.spec.common import Initializer, Regularizer
from archspec.spec.data import BinaryData, MnistData, RegressionData
from archspec.spec.document import Input, Spec
from archspec.spec.layers import (
    GRU, LAYER_TYPES, LSTM, Activation, Add, AvgPool2D, BatchNorm, Bidirectional, Concatenate,
    Conv2D, Dense, Dropout, Embedding, Flatten, GlobalAvgPool2D, LayerNorm, MaxPool2D, Multiply,
    ParamSpec, Reshape, SimpleRNN,
)
from archspec.spec.training import (
    SGD, Adadelta, Adam, AdamW, ConstantSchedule, CosineSchedule, ExponentialSchedule, RMSprop,
    StepSchedule, Training,
)

__all__ = [
    "Activation", "Adadelta", "Adam", "AdamW", "Add", "AvgPool2D", "BatchNorm", "Bidirectional",
    "BinaryData", "Concatenate", "ConstantSchedule", "Conv2D", "CosineSchedule", "Dense", "Dropout",
    "Embedding", "ExponentialSchedule", "Flatten", "GRU", "GlobalAvgPool2D", "Initializer", "Input",
    "LAYER_TYPES", "LSTM", "LayerNorm", "MaxPool2D", "MnistData", "Multiply", "ParamSpec",
    "RMSprop", "RegressionData", "Regularizer", "Reshape", "SGD", "SimpleRNN", "Spec",
    "StepSchedule", "Training",
]
