"""Numpy reference: the written definition of what both backends compute.

Each module here states one part of the semantics in float64 numpy; the backend
tests check the torch and TensorFlow implementations against it.
"""
