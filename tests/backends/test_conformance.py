"""Every layer type of the catalogue is implemented everywhere it must be, and the README says so.

For each layer type and each registered backend: a builder, a numpy reference function, a layout
entry for every parameter the layer declares, and a parity case (``tests/parity/support.py``).
"""

from __future__ import annotations

import dataclasses
import importlib
import types

import pytest
from parity.support import LAYER_CASES, covered_layer_types

from archspec.api import load_with_graph
from archspec.backend import BACKENDS, REGISTRY
from archspec.errors import ArchSpecError, BackendUnavailableError
from archspec.graph import Node, layer_types
from archspec.reference.layers import REFERENCE_LAYERS
from archspec.support import builders, support_matrix


def parity_nodes() -> dict[str, list[Node]]:
    """Layer type -> the nodes of that type in the parity cases (their parameters are the layer's)."""
    nodes: dict[str, list[Node]] = {}
    for document in LAYER_CASES.values():
        _, graph = load_with_graph(document)
        for node in graph.nodes:
            nodes.setdefault(node.type, []).append(node)
    return nodes


def layout_problems(backend: str, nodes: list[Node]) -> list[str]:
    """What ``backend``'s layout cannot place among the parameters of ``nodes``."""
    layout = importlib.import_module(f"{REGISTRY[backend].package}.layout")
    problems = []
    for node in nodes:
        try:
            slots = layout.node_slots(node)
        except ArchSpecError as error:
            problems.append(str(error))
            continue
        placed = [slot.canonical for slot in slots]
        for param in node.params:
            if node.canonical_name(param) not in placed:
                problems.append(f"{node.type}: no layout entry for '{param.name}' on backend '{backend}'")
    return problems


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_layer_type_is_implemented_everywhere(backend):
    built = builders(backend)
    cases = covered_layer_types()
    nodes = parity_nodes()
    problems = []
    for layer in layer_types():
        if layer not in built:
            problems.append(f"{layer}: no builder on backend '{backend}' (backends/{backend}/layers.py BUILDERS)")
        if layer not in REFERENCE_LAYERS:
            problems.append(f"{layer}: no numpy reference function (archspec/reference/layers/ REFERENCE_LAYERS)")
        if layer not in cases:
            problems.append(f"{layer}: no parity case (tests/parity/support.py LAYER_CASES)")
        problems += layout_problems(backend, nodes.get(layer, []))
    unknown = sorted(built - set(layer_types()))
    if unknown:
        problems.append(f"backend '{backend}' has builders for types the spec does not know: {unknown}")
    assert not problems, "\n".join(dict.fromkeys(problems))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_layer_type_without_layout_is_named(backend):
    """A layer type missing from a layout table fails with its name, its parameter's and the backend's."""
    layout = importlib.import_module(f"{REGISTRY[backend].package}.layout")
    gru = parity_nodes()["gru"][0]
    unknown = dataclasses.replace(gru, layer=types.SimpleNamespace(type="conv3d"))
    with pytest.raises(BackendUnavailableError, match=f"^conv3d: no weight layout on backend '{backend}'"):
        layout.node_slots(unknown)


def test_readme_support_matrix_is_current(root_dir):
    readme = (root_dir / "README.md").read_text()
    assert support_matrix() in readme, "README's support matrix differs from `python -m archspec.support`"
