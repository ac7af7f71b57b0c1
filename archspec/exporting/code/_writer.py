"""What the two code formats share: Python names for the spec's tensors, literals laid out as
``ruff format`` lays them out, the metadata constants, writing the file and its weights, and
importing a written file back.

The generated files are read by people, so every name comes from the spec (a node id becomes a
variable and a layer attribute; a block copy's ``encoder_2/attention`` becomes ``encoder_2__attention``).
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from archspec.errors import UsageError
from archspec.weights import atomic_write_bytes, serialize_safetensors

if TYPE_CHECKING:  # annotations only
    from archspec.exporting import ExportMetadata
    from archspec.graph import Head, ModelGraph, Node

LINE = 120  # the project's ruff line length
INDENT = "    "


def python_name(name: str, taken: set[str]) -> str:
    """A valid, unused Python identifier for ``name`` (it joins ``taken``)."""
    base = re.sub(r"\W", "_", name.replace("/", "__"))
    if not base or base[0].isdigit():
        base = f"t_{base}"
    candidate = base
    while keyword.iskeyword(candidate) or candidate in taken:
        candidate += "_"
    taken.add(candidate)
    return candidate


def literal(value: object) -> str:
    """``repr`` of plain data, with the double quotes ``ruff format`` uses."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        items = [literal(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no literal for {type(value).__name__}")


def assignment(target: str, value: object, indent: str = "") -> list[str]:
    """``target = value`` on one line when it fits, else one item a line with trailing commas."""
    line = f"{indent}{target} = {literal(value)}"
    if len(line) <= LINE or not isinstance(value, (list, dict)) or not value:
        return [line]
    opening, closing = ("[", "]") if isinstance(value, list) else ("{", "}")
    items = value if isinstance(value, list) else [f"{literal(k)}: {literal(v)}" for k, v in value.items()]
    body = [f"{indent}{INDENT}{item if isinstance(value, dict) else literal(item)}," for item in items]
    return [f"{indent}{target} = {opening}", *body, f"{indent}{closing}"]


def call(head: str, arguments: list[str], indent: str) -> list[str]:
    """``head(arguments)`` on one line when it fits, else one argument a line."""
    line = f"{indent}{head}({', '.join(arguments)})"
    if len(line) <= LINE:
        return [line]
    return [f"{indent}{head}(", *(f"{indent}{INDENT}{a}," for a in arguments), f"{indent})"]


