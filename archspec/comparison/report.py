"""The comparison's report: a side-by-side table, ``report.md``, ``results.json`` and ``curves.png``."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from archspec.weights import atomic_write_bytes


@dataclass
class CompareReport:
    """Per-backend results plus their agreement; ``table()`` renders it side by side."""

    spec_name: str
    backends: tuple[str, ...]
    results: dict[str, dict]
    agreement: dict[str, float]
    step_losses: dict[str, list[float]] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, list[str]]]:
        rows = []

        def add(label, getter, fmt="{:.4f}"):
            cells = []
            for b in self.backends:
                value = getter(self.results[b])
                cells.append("" if value is None else fmt.format(value))
            rows.append((label, cells))

        add("parameters", lambda r: r["param_count"], "{:,}")
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

    def table(self) -> str:
        header = ["", *self.backends]
        body = [[label, *cells] for label, cells in self.rows()]
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        lines = [f"{self.spec_name}: {' vs '.join(self.backends)}"]
        for row in [header, *body]:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if self.agreement:
            lines.append("agreement:")
            for key, value in self.agreement.items():
                lines.append(f"  {key}: {value:.3g}")
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [
            f"# {self.spec_name}: {' vs '.join(self.backends)}",
            "",
            "| | " + " | ".join(self.backends) + " |",
            "|---|" + "---:|" * len(self.backends),
        ]
        for label, cells in self.rows():
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if self.agreement:
            lines += ["", "## Agreement", "", "| measure | value |", "|---|---:|"]
            lines += [f"| {k} | {v:.3g} |" for k, v in self.agreement.items()]
        lines += ["", "![curves](curves.png)", ""]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "spec": self.spec_name,
            "backends": list(self.backends),
            "results": self.results,
            "agreement": self.agreement,
            "step_losses": self.step_losses,
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


def _curves_png(report: CompareReport) -> bytes:
    """Training loss per step, evaluation metrics per epoch, and the per-step loss gap."""
    # Here, not at import: choosing matplotlib's (headless) backend is process-wide, and
    # matplotlib takes about a second to load; only a written report needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"torch": "tab:red", "tensorflow": "tab:blue"}
    figure, (loss_axis, metric_axis, gap_axis) = plt.subplots(1, 3, figsize=(17, 4.5))
    for backend in report.backends:
        losses = np.asarray(report.step_losses.get(backend, []), dtype=np.float64)
        window = max(1, len(losses) // 60)
        smooth = _moving_average(losses, window)
        style = "-" if backend == report.backends[0] else "--"
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
    if len(report.backends) >= 2:
        a, b = (np.asarray(report.step_losses[name], dtype=np.float64) for name in report.backends[:2])
        if len(a) == len(b) and len(a):
            gap = np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
            gap_axis.semilogy(np.arange(1, len(gap) + 1), np.maximum(gap, 1e-18), ".", markersize=2, color="tab:purple")
    gap_axis.set(
        xlabel="optimizer step", ylabel="|torch - tensorflow| / max", title="relative per-step loss difference"
    )
    for axis in (loss_axis, metric_axis, gap_axis):
        axis.grid(alpha=0.3)
    loss_axis.legend(fontsize=7)
    if metric_axis.lines:
        metric_axis.legend(fontsize=7)
    figure.suptitle(f"{report.spec_name}: {' vs '.join(report.backends)}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
