"""``archspec export``: the command-line face of ``archspec.exporting.exporter.export``.

``cli.py`` calls ``add_parser``; the formats come from the registry (``formats.FORMATS``).
"""

from __future__ import annotations

import argparse

from archspec.backend import BACKENDS
from archspec.exporting.formats import FORMATS


def add_parser(commands) -> None:
    """Add the ``export`` subcommand to ``commands`` (an argparse subparsers object)."""
    p = commands.add_parser(
        "export",
        help="write a trained model as ONNX, torch.export, SavedModel or LiteRT, verified in its runtime",
        description="Write SPEC with WEIGHTS in FORMAT at PATH, run the file in its own runtime on a batch of "
        "inputs, compare it with the numpy reference and every backend, and keep it only if it passes.",
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "--weights", required=True, metavar="WEIGHTS", help="a weights.safetensors file (from either backend)"
    )
    p.add_argument("--format", required=True, metavar="FORMAT", help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--out", required=True, metavar="PATH", help="the file (a folder for saved_model) to write")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=BACKENDS[0],
        help="the backend whose model the weights are read through (default: %(default)s)",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), help="default: the weights' dtype")
    p.add_argument("--no-verify", action="store_true", help="skip verification (the file is then unchecked)")
    p.add_argument("--data-dir", help="folder holding the spec's data set files (for verification inputs)")
    p.add_argument("--samples", type=_positive, default=64, help="verification batch size (default: %(default)s)")
    p.set_defaults(run=_cmd_export)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _cmd_export(args) -> int:
    from archspec.exporting.exporter import ExportError, export  # loads no framework before the arguments are checked
    from archspec.exporting.verification import table

    try:
        result = export(
            args.spec,
            args.weights,
            format=args.format,
            out=args.out,
            backend=args.backend,
            dtype=args.dtype,
            verify=not args.no_verify,
            data_dir=args.data_dir,
            samples=args.samples,
        )
    except ExportError as error:
        if error.verification is not None:
            entry = FORMATS[args.format]
            print(table(entry.name, entry.runtime, error.verification))
        raise
    if result.verification is None:
        print(f"wrote {result.path} ({result.format}, {result.dtype}): UNVERIFIED (--no-verify), the file is unchecked")
        return 0
    print(table(result.format, result.runtime, result.verification))
    print(
        f"wrote {result.path} ({result.format}, {result.dtype}, weights through {result.backend}): verified in "
        f"{result.runtime} on {result.verification.inputs}"
    )
    return 0


__all__ = ["add_parser"]
