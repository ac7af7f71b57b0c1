"""A plain-text table of a model: layer, type, output shape, parameters."""

from __future__ import annotations

from archspec.graph import ModelGraph
from archspec.resources import estimate_for_training, estimate_memory


def summary_rows(graph: ModelGraph) -> list[tuple[str, str, str, str, int]]:
    """(id, type, inputs, output shape, parameter count) for every input and layer.

    Layers copied from blocks (ids ``encoder_2/attention``) come in spec order under a row for
    each copy (``encoder_2``, type ``block``, with the parameters of all its layers), indented
    by nesting and named by their own part of the id."""
    rows = [(name, "input", "", str([None, *inp.shape]), 0) for name, inp in graph.spec.inputs.items()]
    nodes = list(graph.nodes)
    if any("/" in node.id for node in nodes):
        nodes.sort(key=lambda node: node.index)  # spec order keeps each copy's layers together
    totals: dict[str, int] = {}
    for node in nodes:
        parts = node.id.split("/")
        for depth in range(1, len(parts)):
            group = "/".join(parts[:depth])
            totals[group] = totals.get(group, 0) + node.param_count
    open_groups: list[str] = []
    for node in nodes:
        parts = node.id.split("/")
        groups = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
        shared = 0
        while shared < min(len(groups), len(open_groups)) and groups[shared] == open_groups[shared]:
            shared += 1
        for depth in range(shared, len(groups)):
            rows.append(("  " * depth + parts[depth], "block", "", "", totals[groups[depth]]))
        open_groups = groups
        name = "  " * len(groups) + parts[-1]
        rows.append((name, node.type, ", ".join(node.inputs), str([None, *node.output_shape]), node.param_count))
    return rows


def summary_table(graph: ModelGraph) -> str:
    rows = summary_rows(graph)
    header = ("layer", "type", "inputs", "output shape", "params")
    cells = [header] + [(r[0], r[1], r[2], r[3], f"{r[4]:,}") for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(
            cell.rjust(w) if i == 4 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()

    rule = "-" * len(line(header))
    trainable = graph.trainable_param_count
    total = graph.param_count
    footer = [
        rule,
        f"total parameters: {total:,}  (trainable {trainable:,}, non-trainable {total - trainable:,})",
        _memory_line(graph),
    ]
    return "\n".join([f"{graph.spec.name}", line(header), rule, *[line(r) for r in cells[1:]], *footer])


def _memory_line(graph: ModelGraph) -> str:
    if graph.spec.training is not None:
        estimate = estimate_for_training(graph, graph.spec.training)
    else:
        estimate = estimate_memory(graph, dtype="float32", batch_size=1, optimizer_slots=0)
    return f"training memory: {estimate.describe()}, training data not included"
