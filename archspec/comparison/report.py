"""The comparison's report: a side-by-side table, ``report.md``, ``results.json`` and ``curves.png``."""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from archspec.weights import atomic_write_bytes


def _aligned(header: list[str], body: list[list[str]]) -> list[str]:
    """Rows as text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))
        )
        for row in [header, *body]
    ]


@dataclass
class CompareReport:
    """Per-backend results plus every pair's agreement; ``table()`` renders them side by side.

    ``agreement``: ``"torch vs jax"`` -> measure -> value, one entry per pair of backends
    (``archspec.comparison.agreement``). ``notes``: what the reader should know about the
    comparison itself (a backend left out because its framework is not installed).
    """

    spec_name: str
    backends: tuple[str, ...]
    results: dict[str, dict]
    agreement: dict[str, dict[str, float]]
    step_losses: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, list[str]]]:
        rows = []

        def add(label, getter, fmt="{:.4f}"):
            cells = []
            for b in self.backends:
                value = getter(self.results[b])
                cells.append("" if value is None else fmt.format(value))
            rows.append((label, cells))

        add("parameters", lambda r: r["param_count"], "{:,}")
        add("optimizer steps", lambda r: r["steps"], "{:,}")
        splits = [s for s in ("train", "validation", "test") if s in self.results[self.backends[0]]["final"]]
        metric_names = sorted({k for r in self.results.values() for s in r["final"].values() for k in s})
        for split in splits:
            for name in metric_names:
                add(f"{split} {name}", lambda r, s=split, n=name: r["final"].get(s, {}).get(n))
        add("time per epoch (s)", lambda r: r["timings"]["seconds_per_epoch"], "{:.3f}")
        add("training throughput (samples/s)", lambda r: r["timings"]["samples_per_second"], "{:,.0f}")
        add("inference throughput (samples/s)", lambda r: r["inference_samples_per_second"], "{:,.0f}")
        add("peak memory RSS (MiB)", lambda r: r["peak_rss_mib"], "{:,.0f}")
        add("framework import (s)", lambda r: r["timings"]["import_seconds"], "{:.3f}")
        add("model build (s)", lambda r: r["timings"]["build_seconds"], "{:.3f}")
        return rows

    def agreement_rows(self) -> list[tuple[str, list[str]]]:
        """One row per measure, one cell per pair of backends (empty where a pair lacks it)."""
        pairs = list(self.agreement)
        measures = list(dict.fromkeys(measure for values in self.agreement.values() for measure in values))
        return [
            (
                measure,
                [f"{self.agreement[pair][measure]:.3g}" if measure in self.agreement[pair] else "" for pair in pairs],
            )
            for measure in measures
        ]

    def table(self) -> str:
        lines = [f"{self.spec_name}: {' vs '.join(self.backends)}"]
        lines += _aligned(["", *self.backends], [[label, *cells] for label, cells in self.rows()])
        if self.agreement:
            lines.append("")
            lines += _aligned(
                ["agreement", *self.agreement], [[label, *cells] for label, cells in self.agreement_rows()]
            )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [
            f"# {self.spec_name}: {' vs '.join(self.backends)}",
            "",
            *(f"> {note}" for note in self.notes),
            *([""] if self.notes else []),
            "| | " + " | ".join(self.backends) + " |",
            "|---|" + "---:|" * len(self.backends),
        ]
        for label, cells in self.rows():
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if self.agreement:
            lines += ["", "## Agreement", "", "| measure | " + " | ".join(self.agreement) + " |"]
            lines.append("|---|" + "---:|" * len(self.agreement))
            lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in self.agreement_rows()]
        lines += ["", "![curves](curves.png)", ""]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "spec": self.spec_name,
            "backends": list(self.backends),
            "results": self.results,
            "agreement": self.agreement,
            "step_losses": self.step_losses,
            "notes": self.notes,
        }


def write_report(report: CompareReport, folder: Path) -> None:
    """report.md, results.json and curves.png, each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "results.json", (json.dumps(report.to_json(), indent=2) + "\n").encode())
    atomic_write_bytes(folder / "curves.png", _curves_png(report))
    atomic_write_bytes(folder / "report.md", report.markdown().encode())


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


