"""benchmarks/export_report.py (make export-report) on one config and one format: one row per
backend the weights are read through, each verified."""

import subprocess
import sys

from paths import ROOT

from archspec.backend import BACKENDS


def test_export_report_writes_a_row_per_backend(tmp_path):
    out = tmp_path / "report.md"
    command = [sys.executable, str(ROOT / "benchmarks" / "export_report.py")]
    command += ["--configs", "linear_regression", "--formats", "torch_export", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| linear_regression")]
    assert [(row[1], row[3], row[-2]) for row in rows] == [("torch_export", backend, "pass") for backend in BACKENDS]
    for row in rows:  # the reference and every backend, each within the bound
        assert len(row) == 9 + len(BACKENDS) and all(float(cell) <= 1e-5 for cell in row[5 : 6 + len(BACKENDS)]), row
    assert f"{len(BACKENDS)} exports, 0 failed" in out.read_text()
