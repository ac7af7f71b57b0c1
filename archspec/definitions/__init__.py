"""Definitions with one meaning everywhere: the facts production code and the numpy reference share.

A constant, an option default, a slot name or a schedule formula is written here once;
the trainer, the backends and ``archspec.reference`` import it from here. The reference
keeps only its own computations (layer forwards, optimizer updates, losses), so that the
tests and the divergence locator hold the backends to a witness they do not share code with.

- :mod:`archspec.definitions.constants`: numerical constants (probability clip, activation slopes).
- :mod:`archspec.definitions.optimizers`: optimizer names, option defaults and checks, state slot names.
- :mod:`archspec.definitions.schedules`: the learning rate of every optimizer step.
- :mod:`archspec.definitions.positions`: the fixed table of a sinusoidal position embedding.
"""