def _top_level_split(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and strings."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def statement(target: str, expression: str, indent: str, comment: str = "") -> list[str]:
    """``target = expression`` laid out as ruff format lays it out: one line when it fits; else the
    last call's arguments one a line (a trailing comma keeps them so); else in parentheses."""
    line = f"{indent}{target} = {expression}" + (f"  # {comment}" if comment else "")
    if len(line) <= LINE:
        return [line]
    above = [f"{indent}# {comment}"] if comment else []
    line = f"{indent}{target} = {expression}"
    if len(line) <= LINE:
        return [*above, line]
    if expression.endswith(")"):
        depth = 0
        for i in range(len(expression) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(expression[i], 0)
            if depth == 0:
                head, inner = expression[:i], expression[i + 1 : -1]
                break
        if head and head[-1] not in " (" and "(" not in head:
            return above + call(f"{target} = {head}", _top_level_split(inner), indent)
    return [*above, f"{indent}{target} = (", f"{indent}{INDENT}{expression}", f"{indent})"]


@dataclass
class Tensors:
    """Variable names of the spec's tensors in a generated ``forward`` (or model builder), and of
    the masks that mark padded steps (``{name}_mask``)."""

    names: dict[str, str] = field(default_factory=dict)
    masks: dict[str, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)

    def add(self, tensor: str) -> str:
        self.names[tensor] = python_name(tensor, self.taken)
        return self.names[tensor]

    def add_mask(self, tensor: str) -> str:
        self.masks[tensor] = python_name(f"{self.names[tensor]}_mask", self.taken)
        return self.masks[tensor]

    def __getitem__(self, tensor: str) -> str:
        return self.names[tensor]


def propagate_mask(
    tensors: Tensors,
    assign: Callable[..., None],
    node: Node,
    ones: str,
    concatenate: str,
    both: Callable[[str, str], str],
) -> None:
    """Give ``node``'s output the mask the graph says (``node.mask_source``), in either
    framework's syntax: ``ones`` (``{tensor}``: all steps valid), ``concatenate`` (``{parts}``:
    masks along the step axis), ``both`` (the AND of two masks). ``assign(target, expression,
    comment)`` writes a line."""
    source = node.mask_source
    if source is None or source == "create":
        return
    if source == "input":
        tensors.masks[node.id] = tensors.masks[node.inputs[0]]
        return
    if source == "steps":
        mask = tensors.add_mask(node.id)
        parts = [tensors.masks.get(name) or ones.format(tensor=tensors[name]) for name in node.inputs]
        assign(mask, concatenate.format(parts=", ".join(parts)))
        return
    present = list(dict.fromkeys(tensors.masks[name] for name in node.inputs if name in tensors.masks))
    if len(present) == 1:
        tensors.masks[node.id] = present[0]
        return
    mask = tensors.add_mask(node.id)
    combined = present[0]
    for other in present[1:]:
        combined = both(combined, other)
    assign(mask, combined, "valid where every masked input is valid")


def docstring_lines(metadata: ExportMetadata, graph: ModelGraph, framework: str) -> list[str]:
    """The module docstring every generated file starts with."""
    name = graph.spec.name or "model"
    return [
        f'"""Model {literal(name)}, written out as plain {framework} by archspec {metadata.archspec_version}.',
        "",
        "Generated code: it imports nothing from archspec. `load_model()` builds the model and loads",
        "the weights file beside this one; inputs are channels-last, as in the spec. Behaviour that",
        f"plain {framework} lacks (archspec's dropout masks, its mask rules) is written out below.",
        '"""',
    ]


def constant_lines(metadata: ExportMetadata, seed: int) -> list[str]:
    """The metadata as module constants (``SPEC_HASH``, ``INPUTS``, ...)."""
    inputs = {name: [list(shape), dtype] for name, (shape, dtype) in metadata.inputs.items()}
    lines = [
        *assignment("SPEC_HASH", metadata.spec_hash),
        *assignment("ARCHSPEC_VERSION", metadata.archspec_version),
        "# Input name -> [shape (None: the batch), dtype]; channels-last.",
        *assignment("INPUTS", inputs),
        *assignment("OUTPUTS", list(metadata.outputs)),
        *assignment("CLASS_NAMES", metadata.class_names),
        "# The dropout masks depend on it (archspec's neutral random stream).",
        *assignment("SEED", seed),
        "# The weights beside this file, under its name: model.py reads model.safetensors.",
        'WEIGHTS_FILE = Path(__file__).with_suffix(".safetensors")',
    ]
    return lines


def loss_blocks(graph: ModelGraph, one_loss: Callable[[str, str, Head], list[str]]) -> list[list[str]]:
    """The file's ``loss_function``: ``one_loss(function name, loss name, head)`` writes one output's;
    with several outputs, one function per output with a loss and a ``loss_function(outputs,
    targets)`` summing them with the spec's loss weights (docs/semantics.md, "Several outputs")."""
    training = graph.spec.training
    if training is None or not graph.heads:
        return []
    if len(graph.heads) == 1:
        return [one_loss("loss_function", training.loss_of(graph.heads[0].output), graph.heads[0])]
    taken: set[str] = set()
    functions, terms = [], []
    for index, head in enumerate(graph.heads):
        if not training.names_loss(head.output):
            continue
        name = python_name(f"{head.output}_loss", taken)
        functions.append(one_loss(name, training.loss_of(head.output), head))
        terms.append(f"{training.loss_weight_of(head.output)!r} * {name}(outputs[{index}], targets[{index}])")
    combined = [
        "def loss_function(outputs, targets):",
        f'{INDENT}"""The step loss: the sum over the outputs of loss weight * loss (outputs, targets in OUTPUTS order)."""',
        f"{INDENT}return {' + '.join(terms)}",
    ]
    return [*functions, combined]


def blocks(*parts: Iterable[str]) -> str:
    """Top-level blocks separated by two blank lines, as ruff format wants."""
    texts = ["\n".join(part) for part in parts if part]
    return "\n\n\n".join(texts) + "\n"


def weights_path(out: Path) -> Path:
    """The weights file written beside the code file ``out``."""
    return out.with_suffix(".safetensors")


def write_files(out: Path, text: str, arrays: Mapping[str, np.ndarray], metadata: ExportMetadata) -> None:
    """The code at ``out`` and its weights beside it, each written whole (atomically)."""
    if out.suffix != ".py":
        raise UsageError(f"expected a code file name ending in .py, received {str(out)!r}")
    info = {"format": "archspec-code", "spec_hash": metadata.spec_hash, "archspec_version": metadata.archspec_version}
    atomic_write_bytes(weights_path(out), serialize_safetensors(dict(arrays), info))
    atomic_write_bytes(out, text.encode("utf-8"))


def import_file(path: Path) -> ModuleType:
    """Import the generated file at ``path`` as a fresh module (never cached in ``sys.modules``)."""
    name = f"_archspec_generated_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"expected a Python file, received {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look their module up while it runs
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module
