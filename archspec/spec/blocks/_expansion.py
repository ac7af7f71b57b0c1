"""Expansion of a document: every block use replaced by copies of the block's layers, ids
prefixed by the use (``encoder_2/attention``) and references between layers rewired."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from archspec.spec.blocks._definitions import Block, read_blocks
from archspec.spec.blocks._locations import BlockProblems, Locations, item_node, quoted
from archspec.spec.blocks._naming import copy_names, is_use, layer_names, repeat_count
from archspec.spec.blocks._parameters import NAME
from archspec.spec.blocks._references import Substitution, has_reference, reference_node
from archspec.spec.blocks._uses import arguments, check_use
from archspec.spec.common import written
from archspec.spec.source import LayerOrigin, SourceDocument, Use, suggest

MAX_EXPANDED_LAYERS = 10_000
"""More layers than this after expansion is refused (``repeat: 1000000`` would exhaust memory)."""


@dataclass
class _Entry:
    """A layer of a list being expanded, after parameter substitution."""

    index: int
    data: Any
    node: Node
    name: str = ""  # its id in the list (written, or the default)
    block: Block | None = None  # set for a block use that can be expanded
    is_use: bool = False
    skip: bool = False  # not expanded (a reference it holds could not be resolved)
    output: str = ""  # the expanded name of the tensor it produces


@dataclass(frozen=True)
class _Scope:
    """Where a layer list is expanded: the top level, or one copy of a block."""

    prefix: str  # "" at the top level, else "encoder_2/" ...
    inputs: dict[str, str]  # a block's input names -> outer tensors (empty at the top level)
    params: dict[str, Any] | None  # None at the top level, where references are refused
    uses: tuple[Use, ...]  # innermost first
    stack: tuple[str, ...]  # block names being expanded, outermost first
    first_source: str | None  # what a first layer without ``inputs`` reads

    @property
    def in_block(self) -> bool:
        return self.params is not None


@dataclass
class _Output:
    layers: list[Any] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # what the graph will call each layer
    origins: list[LayerOrigin] = field(default_factory=list)


def expand_blocks(document: SourceDocument) -> SourceDocument:
    """The document with its blocks expanded; the document itself when it uses none.

    Raises BlockProblems with every problem found in the blocks and their uses, located.
    """
    data = document.data
    layers = data.get("layers")
    uses_blocks = isinstance(layers, list) and any(
        isinstance(layer, dict) and layer.get("type") == "block" for layer in layers
    )
    if "blocks" not in data and not uses_blocks:
        return document
    return _Expander(document).run()


class _Expander:
    def __init__(self, document: SourceDocument):
        self.document = document
        self.locations = Locations(document)
        self.blocks: dict[str, Block] = {}
        self.defined: set[str] = set()  # block names written, including refused ones
        self.output = _Output()
        self.model_source: str | None = None  # what the first flat layer reads without ``inputs``
        self.top_outputs: dict[str, str] = {}  # top-level use id -> its output tensor
        self.pending: dict[str, str] = {}  # placeholder of a use expanded later -> its output
        self.too_large = False

    # --- the whole document ----------------------------------------------------------

    def run(self) -> SourceDocument:
        document, locations = self.document, self.locations
        root, data = document.root, document.data
        if not isinstance(root, MappingNode):  # parse_yaml only returns a mapping at the top level
            return document
        self.blocks, self.defined = read_blocks(locations, data.get("blocks"), locations.value_node(root, "blocks"))
        layers, layers_node = data.get("layers"), locations.value_node(root, "layers")
        new_layers: Any = layers
        new_layers_node = layers_node
        if isinstance(layers, list) and isinstance(layers_node, SequenceNode):
            inputs = data.get("inputs")
            model_inputs = [name for name in inputs if isinstance(name, str)] if isinstance(inputs, dict) else []
            self.model_source = model_inputs[0] if len(model_inputs) == 1 else None
            scope = _Scope("", {}, None, (), (), self.model_source)
            self.expand_list(layers, layers_node, scope, set(model_inputs))
            if self.too_large:
                message = f"expected at most {MAX_EXPANDED_LAYERS} layers once blocks are expanded, received more"
                locations.report(message, layers_node)
            self.resolve_pending()
            new_layers = self.output.layers
            new_layers_node = locations.sequence(self.output.nodes, layers_node)
        new_data: dict[str, Any] = {}
        entries: list[tuple[Node, Node]] = []
        for key, value in data.items():
            if key == "blocks":
                continue
            key_node, value_node = locations.keys[id(root)][key]
            if key == "layers":
                value, value_node = new_layers, new_layers_node
            elif key == "outputs" and isinstance(value, list) and isinstance(value_node, SequenceNode):
                renamed = [self.top_outputs.get(name, name) if isinstance(name, str) else name for name in value]
                if renamed != value:
                    value, value_node = renamed, locations.sequence(list(value_node.value), value_node)
            new_data[key] = value
            entries.append((key_node, value_node))
        new_root = locations.mapping(new_data, entries, root)
        expanded = SourceDocument(new_data, document.filename, new_root, locations.keys, tuple(self.output.origins))
        if locations.problems:
            raise BlockProblems(sorted(locations.problems, key=lambda p: (p.line or 0, p.column or 0)), expanded)
        return expanded

    def resolve_pending(self) -> None:
        """Replace the placeholders of forward references to block uses by the uses' outputs."""

        def final(name: str) -> str:
            seen = 0
            while name in self.pending and seen <= len(self.pending):
                name, seen = self.pending[name], seen + 1
            return name

        for layer in self.output.layers:
            if isinstance(layer, dict) and isinstance(layer.get("inputs"), list):
                layer["inputs"][:] = [final(name) if isinstance(name, str) else name for name in layer["inputs"]]
        for name, target in list(self.top_outputs.items()):
            self.top_outputs[name] = final(target)

    # --- a list of layers ------------------------------------------------------------

    def expand_list(self, layers: list[Any], node: SequenceNode, scope: _Scope, reserved: set[str]) -> str | None:
        """Append the expansion of ``layers`` to the output; return the name of the tensor the
        list produces (its ``output`` in a block, else its last layer)."""
        locations = self.locations
        entries: list[_Entry] = []
        for index, (layer, layer_node) in enumerate(zip(layers, node.value)):
            unresolved = False
            if scope.params is not None:
                substitution = Substitution(locations, scope.params, scope.uses)
                layer, layer_node = substitution.apply(layer, layer_node)
                unresolved = substitution.unresolved > 0
            elif has_reference(layer):
                where = reference_node(layer, layer_node, locations.keys) or layer_node
                locations.report("parameter references (${name}) are only allowed in the layers of a block", where)
                unresolved = True
            # A layer left with a reference is reported already: validation would only repeat it.
            entries.append(_Entry(index, layer, layer_node, is_use=is_use(layer), skip=unresolved))
        self.name_entries(entries, scope, reserved)
        local = {entry.name: entry for entry in entries}

        def rename(name: Any, name_node: Node | None) -> Any:
            if not isinstance(name, str):
                return name
            if name in scope.inputs:
                return scope.inputs[name]
            if name in local:
                return local[name].output
            if not scope.in_block:
                return name  # the graph reports an unknown name at the top level, located
            known = [*scope.inputs, *local]
            hint = suggest(name, known) or f"expected one of {quoted(known)}"
            locations.report(
                f"unknown input or layer id '{name}' in block '{scope.stack[-1]}'; {hint}", name_node, scope.uses
            )
            return name

        previous = scope.first_source
        for entry in entries:
            layer, layer_node = entry.data, entry.node
            sources: list[Any] | None = None
            if isinstance(layer, dict) and isinstance(layer.get("inputs"), list):
                inputs_node = locations.value_node(layer_node, "inputs")
                sources = [rename(name, item_node(inputs_node, k)) for k, name in enumerate(layer["inputs"])]
            if entry.skip:
                pass
            elif entry.block is not None:
                placeholder = entry.output
                entry.output = self.expand_use(entry, sources if sources is not None else [previous], scope)
                self.pending[placeholder] = entry.output
                if not scope.in_block:
                    self.top_outputs[entry.name] = entry.output
            elif entry.is_use:
                pass  # refused in name_entries; nothing to expand
            elif isinstance(layer, dict) and isinstance(layer_node, MappingNode):
                self.emit_layer(entry, sources, previous, scope)
            else:
                self.append(layer, layer_node, entry, scope)  # not a mapping: validation reports it
            previous = entry.output
            if self.too_large:
                return None

        if not scope.in_block:
            return previous
        block = self.blocks[scope.stack[-1]]
        wanted = block.output or entries[-1].name
        if wanted in local:
            return local[wanted].output
        hint = suggest(wanted, local) or f"expected one of {quoted(tuple(local))}"
        locations.report(
            f"blocks.{block.name}.output: unknown layer id '{wanted}'; {hint}", block.output_node, scope.uses
        )
        return None

    def name_entries(self, entries: list[_Entry], scope: _Scope, reserved: set[str]) -> None:
        """Each entry's id in its list, the output name it will have once expanded, and the
        block of each use; duplicate and malformed ids of uses and block layers reported."""
        locations = self.locations
        names = layer_names([entry.data for entry in entries], set(scope.inputs) | reserved)
        first_by_name: dict[str, _Entry] = {}
        for entry, name in zip(entries, names):
            entry.name = name
            if entry.is_use:
                entry.block = check_use(locations, self.blocks, self.defined, entry.data, entry.node, scope.uses)
            written_id = entry.data.get("id") if isinstance(entry.data, dict) else None
            strict = scope.in_block or entry.is_use  # the graph checks top-level layers itself
            if isinstance(written_id, str) and strict and not NAME.match(written_id):
                what = "a block use" if entry.is_use else "a layer in a block"
                message = (
                    f"id: expected an id made of letters, digits and '_' for {what}, received {written(written_id)}"
                )
                locations.report(message, locations.value_node(entry.node, "id"), scope.uses)
            if name in scope.inputs or name in reserved:
                if strict:
                    message = f"id '{name}' is already the name of an input"
                    locations.report(message, locations.value_node(entry.node, "id"), scope.uses)
            elif name in first_by_name:
                if strict or first_by_name[name].is_use:
                    first = first_by_name[name].index
                    message = f"duplicate layer id '{name}' (first used by layers[{first}])"
                    locations.report(message, locations.value_node(entry.node, "id"), scope.uses)
            else:
                first_by_name[name] = entry
            if entry.is_use:
                entry.output = f"\x00{scope.prefix}{name}"  # until the use is expanded (see resolve_pending)
            else:
                entry.output = scope.prefix + name if scope.in_block else name
        # A copy's name is the prefix of its layers: another layer or use may not take it.
        copies = {
            copy: entry
            for entry in entries
            if entry.is_use
            for copy in copy_names(entry.name, repeat_count(entry.data))
        }
        for entry in entries:
            for name in copy_names(entry.name, repeat_count(entry.data)) if entry.is_use else (entry.name,):
                owner = copies.get(name)
                if owner is not None and owner is not entry and name != owner.name:
                    message = f"id '{name}' is also the name of a copy of the block use layers[{owner.index}]"
                    locations.report(message, locations.value_node(entry.node, "id"), scope.uses)

    # --- one block use ---------------------------------------------------------------

    def expand_use(self, entry: _Entry, sources: list[Any], scope: _Scope) -> str:
        """Expand every copy of a use; return the name of the last copy's output tensor."""
        block, layer, node = entry.block, entry.data, entry.node
        assert block is not None  # only called for uses that check_use accepted
        locations = self.locations
        unexpanded = entry.output
        if block.name in scope.stack:
            cycle = " -> ".join([*scope.stack[scope.stack.index(block.name) :], block.name])
            message = f"block '{block.name}' uses itself ({cycle}); expected blocks that do not recur"
            locations.report(message, locations.value_node(node, "block"), scope.uses)
            return unexpanded
        if len(sources) != len(block.inputs) or any(not isinstance(source, str) for source in sources):
            received = len(sources) if all(isinstance(source, str) for source in sources) else 0
            names = ", ".join(block.inputs)
            message = f"block '{block.name}' takes {len(block.inputs)} input(s) ({names}), received {received}"
            locations.report(message, locations.value_node(node, "inputs"), scope.uses)
            return unexpanded
        values = arguments(locations, block, layer.get("with") or {}, node, scope.uses)
        if values is None or entry.skip:
            return unexpanded
        use = Use(block.name, node.start_mark.line + 1, node.start_mark.column + 1)
        current: list[str] = list(sources)
        for prefix in copy_names(entry.name, layer.get("repeat", 1)):
            inner = _Scope(
                prefix=f"{scope.prefix}{prefix}/",
                inputs=dict(zip(block.inputs, current)),
                params=values,
                uses=(use, *scope.uses),
                stack=(*scope.stack, block.name),
                first_source=current[0] if len(current) == 1 else None,
            )
            produced = self.expand_list(block.layers, block.layers_node, inner, set())
            if produced is None:
                return unexpanded
            current = [produced, *current[1:]]  # the next copy reads this one's output
        return current[0]

    # --- one plain layer -------------------------------------------------------------

    def emit_layer(self, entry: _Entry, sources: list[Any] | None, previous: str | None, scope: _Scope) -> None:
        layer, node = entry.data, entry.node
        assert isinstance(node, MappingNode)  # emit_layer is only called for mappings
        locations = self.locations
        new = dict(layer)
        entries = list(node.value)
        position = {key: k for k, key in enumerate(layer)}
        # Ids and inputs are written out only where the flat list would not imply them.
        if scope.in_block:
            locations.put(new, entries, position, "id", entry.output, node)
        if sources is not None:
            if sources != layer["inputs"]:
                inputs_node = locations.value_node(node, "inputs")
                children = list(inputs_node.value) if isinstance(inputs_node, SequenceNode) else []
                new["inputs"] = sources
                k = position["inputs"]
                entries[k] = (entries[k][0], locations.sequence(children, inputs_node or node))
        elif previous is not None:
            implied = self.output.names[-1] if self.output.names else self.model_source
            if previous != implied:
                locations.put(new, entries, position, "inputs", [previous], node)
        elif scope.in_block:
            block = scope.stack[-1]
            message = f"the first layer of block '{block}' must name its 'inputs' (the block has several inputs)"
            locations.report(message, node, scope.uses)
        self.append(new, locations.mapping(new, entries, node), entry, scope)

    def append(self, layer: Any, node: Node, entry: _Entry, scope: _Scope) -> None:
        if len(self.output.layers) >= MAX_EXPANDED_LAYERS:
            self.too_large = True
            return
        self.output.layers.append(layer)
        self.output.nodes.append(node)
        self.output.names.append(entry.output)
        self.output.origins.append(LayerOrigin(entry.index, scope.uses))
