"""Training, written once for every backend: ``train`` and the ``TrainResult`` it returns.

Modules, from the entry point down: ``run`` (a run from arguments to result) uses
``preparation``, ``loop``, ``evaluation``, ``keeper`` and ``results``; ``jobs``,
``launcher`` and ``worker`` run it in several local processes; ``cluster`` says who is who
among the workers; ``checkpoints`` and ``resume`` write and check checkpoints; ``order``
is the sample order; ``divergence`` says where a step went non-finite; ``controls`` holds
the learning rate of every step, reduce-on-plateau and early stopping of a run; ``logs``
writes its TensorBoard event files.
"""

from archspec.training.results import TrainResult
from archspec.training.run import train

__all__ = ["TrainResult", "train"]
