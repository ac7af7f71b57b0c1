"""Reusable blocks: expand a spec's ``blocks:`` section and its ``type: block`` layers into the
flat list of layers that validation sees, keeping where every value was written.

A block is data, not a template: its layers are copied with ``${param}`` references replaced by
values, its layer ids prefixed by the use (``encoder_2/attention``) and its references rewired.
The expanded document keeps the YAML nodes of the block definition, so a mistake inside a block
is placed on the line that wrote it and names the use that instantiated it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from archspec.errors import Problem, SpecError
from archspec.spec.common import written
from archspec.spec.source import LayerOrigin, SourceDocument, Use, suggest

PARAM_TYPES = ("int", "float", "str", "bool", "list")
"""The types a block parameter may have."""

MAX_EXPANDED_LAYERS = 10_000
"""More layers than this after expansion is refused (``repeat: 1000000`` would exhaust memory)."""

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REFERENCE = re.compile(r"\$\{([^}]*)\}")
WHOLE_REFERENCE = re.compile(r"^\$\{([^}]*)\}$")

_USE_FIELDS = ("type", "id", "inputs", "block", "repeat", "with")
_BLOCK_FIELDS = ("params", "inputs", "layers", "output")
_PARAM_FIELDS = ("type", "default")
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean", "list": "a list"}

Keys = dict[int, dict[Any, tuple[Node, Node]]]


@dataclass(frozen=True)
class Param:
    """One parameter of a block: its type and, unless required, its default."""

    type: str
    required: bool
    default: Any = None


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


class BlockProblems(SpecError):
    """Mistakes in blocks or their uses; ``document`` is the expansion of everything else, so
    that validation can report its own mistakes in the same run."""

    def __init__(self, problems: list[Problem], document: SourceDocument):
        super().__init__(problems)
        self.document = document


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


def layer_names(layers: list[Any], reserved: set[str]) -> list[str]:
    """The id of each layer of a list: as written, else the graph's default for a layer
    (``dense_1``: ``graph._default_ids``), else for a block use the block's name (then
    ``encoder_2``, ...), skipping names already taken by ``reserved`` or a use's copies."""
    names = [layer["id"] if isinstance(layer, dict) and isinstance(layer.get("id"), str) else "" for layer in layers]
    taken = {name for name, layer in zip(names, layers) if name and not _is_use(layer)} | reserved
    counters: dict[str, int] = {}
    for k, layer in enumerate(layers):
        if names[k] or _is_use(layer) or not isinstance(layer, dict):
            continue
        kind = str(layer.get("type"))
        while True:
            counters[kind] = counters.get(kind, 0) + 1
            candidate = f"{kind}_{counters[kind]}"
            if candidate not in taken:
                break
        taken.add(candidate)
        names[k] = candidate
    taken |= {name for name in names if name}
    taken |= {
        copy
        for name, layer in zip(names, layers)
        if name and _is_use(layer)
        for copy in copy_names(name, _repeat(layer))
    }
    for k, layer in enumerate(layers):
        if names[k] or not _is_use(layer):
            continue
        base = str(layer.get("block"))
        candidate, number = base, 1
        while candidate in taken or any(copy in taken for copy in copy_names(candidate, _repeat(layer))):
            number += 1
            candidate = f"{base}_{number}"
        taken |= {candidate, *copy_names(candidate, _repeat(layer))}
        names[k] = candidate
    return names


def copy_names(use_id: str, repeat: int) -> tuple[str, ...]:
    """The prefix of each copy of a use: ``encoder`` once; ``encoder_1``, ``encoder_2``... when repeated."""
    if repeat <= 1:
        return (use_id,)
    return tuple(f"{use_id}_{k}" for k in range(1, repeat + 1))


