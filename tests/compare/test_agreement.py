"""Every pair of backends is compared; runs that stop at different steps (early stopping in
float32) are compared on the steps both took."""

import numpy as np

from archspec.comparison.agreement import agreement
from archspec.comparison.report import CompareReport


def test_runs_of_different_lengths_compare_their_common_steps():
    losses = {"torch": np.array([1.0, 0.5, 0.25]), "tensorflow": np.array([1.0, 0.5, 0.2, 0.1, 0.05])}
    weights = {name: {"w": np.ones(3)} for name in losses}
    found = agreement(("torch", "tensorflow"), losses, weights, {"torch": None, "tensorflow": None})
    assert list(found) == ["torch vs tensorflow"]
    assert found["torch vs tensorflow"]["max relative per-step loss difference"] == abs(0.25 - 0.2) / 0.25
    assert found["torch vs tensorflow"]["steps both took"] == 3.0


def test_three_backends_give_three_pairs_in_registry_order():
    losses = {"torch": np.array([1.0, 0.5]), "tensorflow": np.array([1.0, 0.4]), "jax": np.array([1.0, 0.5])}
    weights = {
        "torch": {"w": np.array([1.0, 2.0])},
        "tensorflow": {"w": np.array([1.0, 1.0])},
        "jax": {"w": np.array([1.0, 2.0])},
    }
    predictions = {"torch": np.array([0, 1, 2, 3]), "tensorflow": np.array([0, 1, 2, 0]), "jax": np.array([0, 1, 2, 3])}
    found = agreement(("torch", "tensorflow", "jax"), losses, weights, predictions)
    assert list(found) == ["torch vs tensorflow", "torch vs jax", "tensorflow vs jax"]
    assert found["torch vs jax"] == {
        "max relative per-step loss difference": 0.0,
        "max relative final-weight difference": 0.0,
        "share of test predictions that agree": 1.0,
    }
    assert found["tensorflow vs jax"]["max relative per-step loss difference"] == (0.5 - 0.4) / 0.5
    assert found["tensorflow vs jax"]["max relative final-weight difference"] == 0.5
    assert found["torch vs tensorflow"]["share of test predictions that agree"] == 0.75

    results = {
        name: {"param_count": 2, "steps": 2, "final": {"test": {"loss": 0.5}}, "timings": {}, "history": []}
        for name in losses
    }
    for run in results.values():
        run["timings"] = {
            "seconds_per_epoch": 1.0,
            "samples_per_second": 1.0,
            "import_seconds": 1.0,
            "build_seconds": 1.0,
        }
        run.update(inference_samples_per_second=1.0, peak_rss_mib=1.0)
    report = CompareReport("toy", ("torch", "tensorflow", "jax"), results, found, notes=["a note"])
    table = report.table().splitlines()
    assert table[1].split() == ["torch", "tensorflow", "jax"]
    header = next(line for line in table if line.startswith("agreement"))
    assert [cell.strip() for cell in header.split("  ") if cell.strip()][1:] == list(found)
    share = next(line for line in table if line.startswith("share of test predictions"))
    assert share.split()[-3:] == ["0.75", "1", "0.75"]
    assert table[-1] == "note: a note"
    assert "| measure | torch vs tensorflow | torch vs jax | tensorflow vs jax |" in report.markdown()
