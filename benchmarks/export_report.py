"""The export table for the README: every config exported to every registered format, with the
weights read through each backend, each file verified in its own runtime (``make export-report``).

Usage: python benchmarks/export_report.py [--configs NAME ...] [--formats NAME ...] [--out FILE]
Weights: each config's canonical initial weights (its training seed), read through the backend
named in the "weights from" column; a format of another framework is built from the canonical
weights. Every file is traced with a batch of 2 and verified on a batch of 64 (the spec's data
when it loads, else random inputs). One process; the seconds include writing and verifying.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import archspec
from archspec.backend import BACKENDS
from archspec.errors import ArchSpecError
from archspec.exporting.exporter import ExportError, export
from archspec.exporting.formats import FORMATS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def worst(verification, against: str) -> float:
    return max(row.max_rel for row in verification.rows if row.against.startswith(against))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", help="config names (default: every file in configs/)")
    parser.add_argument("--formats", nargs="*", default=list(FORMATS), help="formats (default: every registered one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "export_report.md"))
    args = parser.parse_args()
    configs = [ROOT / "configs" / f"{name}.yaml" for name in args.configs] if args.configs else CONFIGS
    against = ("reference", *BACKENDS)
    header = (
        "| config | format | runtime | weights from | inputs | max rel diff vs reference | "
        + "".join(f"vs {backend} | " for backend in BACKENDS)
        + "bound | result | seconds |"
    )
    lines = [header, "|" + "---|" * (8 + len(BACKENDS))]
    failures, started = 0, time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for config in configs:
            for format_name in args.formats:
                entry = FORMATS[format_name]
                for backend in BACKENDS:
                    model = archspec.compile(config, backend=backend, dtype="float32", device="cpu")
                    out = Path(folder) / f"{config.stem}_{backend}{entry.suffix}"
                    start = time.perf_counter()
                    try:
                        result = export(model, format=format_name, out=out)
                    except ArchSpecError as error:
                        failures += 1
                        seconds = time.perf_counter() - start
                        verification = error.verification if isinstance(error, ExportError) else None
                        numbers = (
                            [f"{worst(verification, a):.1e}" for a in against] if verification else ["-"] * len(against)
                        )
                        message = str(error).replace("|", "/").replace(str(out), "file")
                        lines.append(
                            f"| {config.stem} | {format_name} | {entry.runtime} | {backend} | - | {' | '.join(numbers)} "
                            f"| {entry.bounds.get('float32', 0):.0e} | FAIL: {message} | {seconds:.1f} |"
                        )
                        print(lines[-1], flush=True)
                        continue
                    seconds = time.perf_counter() - start
                    assert result.verification is not None
                    v = result.verification
                    inputs = "data" if "spec's data" in v.inputs else "random"
                    lines.append(
                        f"| {config.stem} | {format_name} | {entry.runtime} | {backend} | {inputs} "
                        f"| {' | '.join(f'{worst(v, a):.1e}' for a in against)} "
                        f"| {v.rows[0].bound:.0e} | pass | {seconds:.1f} |"
                    )
                    print(lines[-1], flush=True)
                    _remove(out)
    total = time.perf_counter() - started
    summary = f"\n{len(lines) - 2} exports, {failures} failed, {total / 60:.1f} min in all.\n"
    Path(args.out).write_text("\n".join(lines) + "\n" + summary)
    print(summary)


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path) if path.is_dir() else path.unlink()


if __name__ == "__main__":
    main()
