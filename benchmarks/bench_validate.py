"""Wall time of `archspec validate` and `archspec summary` per config, process start included.

Usage: python benchmarks/bench_validate.py [--repeats 5]
Prints a Markdown table of medians; the target is under 0.5 s per command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall_time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "archspec", *args], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    baseline = statistics.median(_time_python() for _ in range(args.repeats))
    print(f"machine: {os.cpu_count()} cores; python start-up alone: {baseline:.3f} s (median of {args.repeats})\n")
    print("| config | validate (s) | summary (s) |")
    print("|---|---:|---:|")
    worst = 0.0
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        rel = str(config.relative_to(ROOT))
        validate = statistics.median(wall_time(["validate", rel]) for _ in range(args.repeats))
        summary = statistics.median(wall_time(["summary", rel]) for _ in range(args.repeats))
        worst = max(worst, validate, summary)
        print(f"| {config.stem} | {validate:.3f} | {summary:.3f} |")
    print(f"\nslowest: {worst:.3f} s (target < 0.5 s): {'met' if worst < 0.5 else 'NOT met'}")


def _time_python() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
