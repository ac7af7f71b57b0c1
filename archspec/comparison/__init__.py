"""``archspec compare``: train one spec on several backends and report how far they agree.

``runner`` trains each backend in its own process (``worker``), ``agreement`` measures the
differences, ``report`` writes the table, ``report.md``, ``results.json`` and ``curves.png``.
"""

from archspec.comparison.agreement import relative_difference, tensor_relative_difference
from archspec.comparison.report import CompareReport, write_report
from archspec.comparison.runner import compare

__all__ = ["CompareReport", "compare", "relative_difference", "tensor_relative_difference", "write_report"]