# One color per backend, the same in every report (another backend gets a spare color), a line
# style per position, and one color per pair of backends for the per-step loss gaps.
BACKEND_COLORS = {"torch": "tab:red", "tensorflow": "tab:blue", "jax": "tab:green"}
LINE_STYLES = ("-", "--", ":", "-.")
PAIR_COLORS = ["tab:purple", "tab:olive", "tab:cyan", "tab:orange", "tab:brown", "tab:pink"]


def _curves_png(report: CompareReport) -> bytes:
    """Training loss per step, evaluation metrics per epoch, and the per-step loss gap of every pair."""
    # Here, not at import: choosing matplotlib's (headless) backend is process-wide, and
    # matplotlib takes about a second to load; only a written report needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spare = iter(("tab:orange", "tab:brown", "tab:pink", "tab:gray"))
    colors = {b: BACKEND_COLORS.get(b) or next(spare, "black") for b in report.backends}
    figure, (loss_axis, metric_axis, gap_axis) = plt.subplots(1, 3, figsize=(17, 4.5))
    for index, backend in enumerate(report.backends):
        losses = np.asarray(report.step_losses.get(backend, []), dtype=np.float64)
        window = max(1, len(losses) // 60)
        smooth = _moving_average(losses, window)
        style = LINE_STYLES[index % len(LINE_STYLES)]
        loss_axis.plot(
            np.arange(len(smooth)) + window,
            smooth,
            style,
            color=colors.get(backend),
            label=f"{backend}: train loss (mean of {window} steps)",
        )
        history = report.results[backend]["history"]
        for key, marker in (("validation_loss", "o"), ("test_loss", "s")):
            rows = [row for row in history if key in row]
            if rows:
                loss_axis.plot(
                    [row["steps"] for row in rows],
                    [row[key] for row in rows],
                    marker,
                    color=colors.get(backend),
                    fillstyle="none" if backend != report.backends[0] else "full",
                    label=f"{backend}: {key.replace('_', ' ')}",
                )
        # Every output's accuracy: "validation_accuracy", or "validation_digit_accuracy" with several outputs.
        keys = sorted({key for row in history for key in row if key.endswith("accuracy")})
        markers = {"validation": "o", "test": "s"}
        for key, marker in ((key, markers[key.split("_")[0]]) for key in keys if key.split("_")[0] in markers):
            rows = [row for row in history if key in row]
            if rows:
                metric_axis.plot(
                    [row["epoch"] for row in rows],
                    [row[key] for row in rows],
                    style,
                    marker=marker,
                    color=colors.get(backend),
                    label=f"{backend}: {key.replace('_', ' ')}",
                )
    loss_axis.set(xlabel="optimizer step", ylabel="loss", title="loss")
    metric_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy per epoch")
    # One gap curve per pair of backends, over the steps both took.
    for (a, b), color in zip(itertools.combinations(report.backends, 2), PAIR_COLORS * len(report.backends)):
        first, second = (np.asarray(report.step_losses.get(name, []), dtype=np.float64) for name in (a, b))
        common = min(len(first), len(second))
        if common:
            first, second = first[:common], second[:common]
            gap = np.abs(first - second) / np.maximum(np.maximum(np.abs(first), np.abs(second)), 1e-300)
            gap_axis.semilogy(
                np.arange(1, common + 1), np.maximum(gap, 1e-18), ".", markersize=2, color=color, label=f"|{a} - {b}|"
            )
    gap_axis.set(xlabel="optimizer step", ylabel="|a - b| / max(|a|, |b|)", title="relative per-step loss difference")
    for axis in (loss_axis, metric_axis, gap_axis):
        axis.grid(alpha=0.3)
    loss_axis.legend(fontsize=7)
    if metric_axis.lines:
        metric_axis.legend(fontsize=7)
    if gap_axis.lines:
        gap_axis.legend(fontsize=7, markerscale=4)
    figure.suptitle(f"{report.spec_name}: {' vs '.join(report.backends)}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
