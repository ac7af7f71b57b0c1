"""A plain-text table of a model: layer, type, output shape, parameters."""

from __future__ import annotations

from archspec.graph import ModelGraph
from archspec.resources import estimate_for_training, estimate_memory


def summary_rows(graph: ModelGraph) -> list[tuple[str, str, str, str, int]]:
    """(id, type, inputs, output shape, parameter count) for every input and layer."""
    rows = [(name, "input", "", str([None, *inp.shape]), 0) for name, inp in graph.spec.inputs.items()]
    for node in graph.nodes:
        rows.append((node.id, node.type, ", ".join(node.inputs), str([None, *node.output_shape]), node.param_count))
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