class _Expander:
    def __init__(self, document: SourceDocument):
        self.document = document
        self.keys: Keys = dict(document.keys)
        self.problems: list[Problem] = []
        self.blocks: dict[str, Block] = {}
        self.defined: set[str] = set()  # block names written, including refused ones
        self.output = _Output()
        self.model_source: str | None = None  # what the first flat layer reads without ``inputs``
        self.top_outputs: dict[str, str] = {}  # top-level use id -> its output tensor
        self.pending: dict[str, str] = {}  # placeholder of a use expanded later -> its output
        self.too_large = False
        self.unresolved = 0  # parameter references that could not be replaced

    # --- reporting and nodes ---------------------------------------------------------

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

    # --- the whole document ----------------------------------------------------------

    def run(self) -> SourceDocument:
        document = self.document
        root, data = document.root, document.data
        if not isinstance(root, MappingNode):  # parse_yaml only returns a mapping at the top level
            return document
        self.read_blocks(data.get("blocks"), self.value_node(root, "blocks"))
        layers, layers_node = data.get("layers"), self.value_node(root, "layers")
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
                self.report(message, layers_node)
            self.resolve_pending()
            new_layers = self.output.layers
            new_layers_node = self.sequence(self.output.nodes, layers_node)
        new_data: dict[str, Any] = {}
        entries: list[tuple[Node, Node]] = []
        for key, value in data.items():
            if key == "blocks":
                continue
            key_node, value_node = self.keys[id(root)][key]
            if key == "layers":
                value, value_node = new_layers, new_layers_node
            elif key == "outputs" and isinstance(value, list) and isinstance(value_node, SequenceNode):
                renamed = [self.top_outputs.get(name, name) if isinstance(name, str) else name for name in value]
                if renamed != value:
                    value, value_node = renamed, self.sequence(list(value_node.value), value_node)
            new_data[key] = value
            entries.append((key_node, value_node))
        new_root = self.mapping(new_data, entries, root)
        expanded = SourceDocument(new_data, document.filename, new_root, self.keys, tuple(self.output.origins))
        if self.problems:
            raise BlockProblems(sorted(self.problems, key=lambda p: (p.line or 0, p.column or 0)), expanded)
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

    # --- the blocks section ----------------------------------------------------------

    def read_blocks(self, section: Any, node: Node | None) -> None:
        if section is None:
            return
        if not isinstance(section, dict):
            self.report(f"blocks: expected a mapping of block names to blocks, received {_kind(section)}", node)
            return
        for name, body in section.items():
            if not isinstance(name, str) or not NAME.match(name):
                message = f"blocks: expected block names made of letters, digits and '_', received {written(name)}"
                self.report(message, self.key_node(node, name))
                continue
            self.defined.add(name)
            block = self.read_block(name, body, self.value_node(node, name))
            if block is not None:
                self.blocks[name] = block

    def read_block(self, name: str, body: Any, node: Node | None) -> Block | None:
        where = f"blocks.{name}"
        if not isinstance(body, dict):
            self.report(
                f"{where}: expected a mapping with 'layers' (and 'params', 'inputs', 'output'), received {_kind(body)}",
                node,
            )
            return None
        ok = True
        for key in body:
            if key not in _BLOCK_FIELDS:
                hint = suggest(str(key), _BLOCK_FIELDS) or f"allowed fields: {_quoted(_BLOCK_FIELDS)}"
                self.report(f"{where}: unknown field '{key}' in block; {hint}", self.key_node(node, key))
                ok = False
        params = self.read_params(where, body.get("params"), self.value_node(node, "params"))
        inputs: tuple[str, ...] = ("input",)
        if "inputs" in body:
            raw, inputs_node = body["inputs"], self.value_node(node, "inputs")
            if not isinstance(raw, list) or not raw:
                self.report(
                    f"{where}.inputs: expected a non-empty list of input names, received {_kind(raw)}", inputs_node
                )
                ok = False
            else:
                for k, item in enumerate(raw):
                    if not isinstance(item, str) or not NAME.match(item):
                        message = f"{where}.inputs[{k}]: expected a name made of letters, digits and '_', received {written(item)}"
                        self.report(message, _item(inputs_node, k))
                        ok = False
                    elif raw.index(item) != k:
                        self.report(f"{where}.inputs[{k}]: duplicate input name '{item}'", _item(inputs_node, k))
                        ok = False
                inputs = tuple(str(item) for item in raw)
        layers, layers_node = body.get("layers"), self.value_node(node, "layers")
        if "layers" not in body:
            self.report(f"{where}: missing required field 'layers' in block", node)
            ok = False
        elif not isinstance(layers, list) or not layers or not isinstance(layers_node, SequenceNode):
            self.report(f"{where}.layers: expected a non-empty list of layers, received {_kind(layers)}", layers_node)
            ok = False
        output, output_node = body.get("output"), self.value_node(node, "output")
        if output is not None and not isinstance(output, str):
            self.report(f"{where}.output: expected a layer id of the block, received {written(output)}", output_node)
            ok = False
        if isinstance(layers, list) and isinstance(layers_node, SequenceNode):
            # Against every parameter written, valid or not: a refused one has its own problem.
            written_params = body.get("params")
            names = set(written_params) if isinstance(written_params, dict) else set()
            self.check_references(name, names, layers, layers_node)
        if params is None or not ok or not isinstance(layers, list) or not isinstance(layers_node, SequenceNode):
            return None
        return Block(name, params, inputs, layers, layers_node, output, output_node)

    def read_params(self, where: str, raw: Any, node: Node | None) -> dict[str, Param] | None:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.report(f"{where}.params: expected a mapping of parameter names to types, received {_kind(raw)}", node)
            return None
        params: dict[str, Param] = {}
        ok = True
        for name, definition in raw.items():
            path, definition_node = f"{where}.params.{name}", self.value_node(node, name)
            if not isinstance(name, str) or not NAME.match(name):
                message = f"{where}.params: expected parameter names made of letters, digits and '_', received {written(name)}"
                self.report(message, self.key_node(node, name))
                ok = False
                continue
            param = self.read_param(path, definition, definition_node)
            if param is None:
                ok = False
            else:
                params[name] = param
        return params if ok else None

    def read_param(self, path: str, definition: Any, node: Node | None) -> Param | None:
        if isinstance(definition, str):
            definition, type_node = {"type": definition}, node  # ``width: int``: a required parameter
        elif isinstance(definition, dict):
            type_node = self.value_node(node, "type")
            unknown = [key for key in definition if key not in _PARAM_FIELDS]
            for key in unknown:
                hint = suggest(str(key), _PARAM_FIELDS) or f"allowed fields: {_quoted(_PARAM_FIELDS)}"
                self.report(f"{path}: unknown field '{key}' in parameter; {hint}", self.key_node(node, key))
            if unknown:
                return None
        else:
            message = f"{path}: expected a type ({', '.join(PARAM_TYPES)}) or a mapping with 'type' and 'default', received {_kind(definition)}"
            self.report(message, node)
            return None
        kind = definition.get("type")
        if kind not in PARAM_TYPES:
            message = f"{path}.type: expected one of {_quoted(PARAM_TYPES)}, received {written(kind)}"
            suggestion = suggest(str(kind), PARAM_TYPES)
            self.report(f"{message}; {suggestion}" if suggestion else message, type_node)
            return None
        if "default" not in definition:
            return Param(kind, required=True)
        default, error = check_value(kind, definition["default"], allow_null=True)
        if error:
            self.report(f"{path}.default: {error}", self.value_node(node, "default"))
            return None
        return Param(kind, required=False, default=default)

    # --- a list of layers ------------------------------------------------------------

    def expand_list(self, layers: list[Any], node: SequenceNode, scope: _Scope, reserved: set[str]) -> str | None:
        """Append the expansion of ``layers`` to the output; return the name of the tensor the
        list produces (its ``output`` in a block, else its last layer)."""
        entries: list[_Entry] = []
        for index, (layer, layer_node) in enumerate(zip(layers, node.value)):
            unresolved = self.unresolved
            if scope.in_block:
                layer, layer_node = self.substitute(layer, layer_node, scope)
            elif _has_reference(layer):
                where = _reference_node(layer, layer_node, self.keys) or layer_node
                self.report("parameter references (${name}) are only allowed in the layers of a block", where)
                self.unresolved += 1
            # A layer left with a reference is reported already: validation would only repeat it.
            entries.append(_Entry(index, layer, layer_node, is_use=_is_use(layer), skip=self.unresolved > unresolved))
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
            hint = suggest(name, known) or f"expected one of {_quoted(known)}"
            self.report(
                f"unknown input or layer id '{name}' in block '{scope.stack[-1]}'; {hint}", name_node, scope.uses
            )
            return name

        previous = scope.first_source
        for entry in entries:
            layer, layer_node = entry.data, entry.node
            sources: list[Any] | None = None
            if isinstance(layer, dict) and isinstance(layer.get("inputs"), list):
                inputs_node = self.value_node(layer_node, "inputs")
                sources = [rename(name, _item(inputs_node, k)) for k, name in enumerate(layer["inputs"])]
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
        wanted = scope_block(self, scope).output or entries[-1].name
        if wanted in local:
            return local[wanted].output
        block = scope_block(self, scope)
        hint = suggest(wanted, local) or f"expected one of {_quoted(tuple(local))}"
        self.report(f"blocks.{block.name}.output: unknown layer id '{wanted}'; {hint}", block.output_node, scope.uses)
        return None

    def name_entries(self, entries: list[_Entry], scope: _Scope, reserved: set[str]) -> None:
        """Each entry's id in its list, the output name it will have once expanded, and the
        block of each use; duplicate and malformed ids of uses and block layers reported."""
        names = layer_names([entry.data for entry in entries], set(scope.inputs) | reserved)
        first_by_name: dict[str, _Entry] = {}
        for entry, name in zip(entries, names):
            entry.name = name
            if entry.is_use:
                entry.block = self.check_use(entry, scope)
            written_id = entry.data.get("id") if isinstance(entry.data, dict) else None
            strict = scope.in_block or entry.is_use  # the graph checks top-level layers itself
            if isinstance(written_id, str) and strict and not NAME.match(written_id):
                what = "a block use" if entry.is_use else "a layer in a block"
                message = (
                    f"id: expected an id made of letters, digits and '_' for {what}, received {written(written_id)}"
                )
                self.report(message, self.value_node(entry.node, "id"), scope.uses)
            if name in scope.inputs or name in reserved:
                if strict:
                    self.report(
                        f"id '{name}' is already the name of an input", self.value_node(entry.node, "id"), scope.uses
                    )
            elif name in first_by_name:
                if strict or first_by_name[name].is_use:
                    first = first_by_name[name].index
                    message = f"duplicate layer id '{name}' (first used by layers[{first}])"
                    self.report(message, self.value_node(entry.node, "id"), scope.uses)
            else:
                first_by_name[name] = entry
            if entry.is_use:
                entry.output = f"\x00{scope.prefix}{name}"  # until the use is expanded (see resolve_pending)
            else:
                entry.output = scope.prefix + name if scope.in_block else name
        # A copy's name is the prefix of its layers: another layer or use may not take it.
        copies = {
            copy: entry for entry in entries if entry.is_use for copy in copy_names(entry.name, _repeat(entry.data))
        }
        for entry in entries:
            for name in copy_names(entry.name, _repeat(entry.data)) if entry.is_use else (entry.name,):
                owner = copies.get(name)
                if owner is not None and owner is not entry and name != owner.name:
                    message = f"id '{name}' is also the name of a copy of the block use layers[{owner.index}]"
                    self.report(message, self.value_node(entry.node, "id"), scope.uses)

    # --- one block use ---------------------------------------------------------------

    def check_use(self, entry: _Entry, scope: _Scope) -> Block | None:
        layer, node = entry.data, entry.node
        ok = True
        for key in layer:
            if key not in _USE_FIELDS:
                hint = suggest(str(key), _USE_FIELDS) or f"allowed fields: {_quoted(_USE_FIELDS)}"
                self.report(f"unknown field '{key}' in block use; {hint}", self.key_node(node, key), scope.uses)
                ok = False
        if "block" not in layer:
            self.report("missing required field 'block' in block use (the name of a block)", node, scope.uses)
            return None
        name = layer["block"]
        if not isinstance(name, str):
            self.report(
                f"block: expected the name of a block, received {written(name)}",
                self.value_node(node, "block"),
                scope.uses,
            )
            return None
        block = self.blocks.get(name)
        if block is None:
            if name not in self.defined:  # a defined block that was refused has its own problems
                defined = (
                    f"defined blocks: {_quoted(tuple(self.blocks))}" if self.blocks else "the spec defines no blocks"
                )
                self.report(
                    f"unknown block '{name}'; {suggest(name, self.blocks) or defined}",
                    self.value_node(node, "block"),
                    scope.uses,
                )
            return None
        repeat = layer.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            self.report(
                f"repeat: expected a positive integer, received {written(repeat)}",
                self.value_node(node, "repeat"),
                scope.uses,
            )
            ok = False
        arguments = layer.get("with", {})
        if not isinstance(arguments, dict):
            self.report(
                f"with: expected a mapping of parameter values, received {_kind(arguments)}",
                self.value_node(node, "with"),
                scope.uses,
            )
            ok = False
        inputs = layer.get("inputs")
        if inputs is not None and (not isinstance(inputs, list) or not inputs):
            self.report(
                f"inputs: expected a list of input or layer ids, received {_kind(inputs)}",
                self.value_node(node, "inputs"),
                scope.uses,
            )
            ok = False
        if not ok and isinstance(arguments, dict):
            self.arguments(block, arguments, node, scope)  # report its mistakes in the same run
        return block if ok else None

    def expand_use(self, entry: _Entry, sources: list[Any], scope: _Scope) -> str:
        """Expand every copy of a use; return the name of the last copy's output tensor."""
        block, layer, node = entry.block, entry.data, entry.node
        assert block is not None  # only called for uses that check_use accepted
        unexpanded = entry.output
        if block.name in scope.stack:
            cycle = " -> ".join([*scope.stack[scope.stack.index(block.name) :], block.name])
            message = f"block '{block.name}' uses itself ({cycle}); expected blocks that do not recur"
            self.report(message, self.value_node(node, "block"), scope.uses)
            return unexpanded
        if len(sources) != len(block.inputs) or any(not isinstance(source, str) for source in sources):
            received = len(sources) if all(isinstance(source, str) for source in sources) else 0
            names = ", ".join(block.inputs)
            message = f"block '{block.name}' takes {len(block.inputs)} input(s) ({names}), received {received}"
            self.report(message, self.value_node(node, "inputs"), scope.uses)
            return unexpanded
        values = self.arguments(block, layer.get("with") or {}, node, scope)
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

    def arguments(self, block: Block, given: dict[Any, Any], node: Node, scope: _Scope) -> dict[str, Any] | None:
        """The values of ``block``'s parameters for one use: ``with:`` checked, defaults filled in."""
        with_node = self.value_node(node, "with")
        values: dict[str, Any] = {}
        ok = True
        for name, value in given.items():
            if name not in block.params:
                hint = suggest(str(name), block.params)
                known = (
                    f"parameters of '{block.name}': {_quoted(tuple(block.params))}"
                    if block.params
                    else f"block '{block.name}' has no parameters"
                )
                self.report(
                    f"with: unknown parameter '{name}'; {hint or known}", self.key_node(with_node, name), scope.uses
                )
                continue  # reported; the block can still be expanded, so its own mistakes show too
            param = block.params[name]
            checked, error = check_value(param.type, value, allow_null=not param.required and param.default is None)
            if error:
                self.report(f"with.{name}: {error}", self.value_node(with_node, name), scope.uses)
                ok = False
            values[name] = checked
        for name, param in block.params.items():
            if name in given:
                continue
            if param.required:
                message = f"missing required parameter '{name}' ({param.type}) of block '{block.name}' in 'with'"
                self.report(message, with_node, scope.uses)
                ok = False
            values[name] = param.default
        return values if ok else None

    # --- one plain layer -------------------------------------------------------------

    def emit_layer(self, entry: _Entry, sources: list[Any] | None, previous: str | None, scope: _Scope) -> None:
        layer, node = entry.data, entry.node
        assert isinstance(node, MappingNode)  # emit_layer is only called for mappings
        new = dict(layer)
        entries = list(node.value)
        position = {key: k for k, key in enumerate(layer)}
        # Ids and inputs are written out only where the flat list would not imply them.
        if scope.in_block:
            self.put(new, entries, position, "id", entry.output, node)
        if sources is not None:
            if sources != layer["inputs"]:
                inputs_node = self.value_node(node, "inputs")
                children = list(inputs_node.value) if isinstance(inputs_node, SequenceNode) else []
                new["inputs"] = sources
                k = position["inputs"]
                entries[k] = (entries[k][0], self.sequence(children, inputs_node or node))
        elif previous is not None:
            implied = self.output.names[-1] if self.output.names else self.model_source
            if previous != implied:
                self.put(new, entries, position, "inputs", [previous], node)
        elif scope.in_block:
            block = scope.stack[-1]
            message = f"the first layer of block '{block}' must name its 'inputs' (the block has several inputs)"
            self.report(message, node, scope.uses)
        self.append(new, self.mapping(new, entries, node), entry, scope)

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

    def append(self, layer: Any, node: Node, entry: _Entry, scope: _Scope) -> None:
        if len(self.output.layers) >= MAX_EXPANDED_LAYERS:
            self.too_large = True
            return
        self.output.layers.append(layer)
        self.output.nodes.append(node)
        self.output.names.append(entry.output)
        self.output.origins.append(LayerOrigin(entry.index, scope.uses))

    # --- parameter references --------------------------------------------------------

    def substitute(self, value: Any, node: Node, scope: _Scope) -> tuple[Any, Node]:
        """``value`` with ``${param}`` references replaced; new nodes wherever something changed."""
        params = scope.params or {}
        if isinstance(value, str):
            if "${" not in value:
                return value, node
            whole = WHOLE_REFERENCE.match(value)
            if whole:
                if whole.group(1) in params:
                    return params[whole.group(1)], node  # the reference's node: its line is reported
                self.unresolved += 1  # reported where the block is defined (read_block)
                return value, node
            return REFERENCE.sub(lambda match: self.interpolate(match, node, scope), value), node
        if isinstance(value, dict) and isinstance(node, MappingNode):
            entries = self.keys.get(id(node), {})
            pairs = {key: self.substitute(item, entries[key][1], scope) for key, item in value.items()}
            if all(pairs[key][0] is item and pairs[key][1] is entries[key][1] for key, item in value.items()):
                return value, node
            new_value = {key: pair[0] for key, pair in pairs.items()}
            new_entries = [(entries[key][0], pair[1]) for key, pair in pairs.items()]
            return new_value, self.mapping(new_value, new_entries, node)
        if isinstance(value, list) and isinstance(node, SequenceNode):
            items = [self.substitute(item, item_node, scope) for item, item_node in zip(value, node.value)]
            if all(new is old for (new, _), old in zip(items, value)):
                return value, node
            return [item for item, _ in items], self.sequence([item_node for _, item_node in items], node)
        return value, node

    def interpolate(self, match: re.Match[str], node: Node, scope: _Scope) -> str:
        """One ``${param}`` inside longer text: the parameter's value as text."""
        name = match.group(1)
        params = scope.params or {}
        if name not in params:
            self.unresolved += 1  # reported where the block is defined (read_block)
            return match.group(0)
        value = params[name]
        if isinstance(value, (list, dict)) or value is None:
            message = (
                f"parameter '{name}' is {_kind(value)}: expected it as a whole value ('${{{name}}}'), not inside text"
            )
            self.report(message, node, scope.uses)
            self.unresolved += 1
            return match.group(0)
        return value if isinstance(value, str) else written(value)

    def check_references(self, name: str, params: set[Any], value: Any, node: Node | None) -> None:
        """Report every ``${x}`` in a block's layers that names no parameter of the block."""
        if isinstance(value, str):
            for reference in REFERENCE.findall(value):
                if reference not in params:
                    known = (
                        f"parameters of '{name}': {_quoted(tuple(params))}"
                        if params
                        else f"block '{name}' has no parameters"
                    )
                    self.report(
                        f"blocks.{name}: unknown parameter '${{{reference}}}'; {suggest(reference, params) or known}",
                        node,
                    )
        elif isinstance(value, dict):
            for key, item in value.items():
                self.check_references(name, params, item, self.value_node(node, key))
        elif isinstance(value, list):
            for k, item in enumerate(value):
                self.check_references(name, params, item, _item(node, k))


