"""`archspec compare`: every installed backend (here: every registered one) side by side, every
figure of the table in results.json, and every pair of backends in agreement."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from paths import CONFIGS, ROOT, mnist_dir

from archspec.backend import BACKENDS


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    environment = {**os.environ, "ARCHSPEC_DATA_DIR": str(mnist_dir().parent)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "archspec",
            "compare",
            str(CONFIGS / "mnist_mlp.yaml"),
            "--max-steps",
            "40",
            "--dtype",
            "float64",
            "--quiet",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    return out, completed.stdout, json.loads((out / "results.json").read_text())


def test_writes_the_three_files(comparison):
    out, _, _ = comparison
    assert {p.name for p in out.iterdir()} >= {"report.md", "results.json", "curves.png"}
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_hold_every_figure_of_the_table(comparison):
    _, stdout, results = comparison
    # No --backends: every registered backend, all installed here, in the registry's order.
    assert results["backends"] == list(BACKENDS) and results["notes"] == []
    for backend in results["backends"]:
        run = results["results"][backend]
        assert run["param_count"] == run["native_param_count"] == 235_146
        assert run["steps"] == 40
        assert len(results["step_losses"][backend]) == 40
        for key in ("seconds_per_epoch", "samples_per_second", "import_seconds", "build_seconds"):
            assert run["timings"][key] > 0
        assert run["inference_samples_per_second"] > 0 and run["peak_rss_mib"] > 0
        for split in ("train", "validation", "test"):
            assert set(run["final"][split]) == {"loss", "accuracy"}
    # Every row of the printed table shows the numbers results.json holds.
    lines = {line.split("  ")[0].strip(): line for line in stdout.splitlines()}
    for split in ("train", "validation", "test"):
        for metric in ("loss", "accuracy"):
            cells = lines[f"{split} {metric}"].split()[-len(BACKENDS) :]
            expected = [f"{results['results'][b]['final'][split][metric]:.4f}" for b in BACKENDS]
            assert cells == expected
    assert lines["parameters"].split()[-len(BACKENDS) :] == ["235,146"] * len(BACKENDS)
    assert lines["optimizer steps"].split()[-len(BACKENDS) :] == ["40"] * len(BACKENDS)
    printed = stdout.splitlines()
    title = printed.index(f"mnist-mlp: {' vs '.join(BACKENDS)}")
    assert printed[title + 1].split() == list(BACKENDS)  # the header: one column per backend


def test_every_pair_agrees_and_agreement_is_recomputed_from_the_runs(comparison):
    _, stdout, results = comparison
    pairs = list(itertools.combinations(BACKENDS, 2))
    assert list(results["agreement"]) == [f"{a} vs {b}" for a, b in pairs]
    lines = {line.split("  ")[0].strip(): line for line in stdout.splitlines()}
    for a, b in pairs:
        agreement = results["agreement"][f"{a} vs {b}"]
        x, y = (np.array(results["step_losses"][name]) for name in (a, b))
        expected = float(np.max(np.abs(x - y) / np.maximum(np.abs(x), np.abs(y))))
        assert agreement["max relative per-step loss difference"] == pytest.approx(expected, rel=1e-12, abs=1e-300)
        # float64 runs follow the same trajectory.
        assert agreement["max relative per-step loss difference"] <= 1e-9, (a, b)
        assert agreement["max relative final-weight difference"] <= 1e-8, (a, b)
        assert agreement["share of test predictions that agree"] == 1.0, (a, b)
        assert f"{a} vs {b}" in lines["agreement"]
    share = lines["share of test predictions that agree"].split()[-len(pairs) :]
    assert share == ["1"] * len(pairs)


def test_report_markdown_matches(comparison):
    out, _, results = comparison
    report = (out / "report.md").read_text()
    assert "| | " + " | ".join(BACKENDS) + " |" in report
    assert "| parameters | " + " | ".join(["235,146"] * len(BACKENDS)) + " |" in report
    pairs = [f"{a} vs {b}" for a, b in itertools.combinations(BACKENDS, 2)]
    assert "| measure | " + " | ".join(pairs) + " |" in report
    test_loss = results["results"]["torch"]["final"]["test"]["loss"]
    assert f"{test_loss:.4f}" in report
    assert "![curves](curves.png)" in report
