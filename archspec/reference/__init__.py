"""Numpy reference: the witness of what every backend computes.

Each module here computes one part of the semantics in float64 numpy (layer forwards,
optimizer updates, losses); the backend tests, the parity tests and the divergence
locator hold the torch and TensorFlow implementations to it. Production code does not
import it (``tests/reference/test_witness_imports.py``); the facts both sides share, such
as constants, optimizer options and slot names, and the learning-rate schedules, live in
``archspec.definitions``.
"""