def scope_block(expander: _Expander, scope: _Scope) -> Block:
    return expander.blocks[scope.stack[-1]]


def check_value(kind: str, value: Any, *, allow_null: bool) -> tuple[Any, str | None]:
    """``value`` as a parameter of type ``kind`` (an integer becomes a float for ``float``), or an error."""
    if value is None:
        return (None, None) if allow_null else (None, f"expected {_TYPE_WORDS[kind]}, received null")
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value), None
        return None, f"expected a finite number, received {written(value)}"
    if kind == "str" and isinstance(value, str):
        return value, None
    if kind == "bool" and isinstance(value, bool):
        return value, None
    if kind == "list" and isinstance(value, list):
        return value, None
    shown = _kind(value) if isinstance(value, (list, dict)) else written(value)
    return None, f"expected {_TYPE_WORDS[kind]}, received {shown}"


def _is_use(layer: Any) -> bool:
    return isinstance(layer, dict) and layer.get("type") == "block"


def _repeat(layer: Any) -> int:
    repeat = layer.get("repeat", 1) if isinstance(layer, dict) else 1
    return repeat if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat >= 1 else 1


def _has_reference(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_reference(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_reference(item) for item in value)
    return False


def _reference_node(value: Any, node: Node, keys: Keys) -> Node | None:
    """The node of the first ``${...}`` inside ``value``."""
    if isinstance(value, str):
        return node if "${" in value else None
    children: list[tuple[Any, Node]] = []
    if isinstance(value, dict) and isinstance(node, MappingNode):
        entries = keys.get(id(node), {})
        children = [(item, entries[key][1]) for key, item in value.items() if key in entries]
    elif isinstance(value, list) and isinstance(node, SequenceNode):
        children = list(zip(value, node.value))
    for item, item_node in children:
        found = _reference_node(item, item_node, keys)
        if found is not None:
            return found
    return None


def _item(node: Node | None, index: int) -> Node | None:
    if isinstance(node, SequenceNode) and 0 <= index < len(node.value):
        return node.value[index]
    return node


def _kind(value: Any) -> str:
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


def _quoted(values: Any) -> str:
    return ", ".join(f"'{value}'" for value in values)
