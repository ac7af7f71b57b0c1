"""A block use (``type: block``): its fields checked, and the values its ``with:`` gives the
block's parameters."""

from __future__ import annotations

from typing import Any

from yaml.nodes import Node

from archspec.spec.blocks._definitions import Block
from archspec.spec.blocks._locations import Locations, kind_of, quoted
from archspec.spec.blocks._parameters import check_value
from archspec.spec.common import written
from archspec.spec.source import Use, suggest

USE_FIELDS = ("type", "id", "inputs", "block", "repeat", "with")
"""The fields of a block use."""


def check_use(
    locations: Locations,
    blocks: dict[str, Block],
    defined: set[str],
    layer: dict[Any, Any],
    node: Node,
    uses: tuple[Use, ...],
) -> Block | None:
    """The block that ``layer`` uses, when the use can be expanded; its mistakes reported.

    ``defined`` names every block written, so that a use of a refused one is not called unknown.
    """
    ok = True
    for key in layer:
        if key not in USE_FIELDS:
            hint = suggest(str(key), USE_FIELDS) or f"allowed fields: {quoted(USE_FIELDS)}"
            locations.report(f"unknown field '{key}' in block use; {hint}", locations.key_node(node, key), uses)
            ok = False
    if "block" not in layer:
        locations.report("missing required field 'block' in block use (the name of a block)", node, uses)
        return None
    name = layer["block"]
    if not isinstance(name, str):
        locations.report(
            f"block: expected the name of a block, received {written(name)}", locations.value_node(node, "block"), uses
        )
        return None
    block = blocks.get(name)
    if block is None:
        if name not in defined:  # a defined block that was refused has its own problems
            known = f"defined blocks: {quoted(tuple(blocks))}" if blocks else "the spec defines no blocks"
            locations.report(
                f"unknown block '{name}'; {suggest(name, blocks) or known}", locations.value_node(node, "block"), uses
            )
        return None
    repeat = layer.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        locations.report(
            f"repeat: expected a positive integer, received {written(repeat)}",
            locations.value_node(node, "repeat"),
            uses,
        )
        ok = False
    given = layer.get("with", {})
    if not isinstance(given, dict):
        locations.report(
            f"with: expected a mapping of parameter values, received {kind_of(given)}",
            locations.value_node(node, "with"),
            uses,
        )
        ok = False
    inputs = layer.get("inputs")
    if inputs is not None and (not isinstance(inputs, list) or not inputs):
        locations.report(
            f"inputs: expected a list of input or layer ids, received {kind_of(inputs)}",
            locations.value_node(node, "inputs"),
            uses,
        )
        ok = False
    if not ok and isinstance(given, dict):
        arguments(locations, block, given, node, uses)  # report its mistakes in the same run
    return block if ok else None


def arguments(
    locations: Locations, block: Block, given: dict[Any, Any], node: Node, uses: tuple[Use, ...]
) -> dict[str, Any] | None:
    """The values of ``block``'s parameters for one use: ``with:`` checked, defaults filled in."""
    with_node = locations.value_node(node, "with")
    values: dict[str, Any] = {}
    ok = True
    for name, value in given.items():
        if name not in block.params:
            hint = suggest(str(name), block.params)
            known = (
                f"parameters of '{block.name}': {quoted(tuple(block.params))}"
                if block.params
                else f"block '{block.name}' has no parameters"
            )
            locations.report(
                f"with: unknown parameter '{name}'; {hint or known}", locations.key_node(with_node, name), uses
            )
            continue  # reported; the block can still be expanded, so its own mistakes show too
        param = block.params[name]
        checked, error = check_value(param.type, value, allow_null=not param.required and param.default is None)
        if error:
            locations.report(f"with.{name}: {error}", locations.value_node(with_node, name), uses)
            ok = False
        values[name] = checked
    for name, param in block.params.items():
        if name in given:
            continue
        if param.required:
            message = f"missing required parameter '{name}' ({param.type}) of block '{block.name}' in 'with'"
            locations.report(message, with_node, uses)
            ok = False
        values[name] = param.default
    return values if ok else None
