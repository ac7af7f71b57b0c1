"""Run the archspec CLI and SIGKILL the process at a chosen point: ``killer.py OP:N ARGS...``.

OP:N kills the process at the N-th (1-based) occurrence of OP, counted over the whole run:

- ``checkpoint:N``  right after the N-th checkpoint is complete;
- ``replace:N``     right before the N-th file rename (inside a checkpoint write);
- ``fsync:N``       right before the N-th fsync (a file or a folder);
- ``unlink:N``      right before the N-th deletion of an old checkpoint file.

``none`` runs the CLI unchanged. A real SIGKILL: no finally block, no atexit, no flush.
"""

import os
import signal
import sys


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _counting(function, target: int):
    count = 0

    def wrapper(*args, **kwargs):
        nonlocal count
        count += 1
        if count == target:
            _die()
        return function(*args, **kwargs)

    return wrapper


def _after(function, target: int):
    count = 0

    def wrapper(*args, **kwargs):
        nonlocal count
        result = function(*args, **kwargs)
        count += 1
        if count == target:
            _die()
        return result

    return wrapper


def main() -> int:
    point, argv = sys.argv[1], sys.argv[2:]
    import pathlib

    import archspec.training.checkpoints as checkpoint
    from archspec.cli import main as cli

    if point != "none":
        op, number = point.split(":")
        number = int(number)
        if op == "checkpoint":
            # The trainer (keeper.py) looks write_checkpoint up in its module at every checkpoint.
            checkpoint.write_checkpoint = _after(checkpoint.write_checkpoint, number)
        elif op == "replace":
            os.replace = _counting(os.replace, number)
        elif op == "fsync":
            os.fsync = _counting(os.fsync, number)
        elif op == "unlink":
            pathlib.Path.unlink = _counting(pathlib.Path.unlink, number)
        else:
            raise SystemExit(f"unknown kill point {point!r}")
    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
