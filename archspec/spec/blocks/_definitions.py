"""The ``blocks:`` section: each block definition read as written and checked, with its
parameters, inputs, layers and output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yaml.nodes import Node, SequenceNode

from archspec.spec.blocks._locations import Locations, item_node, kind_of, quoted
from archspec.spec.blocks._parameters import NAME, PARAM_TYPES, Param, check_value
from archspec.spec.blocks._references import check_references
from archspec.spec.common import written
from archspec.spec.source import suggest

BLOCK_FIELDS = ("params", "inputs", "layers", "output")
"""The fields of a block definition."""

PARAM_FIELDS = ("type", "default")
"""The fields of a parameter written as a mapping."""


@dataclass(frozen=True)
class Block:
    """A block definition as written (raw layer mappings, with their YAML nodes)."""

    name: str
    params: dict[str, Param]
    inputs: tuple[str, ...]
    layers: list[Any]
    layers_node: SequenceNode
    output: str | None
    output_node: Node | None


def read_blocks(locations: Locations, section: Any, node: Node | None) -> tuple[dict[str, Block], set[str]]:
    """The blocks of a ``blocks:`` section that can be used, and the names of all blocks
    written, including those refused (a use of one of these is not reported as unknown)."""
    blocks: dict[str, Block] = {}
    defined: set[str] = set()
    if section is None:
        return blocks, defined
    if not isinstance(section, dict):
        locations.report(f"blocks: expected a mapping of block names to blocks, received {kind_of(section)}", node)
        return blocks, defined
    for name, body in section.items():
        if not isinstance(name, str) or not NAME.match(name):
            message = f"blocks: expected block names made of letters, digits and '_', received {written(name)}"
            locations.report(message, locations.key_node(node, name))
            continue
        defined.add(name)
        block = _read_block(locations, name, body, locations.value_node(node, name))
        if block is not None:
            blocks[name] = block
    return blocks, defined


def _read_block(locations: Locations, name: str, body: Any, node: Node | None) -> Block | None:
    where = f"blocks.{name}"
    if not isinstance(body, dict):
        locations.report(
            f"{where}: expected a mapping with 'layers' (and 'params', 'inputs', 'output'), received {kind_of(body)}",
            node,
        )
        return None
    ok = True
    for key in body:
        if key not in BLOCK_FIELDS:
            hint = suggest(str(key), BLOCK_FIELDS) or f"allowed fields: {quoted(BLOCK_FIELDS)}"
            locations.report(f"{where}: unknown field '{key}' in block; {hint}", locations.key_node(node, key))
            ok = False
    params = _read_params(locations, where, body.get("params"), locations.value_node(node, "params"))
    inputs: tuple[str, ...] = ("input",)
    if "inputs" in body:
        raw, inputs_node = body["inputs"], locations.value_node(node, "inputs")
        if not isinstance(raw, list) or not raw:
            locations.report(
                f"{where}.inputs: expected a non-empty list of input names, received {kind_of(raw)}", inputs_node
            )
            ok = False
        else:
            for k, item in enumerate(raw):
                if not isinstance(item, str) or not NAME.match(item):
                    message = f"{where}.inputs[{k}]: expected a name made of letters, digits and '_', received {written(item)}"
                    locations.report(message, item_node(inputs_node, k))
                    ok = False
                elif raw.index(item) != k:
                    locations.report(f"{where}.inputs[{k}]: duplicate input name '{item}'", item_node(inputs_node, k))
                    ok = False
            inputs = tuple(str(item) for item in raw)
    layers, layers_node = body.get("layers"), locations.value_node(node, "layers")
    if "layers" not in body:
        locations.report(f"{where}: missing required field 'layers' in block", node)
        ok = False
    elif not isinstance(layers, list) or not layers or not isinstance(layers_node, SequenceNode):
        locations.report(
            f"{where}.layers: expected a non-empty list of layers, received {kind_of(layers)}", layers_node
        )
        ok = False
    output, output_node = body.get("output"), locations.value_node(node, "output")
    if output is not None and not isinstance(output, str):
        locations.report(f"{where}.output: expected a layer id of the block, received {written(output)}", output_node)
        ok = False
    if isinstance(layers, list) and isinstance(layers_node, SequenceNode):
        # Against every parameter written, valid or not: a refused one has its own problem.
        written_params = body.get("params")
        names = set(written_params) if isinstance(written_params, dict) else set()
        check_references(locations, name, names, layers, layers_node)
    if params is None or not ok or not isinstance(layers, list) or not isinstance(layers_node, SequenceNode):
        return None
    return Block(name, params, inputs, layers, layers_node, output, output_node)


def _read_params(locations: Locations, where: str, raw: Any, node: Node | None) -> dict[str, Param] | None:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        locations.report(
            f"{where}.params: expected a mapping of parameter names to types, received {kind_of(raw)}", node
        )
        return None
    params: dict[str, Param] = {}
    ok = True
    for name, definition in raw.items():
        path, definition_node = f"{where}.params.{name}", locations.value_node(node, name)
        if not isinstance(name, str) or not NAME.match(name):
            message = (
                f"{where}.params: expected parameter names made of letters, digits and '_', received {written(name)}"
            )
            locations.report(message, locations.key_node(node, name))
            ok = False
            continue
        param = _read_param(locations, path, definition, definition_node)
        if param is None:
            ok = False
        else:
            params[name] = param
    return params if ok else None


def _read_param(locations: Locations, path: str, definition: Any, node: Node | None) -> Param | None:
    if isinstance(definition, str):
        definition, type_node = {"type": definition}, node  # ``width: int``: a required parameter
    elif isinstance(definition, dict):
        type_node = locations.value_node(node, "type")
        unknown = [key for key in definition if key not in PARAM_FIELDS]
        for key in unknown:
            hint = suggest(str(key), PARAM_FIELDS) or f"allowed fields: {quoted(PARAM_FIELDS)}"
            locations.report(f"{path}: unknown field '{key}' in parameter; {hint}", locations.key_node(node, key))
        if unknown:
            return None
    else:
        message = f"{path}: expected a type ({', '.join(PARAM_TYPES)}) or a mapping with 'type' and 'default', received {kind_of(definition)}"
        locations.report(message, node)
        return None
    kind = definition.get("type")
    if kind not in PARAM_TYPES:
        message = f"{path}.type: expected one of {quoted(PARAM_TYPES)}, received {written(kind)}"
        suggestion = suggest(str(kind), PARAM_TYPES)
        locations.report(f"{message}; {suggestion}" if suggestion else message, type_node)
        return None
    if "default" not in definition:
        return Param(kind, required=True)
    default, error = check_value(kind, definition["default"], allow_null=True)
    if error:
        locations.report(f"{path}.default: {error}", locations.value_node(node, "default"))
        return None
    return Param(kind, required=False, default=default)
