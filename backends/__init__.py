"""Framework backends of archspec, importable as ``archspec.backends.<name>``.

Each sub-package has the same module names (``layers``, ``layout``, ``model``,
``optimizers``, ``engine``, ``random``) and is imported only when used.
"""
