"""Parameter references (``${param}``): replaced by values in each copy of a block, and checked
against the block's parameters where the block is defined."""

from __future__ import annotations

import re
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from archspec.spec.blocks._locations import Keys, Locations, item_node, kind_of, quoted
from archspec.spec.common import written
from archspec.spec.source import Use, suggest

REFERENCE = re.compile(r"\$\{([^}]*)\}")
WHOLE_REFERENCE = re.compile(r"^\$\{([^}]*)\}$")


class Substitution:
    """Replaces the references of one block copy's layers by its parameter values, counting
    those it could not replace (a layer holding one is not expanded further)."""

    def __init__(self, locations: Locations, params: dict[str, Any], uses: tuple[Use, ...]):
        self.locations = locations
        self.params = params
        self.uses = uses
        self.unresolved = 0

    def apply(self, value: Any, node: Node) -> tuple[Any, Node]:
        """``value`` with ``${param}`` references replaced; new nodes wherever something changed."""
        if isinstance(value, str):
            if "${" not in value:
                return value, node
            whole = WHOLE_REFERENCE.match(value)
            if whole:
                if whole.group(1) in self.params:
                    return self.params[whole.group(1)], node  # the reference's node: its line is reported
                self.unresolved += 1  # reported where the block is defined (check_references)
                return value, node
            return REFERENCE.sub(lambda match: self.interpolate(match, node), value), node
        if isinstance(value, dict) and isinstance(node, MappingNode):
            entries = self.locations.keys.get(id(node), {})
            pairs = {key: self.apply(item, entries[key][1]) for key, item in value.items()}
            if all(pairs[key][0] is item and pairs[key][1] is entries[key][1] for key, item in value.items()):
                return value, node
            new_value = {key: pair[0] for key, pair in pairs.items()}
            new_entries = [(entries[key][0], pair[1]) for key, pair in pairs.items()]
            return new_value, self.locations.mapping(new_value, new_entries, node)
        if isinstance(value, list) and isinstance(node, SequenceNode):
            items = [self.apply(item, node_of_item) for item, node_of_item in zip(value, node.value)]
            if all(new is old for (new, _), old in zip(items, value)):
                return value, node
            return [item for item, _ in items], self.locations.sequence([new_node for _, new_node in items], node)
        return value, node

    def interpolate(self, match: re.Match[str], node: Node) -> str:
        """One ``${param}`` inside longer text: the parameter's value as text."""
        name = match.group(1)
        if name not in self.params:
            self.unresolved += 1  # reported where the block is defined (check_references)
            return match.group(0)
        value = self.params[name]
        if isinstance(value, (list, dict)) or value is None:
            message = (
                f"parameter '{name}' is {kind_of(value)}: expected it as a whole value ('${{{name}}}'), not inside text"
            )
            self.locations.report(message, node, self.uses)
            self.unresolved += 1
            return match.group(0)
        return value if isinstance(value, str) else written(value)


def check_references(locations: Locations, name: str, params: set[Any], value: Any, node: Node | None) -> None:
    """Report every ``${x}`` in a block's layers that names no parameter of the block."""
    if isinstance(value, str):
        for reference in REFERENCE.findall(value):
            if reference not in params:
                known = (
                    f"parameters of '{name}': {quoted(tuple(params))}"
                    if params
                    else f"block '{name}' has no parameters"
                )
                locations.report(
                    f"blocks.{name}: unknown parameter '${{{reference}}}'; {suggest(reference, params) or known}",
                    node,
                )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_references(locations, name, params, item, locations.value_node(node, key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            check_references(locations, name, params, item, item_node(node, k))


def has_reference(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(has_reference(item) for item in value.values())
    if isinstance(value, list):
        return any(has_reference(item) for item in value)
    return False


def reference_node(value: Any, node: Node, keys: Keys) -> Node | None:
    """The node of the first ``${...}`` inside ``value``."""
    if isinstance(value, str):
        return node if "${" in value else None
    children: list[tuple[Any, Node]] = []
    if isinstance(value, dict) and isinstance(node, MappingNode):
        entries = keys.get(id(node), {})
        children = [(item, entries[key][1]) for key, item in value.items() if key in entries]
    elif isinstance(value, list) and isinstance(node, SequenceNode):
        children = list(zip(value, node.value))
    for item, child in children:
        found = reference_node(item, child, keys)
        if found is not None:
            return found
    return None
