"""Load a YAML spec safely and remember where every value came from.

``parse_yaml`` refuses what ``yaml.safe_load`` lets through silently (duplicate
keys, alias bombs, several documents) and ``SourceDocument.locate`` turns a
pydantic error location into the ``line:column`` a reader can jump to.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from archspec.errors import Problem, SpecError

MAX_SOURCE_CHARS = 5_000_000
MAX_ALIAS_EXPANSION = 10_000  # nodes that aliases may add on top of the written ones
MAX_NESTING_DEPTH = 100

Location = tuple[str | int, ...]
"""A path from a document's root to a value: keys and list indexes (``("layers", 3, "units")``)."""

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SpecLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loading that yields only JSON-like values (dates stay strings)."""


def _refuse_tag(loader: SafeConstructor, node: Node) -> Any:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    message = f"unsupported tag '{tag}'; expected plain mappings, lists, strings, numbers, booleans or null"
    raise ConstructorError(None, None, message, node.start_mark)


def _checked(construct: Any) -> Any:
    """Report a scalar that cannot be read as its tag says (``!!int x``, an int of
    5,000 digits) as a located ConstructorError instead of a bare ValueError."""

    def construct_checked(loader: SafeConstructor, node: Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, KeyError, TypeError, OverflowError):
            message = f"cannot read {str(node.value)[:40]!r} as {node.tag.rsplit(':', 1)[-1]}"
            raise ConstructorError(None, None, message, node.start_mark) from None

    return construct_checked


for _tag in ("null", "bool", "int", "float", "str"):
    _tag = f"tag:yaml.org,2002:{_tag}"
    _SpecLoader.add_constructor(_tag, _checked(_SpecLoader.yaml_constructors[_tag]))
for _tag in ("timestamp", "value"):
    _SpecLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", SafeConstructor.construct_yaml_str)
for _tag in ("binary", "set", "omap", "pairs"):
    _SpecLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def suggest(word: str, options: Iterable[str]) -> str | None:
    """Return ``did you mean 'x'?`` for the closest option, or None when nothing is close."""
    matches = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


@dataclass(frozen=True)
class Use:
    """Where a block was used: its name and the line and column of the ``type: block`` layer."""

    block: str
    line: int
    column: int


@dataclass(frozen=True)
class LayerOrigin:
    """Where a layer of an expanded spec was written: its index in the list that holds it
    (the spec's ``layers`` or a block's) and the block uses that copied it, innermost first."""

    index: int
    uses: tuple[Use, ...] = ()

    def context(self, filename: str) -> str:
        """``in block 'inner' (used at f:40:9) in block 'encoder' (used at f:12:7): ``, or nothing."""
        if not self.uses:
            return ""
        return " ".join(f"in block '{u.block}' (used at {filename}:{u.line}:{u.column})" for u in self.uses) + ": "


@dataclass(frozen=True)
class SourceDocument:
    """A parsed spec: plain ``data`` plus the YAML nodes it was built from.

    After block expansion (``archspec.spec.blocks``) ``origins`` holds, for each layer of
    ``data["layers"]``, where it was written, so problems name the block and the use."""

    data: dict[str, Any]
    filename: str = "<spec>"
    _root: Node | None = field(default=None, repr=False, compare=False)
    # id(mapping node) -> {constructed key: (key node, value node)}
    _keys: dict[int, dict[Any, tuple[Node, Node]]] = field(default_factory=dict, repr=False, compare=False)
    origins: tuple[LayerOrigin, ...] = field(default=(), repr=False, compare=False)

    @property
    def root(self) -> Node | None:
        return self._root

    @property
    def keys(self) -> dict[int, dict[Any, tuple[Node, Node]]]:
        return self._keys

    def locate(self, loc: Location, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the value at ``loc``, or of its key when ``key`` is true.

        Parts that do not exist stop the walk at the deepest node found, except a
        discriminator tag (``'dense'`` in ``('layers', 3, 'dense', 'units')``), which is skipped.
        """
        node = self._root
        if node is None:
            return (1, 1)
        for index, part in enumerate(loc):
            if isinstance(node, MappingNode):
                entries = self._keys.get(id(node), {})
                entry = entries.get(part)
                if entry is None:
                    type_entry = entries.get("type")
                    if type_entry is not None and getattr(type_entry[1], "value", None) == str(part):
                        continue
                    return _position(node)
                if key and index == len(loc) - 1:
                    return _position(entry[0])
                if index + 1 < len(loc) and loc[index + 1] == "[key]":  # pydantic's dict-key errors
                    return _position(entry[0])
                node = entry[1]
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
            else:
                break
        return _position(node)

    def problem(
        self,
        message: str,
        loc: Location = (),
        *,
        key: bool = False,
        path: list[str | int] | None = None,
        lead: str = "",
    ) -> Problem:
        """A Problem in this document, placed at ``loc``; ``path`` (the field in the user's
        terms, ``["layers", 3, "units"]``) is written before the message, ``lead``
        (``"warning: "``) before everything.

        A layer copied from a block is named by its index in the block, after the uses that
        copied it: ``in block 'encoder' (used at f:12:7): layers[2].units: ...``."""
        line, column = self.locate(loc, key=key)
        context = ""
        if len(loc) >= 2 and loc[0] == "layers" and isinstance(loc[1], int) and 0 <= loc[1] < len(self.origins):
            origin = self.origins[loc[1]]
            context = origin.context(self.filename)
            if path and len(path) >= 2 and path[0] == "layers":
                path = ["layers", origin.index, *path[2:]]
        if path:
            message = f"{dotted(path)}: {message}"
        return Problem(lead + context + message, self.filename, line, column)


