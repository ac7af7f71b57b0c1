"""What every Keras layer builder needs besides the node, and what a builder is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from archspec.graph import Node

CHANNELS_LAST = "channels_last"  # every layer is built channels-last, whatever Keras' global config says


@dataclass(frozen=True)
class BuildContext:
    """What builders need beyond the node: the run's float dtype, the dropout seed and
    the model's dropout step variable (int64, set before each training step)."""

    dtype: str
    seed: int
    step: tf.Variable
    offset: tf.Variable | None = None  # the first sample's position in the global batch


Builder = Callable[[Node, BuildContext], keras.layers.Layer]
