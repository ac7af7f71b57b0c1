"""benchmarks/gpu_check.py (``make gpu-check``): a short run on the synthetic configs, and its
one-line refusal where there is no CUDA device."""

import os
import subprocess
import sys

import torch
from paths import ROOT

from archspec.backend import BACKENDS

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
SMALL = ["--configs", "linear_regression,logistic_regression", "--steps", "6", "--warmup", "2"]


def run(*arguments, tmp_path):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = tmp_path / "gpu_check.md"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    return completed, out


def test_cpu_dry_run_writes_the_table(tmp_path):
    completed, out = run("--device", "cpu", *SMALL, tmp_path=tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    table = out.read_text()
    assert table in completed.stdout
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| config")]
    assert [row.split("|")[1].strip() for row in rows] == ["linear_regression", "logistic_regression"]
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        float64_loss, float64_weights = float(cells[2]), float(cells[3])
        assert float64_loss <= 1e-9 and float64_weights <= 1e-8, row
        speeds = cells[6:-1]  # one column per registered backend
        assert len(speeds) == len(BACKENDS) and all(float(speed.replace(",", "")) > 0 for speed in speeds), row
        assert cells[-1] == "yes", row


def test_cuda_runs_or_refuses_in_one_line(tmp_path):
    completed, _ = run("--device", "cuda", *SMALL, tmp_path=tmp_path)
    if torch.cuda.is_available():
        assert completed.returncode == 0, completed.stderr[-2000:]
    else:
        assert completed.returncode == 2
        assert completed.stderr.strip().splitlines() == [completed.stderr.strip()]
        assert completed.stderr.startswith("no CUDA device: torch.cuda.is_available() is False")
