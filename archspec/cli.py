"""The ``archspec`` command line: validate, summary, expand, schema, train, compare, predict, data, export.

Bad input never produces a traceback: every ``ArchSpecError`` becomes its
message on stderr and an exit code (1 for invalid specs and data, 2 for usage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from archspec.api import expand, load_document, load_with_graph
from archspec.backend import BACKENDS
from archspec.checks import spec_warnings
from archspec.errors import ArchSpecError, SpecError, UsageError
from archspec.exporting.command import add_parser as add_export_parser
from archspec.porting.command import add_parser as add_import_parser
from archspec.spec.schema import spec_json_schema
from archspec.summary import summary_table
from archspec.weights import atomic_write_bytes


def _cmd_validate(args) -> int:
    failed = 0
    for path in args.specs:
        try:
            spec, graph = load_with_graph(path)
        except ArchSpecError as error:
            failed += 1
            print(error, file=sys.stderr)
            continue
        print(f"{path}: ok ({spec.name}: {len(graph.nodes)} layers, {graph.param_count:,} parameters)")
        warnings = spec_warnings(graph)
        if warnings:  # legal but wasteful: located like problems, the spec stays valid (exit 0)
            filename = str(Path(path))
            document = load_document(Path(path).read_bytes(), filename)  # again, only to place the warnings
            for warning in warnings:
                print(warning.located(document), file=sys.stderr)
    return 1 if failed else 0


def _cmd_summary(args) -> int:
    graph = load_with_graph(args.spec)[1]
    print(summary_table(graph))
    return 0


def _cmd_expand(args) -> int:
    print(dump_flat_spec(expand(args.spec)), end="")
    return 0


def dump_flat_spec(data: dict) -> str:
    """YAML of a spec document: mappings in block style, lists of plain values on one line."""

    class Dumper(yaml.SafeDumper):
        pass

    def represent_list(dumper, items):
        flow = all(not isinstance(item, (dict, list)) for item in items)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)

    Dumper.add_representer(list, represent_list)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _cmd_schema(args) -> int:
    schema = spec_json_schema()
    text = json.dumps(schema, indent=2)
    if args.out:
        atomic_write_bytes(args.out, (text + "\n").encode())
    else:
        print(text)
    return 0


def _cmd_train(args) -> int:
    # Training loads numpy's reference, data and checkpoint code: only for the commands that train,
    # so that `archspec validate` stays quick.
    from archspec.training import train
    from archspec.training.checkpoints import has_checkpoint
    from archspec.training.cluster import DEFAULT_TIMEOUT, manual_cluster

    out = args.out or args.resume
    workers = args.workers
    if args.rank is not None or args.cluster is not None:
        # A worker started by hand: describe it the way torchrun / TF_CONFIG would, then join.
        if args.rank is None or args.cluster is None:
            raise UsageError("expected --rank and --cluster together (a worker started by hand)")
        addresses = [a.strip() for a in args.cluster.split(",") if a.strip()]
        cluster = manual_cluster(args.backend, args.rank, addresses, workers, args.worker_timeout or DEFAULT_TIMEOUT)
        os.environ.update(cluster.environment())
        workers = None
    try:
        result = train(
            args.spec,
            backend=args.backend,
            epochs=args.epochs,
            max_steps=args.max_steps,
            dtype=args.dtype,
            device=args.device,
            data_dir=args.data_dir,
            out=out,
            progress=not args.quiet,
            compiled=args.compiled,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            memory_cap=args.memory_cap,
            workers=workers,
            worker_timeout=args.worker_timeout,
            logdir=args.logdir,
        )
    except KeyboardInterrupt:
        if out and has_checkpoint(out):
            print(
                f"archspec: interrupted; continue from the last checkpoint with: "
                f"archspec train {args.spec} --resume {out}",
                file=sys.stderr,
            )
            return 130
        raise
    rank = result.config.get("rank", 0)
    if rank:
        print(f"worker {rank} of {result.config['workers']}: done ({result.steps} steps); rank 0 reports the metrics")
        return 0
    print(result.table())
    if result.config.get("stopped", "epochs") not in ("epochs", "max_steps"):
        print(f"stopped: {result.config['stopped']}")
    if out:
        print(f"wrote {out}/metrics.json, history.csv, weights.safetensors and the checkpoint {out}/checkpoint/")
    if args.logdir:
        print(f"wrote TensorBoard event files to {args.logdir} (tensorboard --logdir {args.logdir})")
    return 0


def _cmd_compare(args) -> int:
    from archspec.comparison import compare  # see _cmd_train: kept out of `archspec validate`

    backends = None if args.backends is None else tuple(b.strip() for b in args.backends.split(",") if b.strip())
    report = compare(
        args.spec,
        backends=backends,
        epochs=args.epochs,
        max_steps=args.max_steps,
        dtype=args.dtype,
        data_dir=args.data_dir,
        out=args.out,
        progress=not args.quiet,
        logdir=args.logdir,
    )
    print(report.table())
    if args.out:
        print(f"wrote {args.out}/report.md, results.json, curves.png")
    if args.logdir:
        print(f"wrote TensorBoard event files to {args.logdir}/<backend> (tensorboard --logdir {args.logdir})")
    return 0


def _cmd_predict(args) -> int:
    from archspec.prediction import predict  # see _cmd_train: kept out of `archspec validate`

    result = predict(args.spec, args.weights, args.data, backend=args.backend, out=args.out)
    if args.out:
        print(f"wrote {args.out}: {len(result.samples)} predictions")
    else:
        print(result.to_csv(), end="")
    return 0


def _cmd_data_fetch(args) -> int:
    from archspec.data import fetch_mnist  # the data package: kept out of `archspec validate`

    if args.dataset != "mnist":
        raise UsageError(f"unknown data set '{args.dataset}': expected mnist")
    path = fetch_mnist(args.dir)
    print(f"mnist: verified in {path}")
    return 0


def _cmd_data_install(args) -> int:
    from archspec.data import install_mnist_from  # the data package: kept out of `archspec validate`

    path = install_mnist_from(args.source, args.dir)
    print(f"mnist: copied from {args.source} and verified in {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archspec", description="One YAML architecture, trained identically on PyTorch and TensorFlow."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("validate", help="check spec files; every problem (and warning) as FILE:LINE:COL")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.set_defaults(run=_cmd_validate)

    p = commands.add_parser("summary", help="layers, output shapes and parameter counts of a spec")
    p.add_argument("spec", metavar="SPEC")
    p.set_defaults(run=_cmd_summary)

    p = commands.add_parser("expand", help="print the spec with its blocks expanded (the flat spec validation reads)")
    p.add_argument("spec", metavar="SPEC")
    p.set_defaults(run=_cmd_expand)

    p = commands.add_parser("schema", help="print the JSON Schema of the spec format")
    p.add_argument("--out", help="write it to this file instead")
    p.set_defaults(run=_cmd_schema)

    def training_options(p):
        p.add_argument("spec", metavar="SPEC")
        p.add_argument("--epochs", type=_positive, help="override training.epochs")
        p.add_argument("--max-steps", type=_positive, help="stop after this many optimizer steps")
        p.add_argument("--dtype", choices=("float32", "float64"), help="override training.dtype")
        p.add_argument("--data-dir", help="folder holding the data set files")
        p.add_argument("--out", help="output folder")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument(
            "--logdir",
            metavar="DIR",
            help="write TensorBoard event files here (step loss, learning rate, gradient norm, history, spec)"
            + ("; one run per backend" if p.prog.endswith("compare") else ""),
        )

    p = commands.add_parser("train", help="train a spec on one backend")
    training_options(p)
    p.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override training.device")
    p.add_argument("--compiled", action="store_true", help="compile the step (torch.compile / XLA)")
    p.add_argument(
        "--checkpoint-every",
        type=_non_negative,
        metavar="N",
        help="with --out: also checkpoint every N steps (default 0: at the end of every epoch only)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue from the last complete checkpoint in RUN_DIR (the --out of the interrupted run)",
    )
    p.add_argument(
        "--memory-cap",
        metavar="SIZE",
        help="refuse a run estimated to need more memory than this, e.g. 4GiB (default: $ARCHSPEC_MEMORY_CAP, else MemAvailable)",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="train data-parallel in N local worker processes "
        "(torch DDP / TF MultiWorkerMirroredStrategy / jax.distributed); "
        "batch_size stays the global batch",
    )
    p.add_argument(
        "--worker-timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="how long a worker waits for a lost peer before the run stops (default 30)",
    )
    p.add_argument("--rank", type=_non_negative, help="start one worker by hand: its rank (with --cluster)")
    p.add_argument(
        "--cluster",
        metavar="HOST:PORT[,...]",
        help="with --rank: torch, jax: the coordinator's address (and --workers N); "
        "tensorflow: every worker's address in rank order",
    )
    p.set_defaults(run=_cmd_train)

    p = commands.add_parser("compare", help="train a spec on every installed backend and compare")
    training_options(p)
    p.add_argument(
        "--backends",
        metavar="NAME,NAME,...",
        help=f"comma-separated, from {','.join(BACKENDS)} (default: every one whose framework is installed)",
    )
    p.set_defaults(run=_cmd_compare)

    p = commands.add_parser("predict", help="run a trained model on a new data file (CSV, NPZ, images)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--weights", required=True, metavar="RUN_DIR/weights.safetensors", help="the run's weights")
    p.add_argument("--data", required=True, metavar="FILE", help="a file (or image folder) of the run's data format")
    p.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0])
    p.add_argument("--out", metavar="PREDS.csv", help="write the predictions here (default: standard output)")
    p.set_defaults(run=_cmd_predict)

    add_import_parser(commands)  # archspec import MODEL --out DIR (archspec/porting/command.py)

    p = commands.add_parser("data", help="data sets: fetch or install")
    data = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = data.add_parser("fetch", help="download a data set and verify its checksums")
    q.add_argument("dataset", choices=("mnist",))
    q.add_argument("--dir", help="destination folder (default: $ARCHSPEC_DATA_DIR or the user cache)")
    q.set_defaults(run=_cmd_data_fetch)
    q = data.add_parser("install", help="copy a local copy of a data set and verify it")
    q.add_argument("dataset", choices=("mnist",))
    q.add_argument("source", help="folder holding the four IDX files (gzipped or raw)")
    q.add_argument("--dir", help="destination folder (default: $ARCHSPEC_DATA_DIR or the user cache)")
    q.set_defaults(run=_cmd_data_install)
    add_export_parser(commands)
    return parser


def _whole_number(text: str, minimum: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, received {value}")
    return value


def _positive(text: str) -> int:
    return _whole_number(text, 1, "a positive integer")


def _non_negative(text: str) -> int:
    return _whole_number(text, 0, "a non-negative integer")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, received {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The command line owns its process: keep TensorFlow's C++ start-up logging quiet
    # unless the user asked for it (the library itself never sets environment variables).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.run(args)
    except ArchSpecError as error:
        # Spec problems are already located lines (FILE:LINE:COL: ...); others get a prefix.
        print(str(error) if isinstance(error, SpecError) else f"archspec: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("archspec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
