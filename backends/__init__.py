"""Framework backends of archspec, importable as ``archspec.backends.<name>``.

Each sub-package implements the backend contract (``archspec/contract.py``) with the same
module names (``archspec.contract.MODULES``), is listed in ``archspec.backend.REGISTRY``
and is imported only when used. ``docs/architecture.md`` says how to add one.
"""
