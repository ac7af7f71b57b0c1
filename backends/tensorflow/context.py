"""What every Keras layer builder needs besides the node."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class BuildContext:
    """What builders need beyond the node: the run's float dtype, the dropout seed and
    the model's dropout step variable (int64, set before each training step)."""

    dtype: str
    seed: int
    step: tf.Variable
    offset: tf.Variable | None = None  # the first sample's position in the global batch
