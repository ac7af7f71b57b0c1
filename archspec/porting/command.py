"""``archspec import``: a Keras ``.keras`` file, or a torch module built by the user's factory,
as DIR/spec.yaml and DIR/weights.safetensors, written only after the proof passes."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import numpy as np
import yaml

from archspec.api import load
from archspec.errors import UsageError
from archspec.porting import Imported, import_keras, torch_importer
from archspec.weights import atomic_write_bytes, save_weights

HELP = "import a Keras model file or a torch module as a spec and weights, and prove the port"
DESCRIPTION = """Import MODEL.keras (loaded with Keras' safe_mode=True: a Lambda layer is refused
without running it), or PATH.py:FACTORY, a torch module that FACTORY() builds; that form
RUNS the Python file you name (give --input-shape, without the batch axis, in the module's
own layout, e.g. 1,28,28 for an NCHW image; the spec then takes it channels-last). The spec is
compiled on every backend and compared with the original in float64 and float32 (the proof).
DIR/spec.yaml and DIR/weights.safetensors are written only when the proof passes."""


def add_parser(commands) -> None:
    """The ``import`` subcommand, on the CLI's subparsers."""
    p = commands.add_parser("import", help=HELP, description=DESCRIPTION)
    p.add_argument("source", metavar="MODEL", help="MODEL.keras, or PATH.py:FACTORY for a torch module")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for spec.yaml and weights.safetensors")
    p.add_argument("--input-shape", type=_shape, help="torch only: one example input's shape, e.g. 1,28,28")
    p.set_defaults(run=run)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes separated by commas, received {text!r}")
    return shape


def _import(args) -> Imported:
    source = str(args.source)
    if source.endswith(".keras"):
        if args.input_shape is not None:
            raise UsageError("expected no --input-shape for a Keras model (its inputs have shapes), received one")
        if not Path(source).is_file():
            raise UsageError(f"expected a Keras model file, received {source!r}, which does not exist")
        return import_keras(_porting_tensorflow().load_keras_file(source))
    path, _, factory = source.rpartition(":")
    if not path.endswith(".py") or not factory.isidentifier():
        raise UsageError(f"expected MODEL.keras or PATH.py:FACTORY, received {source!r}")
    if args.input_shape is None:
        raise UsageError("expected --input-shape for a torch module (e.g. --input-shape 1,28,28), received none")
    if not Path(path).is_file():
        raise UsageError(f"expected a Python file, received {path!r}, which does not exist")
    from_torch = torch_importer()  # before the user's code runs
    namespace = runpy.run_path(path)  # the user's own code, which they named
    if not callable(namespace.get(factory)):
        raise UsageError(f"expected {path} to define a callable {factory}, received none")
    example = np.random.default_rng(0).standard_normal((1, *args.input_shape)).astype(np.float32)
    return from_torch(namespace[factory](), example)


def _porting_tensorflow():
    from archspec.porting import _porting_module  # the backend module that loads .keras files

    return _porting_module("tensorflow")


def run(args) -> int:
    from archspec.porting.proof import prove  # on first use: the reference and the data loaders

    imported = _import(args)
    report = prove(imported)
    print(report)
    if not report.passed:
        print(f"archspec: the proof failed: nothing written to {args.out}", file=sys.stderr)
        return 1
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"expected a folder to write into, received {str(out)!r} ({error.strerror})") from None
    text = yaml.safe_dump(imported.document, sort_keys=False, default_flow_style=None)
    spec = load(text)
    save_weights(imported.weights, out / "weights.safetensors", spec, f"imported from {imported.original.framework}")
    atomic_write_bytes(out / "spec.yaml", text.encode())
    print(f"wrote {out / 'spec.yaml'} and {out / 'weights.safetensors'}")
    return 0