def dotted(path: Iterable[str | int]) -> str:
    """``["layers", 3, "units"]`` -> ``layers[3].units``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _position(node: Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def parse_yaml(source: str | bytes, filename: str = "<spec>") -> SourceDocument:
    """Parse one YAML mapping; raise SpecError (located where possible) for anything else."""
    text = _decode(source, filename)
    if len(text) > MAX_SOURCE_CHARS:
        message = f"spec is too large: expected at most {MAX_SOURCE_CHARS} characters, received {len(text)}"
        raise SpecError(Problem(message, filename))
    try:
        _check_events(text, filename)
        loader = _SpecLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise SpecError(Problem("empty document: expected a mapping of spec fields", filename, 1, 1))
            keys, duplicates = _index_keys(loader, root, filename)
            if duplicates:
                raise SpecError(duplicates)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = f"invalid YAML: {error.problem or error.context}"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise SpecError(Problem(message, filename, line, column)) from None
    except yaml.reader.ReaderError as error:
        line, column = _line_column(text, error.position)
        character = error.character if isinstance(error.character, int) else ord(error.character)
        message = f"invalid YAML: character U+{character:04X} is not allowed"
        raise SpecError(Problem(message, filename, line, column)) from None
    except yaml.YAMLError as error:
        raise SpecError(Problem(f"invalid YAML: {error}", filename)) from None
    document = SourceDocument(data, filename, root, keys)
    _check_top_level(document)
    return document


def _decode(source: str | bytes, filename: str) -> str:
    try:
        if isinstance(source, str):
            source.encode("utf-8")  # a lone surrogate would break the parser later
            return source
        return source.decode("utf-8-sig")
    except UnicodeError as error:
        found = repr(source[error.start : error.end])  # type: ignore[attr-defined]
        line, column = _line_column(source, error.start)  # type: ignore[attr-defined]
        raise SpecError(Problem(f"expected UTF-8 text, received {found}", filename, line, column)) from None


def _line_column(text: str | bytes, offset: int) -> tuple[int, int]:
    before = text[:offset]
    if isinstance(before, str):
        breaks, last_break = before.count("\n"), before.rfind("\n")
    else:
        breaks, last_break = before.count(b"\n"), before.rfind(b"\n")
    return (breaks + 1, offset - (last_break + 1) + 1)


def _check_events(text: str, filename: str) -> None:
    """Stream the events once, before building anything, to refuse documents that are
    several, too deep, recursive, or that would grow exponentially through aliases."""
    anchored: dict[str, tuple[int, int]] = {}  # anchor -> (nodes once expanded, height)
    open_nodes: list[list[Any]] = []  # [anchor, nodes so far, height so far]
    expanded = documents = 0

    def refuse(message: str, mark: Any) -> SpecError:
        return SpecError(Problem(message, filename, mark.line + 1, mark.column + 1))

    too_deep = f"nesting is too deep: expected at most {MAX_NESTING_DEPTH} levels"

    for event in yaml.parse(text, Loader=_SpecLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise refuse("expected a single YAML document, found a second one here", event.start_mark)
            continue
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            open_nodes.append([event.anchor, 1, 1])
            if len(open_nodes) > MAX_NESTING_DEPTH:
                raise refuse(too_deep, event.start_mark)
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, size, height = open_nodes.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size, height = event.anchor, 1, 0
        elif isinstance(event, yaml.AliasEvent):
            if any(node[0] == event.anchor for node in open_nodes):
                raise refuse(f"alias '*{event.anchor}' refers to a node that contains it", event.start_mark)
            if event.anchor not in anchored:
                raise refuse(f"alias '*{event.anchor}' is not defined before use", event.start_mark)
            anchor = None
            size, height = anchored[event.anchor]
            expanded += size
            if expanded > MAX_ALIAS_EXPANSION:
                message = f"too many alias expansions: aliases would add more than {MAX_ALIAS_EXPANSION} nodes"
                raise refuse(message, event.start_mark)
            if len(open_nodes) + height > MAX_NESTING_DEPTH:
                raise refuse(too_deep, event.start_mark)
        else:
            continue
        if anchor is not None:
            anchored[anchor] = (size, height)
        if open_nodes:
            open_nodes[-1][1] += size
            open_nodes[-1][2] = max(open_nodes[-1][2], height + 1)


def _index_keys(loader: Any, root: Node, filename: str) -> tuple[dict, list[Problem]]:
    """Map every mapping node's keys to their nodes, and collect duplicate keys."""
    keys: dict[int, dict[Any, tuple[Node, Node]]] = {}
    duplicates: list[Problem] = []
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node) in keys or isinstance(node, ScalarNode):
            continue
        if isinstance(node, SequenceNode):
            keys[id(node)] = {}
            pending.extend(reversed(node.value))
            continue
        entries: dict[Any, tuple[Node, Node]] = {}
        keys[id(node)] = entries
        for key_node, value_node in node.value:
            pending.append(value_node)
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node)
            if key in entries:
                first_line = entries[key][0].start_mark.line + 1
                message = f"duplicate key '{key_node.value}' (first defined at line {first_line})"
                duplicates.append(Problem(message, filename, *_position(key_node)))
            else:
                entries[key] = (key_node, value_node)
    duplicates.sort(key=lambda p: (p.line, p.column))
    return keys, duplicates


def _check_top_level(document: SourceDocument) -> None:
    data = document.data
    if not isinstance(data, dict):
        message = f"expected a mapping of spec fields at the top level, received {_kind(data)}"
        raise SpecError(document.problem(message))
    for key in data:
        if not isinstance(key, str):
            message = f"expected text keys at the top level, received {_kind(key)} key {key!r}"
            raise SpecError(document.problem(message, (key,), key=True))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}
    return names.get(type(value), type(value).__name__)
