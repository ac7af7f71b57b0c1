"""benchmarks/bench_training.py in --quick mode on the MLP: the table is whole and its ratios
come from its own numbers. No timing is asserted: the numbers of a quick run mean nothing."""

import importlib.util
import math
import sys

import pytest
from paths import ROOT, mnist_dir

SCRIPT = ROOT / "benchmarks" / "bench_training.py"
NUMERIC = (
    "epoch (s)",
    "train samples/s",
    "inference samples/s",
    "train GFLOP/s",
    "% of peak",
    "warm-up epoch (s)",
    "start-up (s)",
)


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_script()


@pytest.fixture(scope="module")
def quick_run(bench):
    """One --quick run of the MLP with every eager implementation (about 40 s on 2 busy cores)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARCHSPEC_DATA_DIR", str(mnist_dir().parent))  # the worker processes inherit it
        report = bench.run_benchmark(models=("mlp",), implementations=bench.EAGER, quick=True, timeout=300)
    return report, bench.render(report)


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of ``text`` as rows of cells (header first, alignment row dropped)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-:") for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _value(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("%"))


def _model_table(bench, text: str) -> list[dict[str, str]]:
    table = next(t for t in _tables(text) if t[0][0] == "implementation")
    assert tuple(table[0]) == bench.COLUMNS
    return [dict(zip(table[0], row)) for row in table[1:]]


@pytest.mark.slow
def test_the_table_has_every_column_and_every_implementation(bench, quick_run):
    _, text = quick_run
    rows = _model_table(bench, text)
    assert [row["implementation"] for row in rows] == [bench.BY_KEY[key].label for key in bench.EAGER]
    assert all(len(row) == len(bench.COLUMNS) for row in rows)
    assert "## mnist-mlp: 20 steps (2560 samples) per timed epoch" in text
    assert "**quick mode**" in text


@pytest.mark.slow
def test_every_measurement_is_a_finite_positive_number(bench, quick_run):
    report, text = quick_run
    for row in _model_table(bench, text):
        for column in NUMERIC:
            value = _value(row[column])
            assert math.isfinite(value) and value > 0, (row["implementation"], column, row[column])
    for row in report.models["mlp"]["rows"]:
        assert row.ok, row.error
        assert len(row.raw["epoch_seconds"]) == 2  # the warm-up epoch and one timed epoch
        assert row.raw["samples_per_epoch"] == 20 * 128 and row.raw["test_samples"] == 10_000


@pytest.mark.slow
def test_ratios_are_computed_from_the_tables_own_numbers(bench, quick_run):
    report, text = quick_run
    rows = {row["implementation"]: row for row in _model_table(bench, text)}
    compared = [row for row in rows.values() if row["ratio"]]
    assert {row["implementation"] for row in compared} == {"archspec torch", "archspec tensorflow", "archspec jax"}
    for row in compared:
        reference = rows[row["compared with"]]
        expected = _value(row["epoch (s)"]) / _value(reference["epoch (s)"])
        # Both epoch cells carry 4 significant digits, the ratio 3 decimals.
        assert _value(row["ratio"]) == pytest.approx(expected, rel=2e-3, abs=1e-3)
        assert row["target <= 1.05"] == ("met" if _value(row["ratio"]) <= 1.05 else "**not met**")

    # In the report itself: the exact quotient, against the fastest of the candidates.
    measured = {row.impl: row for row in report.models["mlp"]["rows"]}
    fastest_torch = min(measured["torch_tensor_loop"].epoch_seconds, measured["torch_dataloader"].epoch_seconds)
    assert measured["archspec_torch"].ratio == measured["archspec_torch"].epoch_seconds / fastest_torch
    assert measured["archspec_tensorflow"].ratio == (
        measured["archspec_tensorflow"].epoch_seconds / measured["keras_fit"].epoch_seconds
    )
    fastest_flax = min(measured["flax_nnx_jit"].epoch_seconds, measured["flax_jax_jit"].epoch_seconds)
    assert measured["archspec_jax"].ratio == measured["archspec_jax"].epoch_seconds / fastest_flax

    summary = next(t for t in _tables(text) if t[0][0] == "model")
    assert {(r[1], r[4]) for r in summary[1:]} == {(row["implementation"], row["ratio"]) for row in compared}


@pytest.mark.slow
def test_the_report_names_the_machine(quick_run):
    report, text = quick_run
    assert f"{report.machine['cores']} cores" in text and report.machine["cpu"] in text
    assert "torch 2." in text and "tensorflow" in text and "keras 3." in text and "flax 0." in text
    assert report.peak_gflops > 0 and "matmul peak" in text


def test_training_flops_follow_the_layer_shapes(bench):
    import archspec

    def flops(name):
        return bench.train_flops(archspec.load(ROOT / bench.CONFIGS[name]))

    assert flops("mlp") == 6 * (784 * 256 + 256 * 128 + 128 * 10)
    assert flops("cnn") == 6 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 128 + 128 * 10)
    assert flops("lstm") == 6 * (28 * 4 * 128 * (28 + 128) + 128 * 10)
    assert flops("tcn") == 6 * (28 * 32 * 3 * 28 + 3 * 28 * 32 * 3 * 32 + 28 * 32 * 128 + 128 * 10)
    # width 64, 4 heads of 16, feed-forward 128: q, k, v, output projections; scores and values; feed-forward
    block = 4 * 28 * 64 * 64 + 4 * 28 * 28 * (16 + 16) + 2 * 28 * 64 * 128
    assert flops("transformer") == 6 * (28 * 28 * 64 + 2 * block + 64 * 10)


def test_a_failed_implementation_is_na_and_has_no_ratio(bench):
    failed = bench.Row(
        "mlp",
        "archspec_torch_compiled",
        "archspec torch, compiled=True",
        error="BackendError: compiled=True is not supported",
    )
    reference = bench._row(
        "mlp",
        bench.BY_KEY["torch_tensor_loop"],
        {
            "epoch_seconds": [2.0, 1.0, 3.0],
            "inference_seconds": [0.5],
            "samples_per_epoch": 1000,
            "test_samples": 10_000,
            "startup_seconds": 1.5,
        },
        full_samples=2000,
        flops=10,
        peak_gflops=1.0,
    )
    bench._fill_ratios([reference, failed])
    assert failed.ratio is None
    assert reference.epoch_seconds == 4.0  # median 2.0 s of the timed epochs, scaled by 2000 / 1000 samples
    assert reference.train_samples_per_second == 500.0 and reference.inference_samples_per_second == 20_000.0
    cells = bench.table_row(failed)
    assert len(cells) == len(bench.COLUMNS)
    assert cells[1] == "n/a (BackendError: compiled=True is not supported)" and set(cells[2:]) == {"n/a"}
