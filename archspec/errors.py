"""One error hierarchy for everything archspec refuses.

Every message says what was expected, what was received and, where it is known,
where (``FILE:LINE:COL`` for specs), in one wording: ``expected ..., received ...``
(``tests/backends/test_messages.py`` holds the code to it). One type per kind of
mistake: a bad argument is a ``UsageError``, bad data a ``DataError``, a bad file a
``CheckpointError``. The CLI prints ``str(error)`` and exits non-zero; it never
shows a traceback for an ``ArchSpecError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class ArchSpecError(Exception):
    """Base class of every error archspec raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One located problem in a spec document."""

    message: str
    file: str = "<spec>"
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        # One problem, one line: user text inside a message may hold line breaks.
        message = self.message.replace("\r", "\\r").replace("\n", "\\n")
        if self.line is None:
            return f"{self.file}: {message}"
        return f"{self.file}:{self.line}:{self.column or 1}: {message}"


class SpecError(ArchSpecError):
    """A spec document is invalid; carries every problem found, each located."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, (str, Problem)):
            problems = [problems if isinstance(problems, Problem) else Problem(problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ShapeError(SpecError):
    """A layer cannot accept the shape its inputs produce."""


class BackendUnavailableError(ArchSpecError):
    """A backend was asked for whose framework is not installed or is misconfigured."""


class DataError(ArchSpecError):
    """A data set is missing, corrupt, or does not fit the spec."""


class CheckpointError(ArchSpecError):
    """A weights or checkpoint file is missing, corrupt, or belongs to another model."""


class TrainingError(ArchSpecError):
    """Training cannot go on (for example the loss became NaN)."""


class ResourceError(ArchSpecError):
    """A run would need more memory than is available or allowed; raised before allocating it."""


class PortingError(ArchSpecError):
    """A model cannot be imported: its forward cannot be traced, or it uses layers or operations
    that archspec cannot express (the message lists every one of them, with its name and type)."""


class UnsupportedModelError(PortingError):
    """A model to import holds layers or operations archspec cannot express; ``unsupported`` lists
    every one of them as (name, type, reason), and nothing was written."""

    def __init__(self, unsupported: list[tuple[str, str, str]]):
        self.unsupported = list(unsupported)
        lines = [f"  {name} ({kind}): {reason}" for name, kind, reason in self.unsupported]
        super().__init__(
            f"expected layers and operations archspec can express, received {len(lines)} that it cannot:\n"
            + "\n".join(lines)
        )


class UsageError(ArchSpecError):
    """A command or function was called with arguments it cannot take."""

    exit_code = 2


def lookup(registry: Mapping[str, T], name: str, kind: str, owner: str = "") -> T:
    """The entry ``name`` of ``registry`` (layer builders, losses, activations, ...).

    An unknown name raises :class:`UsageError` that lists the known ones, in the
    project's wording: ``[{owner} ]expected a {kind} among ..., received '{name}'``.
    """
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        subject = f"{owner} expected" if owner else "expected"
        raise UsageError(f"{subject} a {kind} among {known}, received {name!r}") from None
