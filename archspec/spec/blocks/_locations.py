"""Where expansion reads and writes: the YAML node of every value, the new nodes made for what
expansion writes, and the problems found, each placed on the node that wrote it."""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from archspec.errors import Problem, SpecError
from archspec.spec.source import LayerOrigin, SourceDocument, Use

Keys = dict[int, dict[Any, tuple[Node, Node]]]
"""For each mapping node (by ``id``): its keys -> (key node, value node)."""

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"


class BlockProblems(SpecError):
    """Mistakes in blocks or their uses; ``document`` is the expansion of everything else, so
    that validation can report its own mistakes in the same run."""

    def __init__(self, problems: list[Problem], document: SourceDocument):
        super().__init__(problems)
        self.document = document


class Locations:
    """The nodes of a document being expanded and the problems found in it."""

    def __init__(self, document: SourceDocument):
        self.document = document
        self.keys: Keys = dict(document.keys)
        self.problems: list[Problem] = []

    def report(self, message: str, node: Node | None, uses: tuple[Use, ...] = ()) -> None:
        line, column = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
        problem = Problem(
            LayerOrigin(0, uses).context(self.document.filename) + message, self.document.filename, line, column
        )
        if problem not in self.problems:  # the copies of a repeated block repeat its mistakes
            self.problems.append(problem)

    def value_node(self, node: Node | None, key: Any) -> Node | None:
        found = self.keys.get(id(node), {}).get(key) if node is not None else None
        return found[1] if found else node

    def key_node(self, node: Node | None, key: Any) -> Node | None:
        found = self.keys.get(id(node), {}).get(key) if node is not None else None
        return found[0] if found else node

    def mapping(self, data: dict[Any, Any], entries: list[tuple[Node, Node]], like: Node) -> MappingNode:
        node = MappingNode(
            _MAP_TAG, entries, like.start_mark, like.end_mark, flow_style=getattr(like, "flow_style", None)
        )
        self.keys[id(node)] = dict(zip(data, entries))
        return node

    def sequence(self, items: list[Node], like: Node) -> SequenceNode:
        node = SequenceNode(
            _SEQ_TAG, items, like.start_mark, like.end_mark, flow_style=getattr(like, "flow_style", None)
        )
        self.keys[id(node)] = {}
        return node

    def put(
        self,
        new: dict[str, Any],
        entries: list[tuple[Node, Node]],
        position: dict[Any, int],
        key: str,
        value: Any,
        node: Node,
    ) -> None:
        """Set ``new[key]`` to a value that expansion wrote; its YAML node is placed on the layer."""
        mark = node.start_mark
        value_node: Node
        if isinstance(value, list):
            value_node = self.sequence([ScalarNode(_STR_TAG, str(item), mark, mark) for item in value], node)
        else:
            value_node = ScalarNode(_STR_TAG, str(value), mark, mark)
        if key in position:
            entries[position[key]] = (entries[position[key]][0], value_node)
            new[key] = value
            return
        # A written id or inputs reads best first (after ``type``), as a user would write it.
        at = 1 if "type" in position else 0
        entries.insert(at, (ScalarNode(_STR_TAG, key, mark, mark), value_node))
        items = list(new.items())
        items.insert(at, (key, value))
        new.clear()
        new.update(items)
        position.clear()
        position.update({name: k for k, name in enumerate(new)})


def item_node(node: Node | None, index: int) -> Node | None:
    """The node of a list's item ``index``; the list's own node when there is none."""
    if isinstance(node, SequenceNode) and 0 <= index < len(node.value):
        return node.value[index]
    return node


def kind_of(value: Any) -> str:
    """What a value is, as a message says it (``a mapping``, ``null``)."""
    if value is None:
        return "null"
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(type(value), type(value).__name__)


def quoted(values: Any) -> str:
    return ", ".join(f"'{value}'" for value in values)
