"""The ``keras_code`` format: one readable Keras 3 file per model (``build_model()`` with the
functional API, ``load_model()``), and its weights beside it (``model.py`` + ``model.safetensors``,
keyed ``"{layer name}/{attribute path}"``). The file imports keras, numpy and safetensors, never archspec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from archspec.errors import lookup
from archspec.graph import Head, ModelGraph, Node

from . import _keras_helpers
from ._keras_layers import EMITTERS, KerasContext, activation_layer
from ._writer import (
    INDENT,
    LINE,
    Tensors,
    blocks,
    constant_lines,
    docstring_lines,
    import_file,
    literal,
    loss_blocks,
    propagate_mask,
    weights_path,
    write_files,
)

if TYPE_CHECKING:  # annotations only
    from archspec.exporting import ExportMetadata, Runner
    from archspec.spec import Spec


def _imports(text: str) -> list[str]:
    lines = ["import functools"]
    lines += ["import math"] if "math." in text else []
    lines += ["from pathlib import Path", "", "import keras"]
    lines += ["import numpy as np"] if "np." in text else []
    return [*lines, "from safetensors.numpy import load_file"]


def keras_names(graph: ModelGraph) -> dict[str, str]:
    """Node id -> Keras layer name: Keras refuses "/", which block copies hold, so it becomes "."
    ("." occurs in no node id); activations after a layer are ``"{name}.activation"``."""
    taken: set[str] = set()
    names = {}
    for node in graph.nodes:
        name = node.id.replace("/", ".")
        while name in taken:
            name += "_"
        taken.add(name)
        names[node.id] = name
    return names


class _Body:
    """The lines of ``build_model`` for a graph, and the weights by key."""

    def __init__(self, graph: ModelGraph, weights: Mapping[str, np.ndarray], names: dict[str, str]):
        self.graph = graph
        tensors = Tensors(taken={"keras", "np", "math", "dtype", "return_logits", "functools"})
        self.names = names
        self.context = KerasContext(tensors, names.__getitem__, weights)
        self.logits = {head.logits for head in graph.heads}
        for name, item in graph.spec.inputs.items():
            var = tensors.add(name)
            kind = "dtype" if item.dtype == "float" else literal(item.dtype)
            self.context.assign(var, f"keras.Input({literal(tuple(item.shape))}, dtype={kind}, name={literal(name)})")
        for node in graph.nodes:
            self._node(node)

    def _node(self, node: Node) -> None:
        c = self.context
        arguments = [c.tensors[name] for name in node.inputs]
        var = c.tensors.add(node.id)
        expression = lookup(EMITTERS, node.type, "layer type", owner="the keras_code format")(node, c, arguments)
        activation = node.activation if node.layer.activation_after else None
        if activation is not None and activation != "linear":
            pre = c.tensors.add(f"{node.id}:pre")
            c.layer_call(pre, expression)
            expression = activation_layer(c, activation, f"{self.names[node.id]}.activation", pre)
        elif node.layer.activation_only:
            c.tensors.names[f"{node.id}:pre"] = arguments[0]
        elif activation is not None:
            c.tensors.names[f"{node.id}:pre"] = var
        c.layer_call(var, expression)
        self._mask(node)

    def _mask(self, node: Node) -> None:
        c = self.context
        propagate_mask(
            c.tensors,
            c.assign,
            node,
            'keras.ops.ones_like({tensor}[:, :, 0], dtype="bool")',
            "keras.ops.concatenate([{parts}], axis=1)",
            lambda a, b: f"keras.ops.logical_and({a}, {b})",
        )

    def function_lines(self) -> list[str]:
        c, graph = self.context, self.graph
        inputs = [c.tensors[name] for name in graph.spec.inputs]
        outputs = [c.tensors[name] for name in graph.outputs]
        logits = [c.tensors[head.logits] for head in graph.heads] or outputs
        return [
            'def build_model(dtype: str = "float32", return_logits: bool = False) -> keras.Model:',
            f'{INDENT}"""{graph.spec.name} with the functional API; layers named after the spec\'s layer ids.',
            "",
            f"{INDENT}With return_logits, the model outputs the tensors the loss reads instead (the output",
            f"{INDENT}before its softmax or sigmoid: archspec computes cross-entropy from logits).",
            f'{INDENT}Masks of padded steps are computed and passed explicitly, by archspec\'s rules."""',
            *c.lines,
            *_outputs_lines(listed(logits), listed(outputs)),
            f"{INDENT}return keras.Model({listed(inputs)}, outputs, name={literal(graph.spec.name)})",
        ]


_LOSSES = {
    # (from logits, from probabilities); ``output`` is what build_model(return_logits=True) outputs.
    "sparse_categorical_crossentropy": (
        "-keras.ops.mean(keras.ops.take_along_axis(keras.ops.log_softmax(output, axis=1), labels, axis=1))",
        "-keras.ops.mean(keras.ops.take_along_axis(log_probabilities(output), labels, axis=1))",
    ),
    "categorical_crossentropy": (
        "-keras.ops.mean(keras.ops.sum(target * keras.ops.log_softmax(output, axis=1), axis=1))",
        "-keras.ops.mean(keras.ops.sum(target * log_probabilities(output), axis=1))",
    ),
    "binary_crossentropy": (
        "keras.ops.mean(keras.ops.relu(output) - output * y + keras.ops.log1p(keras.ops.exp(-keras.ops.abs(output))))",
        "keras.ops.mean(-y * keras.ops.log(p) - (1 - y) * keras.ops.log(1 - p))",
    ),
    "mse": ("keras.ops.mean(keras.ops.square(output - target))",) * 2,
    "mae": ("keras.ops.mean(keras.ops.abs(output - target))",) * 2,
}


def _loss_lines(function: str, loss: str, head: Head) -> list[str]:
    """``function(output, target)``: the spec's loss as archspec computes it (from logits)."""
    formula = _LOSSES[loss][0 if head.from_logits else 1]
    lines = [
        f"def {function}(output, target):",
        f'{INDENT}"""The spec\'s loss ({loss}) of {head.output}, the mean over the batch, as archspec computes it.',
    ]
    if head.from_logits and loss != "mse" and loss != "mae":
        lines += [
            "",
            f"{INDENT}archspec computes cross-entropy from logits: pass the outputs of build_model(return_logits=True),",
            f'{INDENT}the tensors before the output\'s {head.activation}, so training never goes through a double softmax."""',
        ]
    else:
        lines[-1] += '"""'
    if "log_probabilities(" in formula:
        lines += [
            f"{INDENT}def log_probabilities(p):",
            f"{INDENT * 2}p = p / keras.ops.sum(p, axis=1, keepdims=True)",
            f"{INDENT * 2}return keras.ops.log(keras.ops.clip(p, 1e-7, 1 - 1e-7))",
            "",
        ]
    if loss != "sparse_categorical_crossentropy":
        lines.append(f"{INDENT}target = keras.ops.reshape(target, keras.ops.shape(output))")
    if "labels" in formula:
        lines.append(f'{INDENT}labels = keras.ops.cast(keras.ops.reshape(target, (-1, 1)), "int32")')
    if loss == "binary_crossentropy":
        lines.append(f"{INDENT}y = keras.ops.cast(target, output.dtype)")
        if not head.from_logits:
            lines.append(f"{INDENT}p = keras.ops.clip(output, 1e-7, 1 - 1e-7)")
    return [*lines, f"{INDENT}return {formula}"]


def listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"[{', '.join(names)}]"


def _outputs_lines(logits: str, outputs: str) -> list[str]:
    if logits == outputs:
        return [f"{INDENT}outputs = {outputs}  # the loss reads the outputs themselves"]
    line = f"{INDENT}outputs = {logits} if return_logits else {outputs}"
    if len(line) <= LINE:
        return [line]
    return [
        f"{INDENT}outputs = (",
        *(f"{INDENT * 2}{part}" for part in (logits, "if return_logits", f"else {outputs}")),
        f"{INDENT})",
    ]


LOADER = [
    'def load_model(path: str | Path = WEIGHTS_FILE, dtype: str = "float32", return_logits: bool = False) -> keras.Model:',
    f'{INDENT}"""The model holding the weights of ``path`` (safetensors; keys "layer name/attribute path")."""',
    f"{INDENT}model = build_model(dtype, return_logits)",
    f"{INDENT}for key, array in load_file(str(path)).items():",
    f'{INDENT * 2}layer, _, attribute = key.partition("/")',
    f'{INDENT * 2}variable = functools.reduce(getattr, attribute.split("."), model.get_layer(layer))',
    f"{INDENT * 2}variable.assign(array.astype(dtype))",
    f"{INDENT}return model",
]

PREDICT = [
    "def predict(model: keras.Model, inputs: dict) -> dict:",
    f'{INDENT}"""Output name -> numpy array for channels-last numpy ``inputs`` (input name -> array), in inference mode.',
    "",
    f'{INDENT}A plain call: Keras\' model.predict may compile the model with XLA (jit_compile="auto"), whose',
    f'{INDENT}kernels round differently (about 1e-9 in float64 for convolutions)."""',
    f"{INDENT}arrays = [inputs[name] for name in INPUTS]",
    f"{INDENT}result = model(arrays if len(arrays) > 1 else arrays[0], training=False)",
    f"{INDENT}values = result if isinstance(result, (list, tuple)) else [result]",
    f"{INDENT}return {{name: np.asarray(value) for name, value in zip(OUTPUTS, values)}}",
]


def generate(graph: ModelGraph, weights: Mapping[str, np.ndarray], metadata: ExportMetadata):
    """(the file's text, its weights by key)."""
    body = _Body(graph, weights, keras_names(graph))
    seed = graph.spec.training.seed if graph.spec.training else 0
    helpers = [
        _keras_helpers.HELPERS[name].strip().splitlines()
        for name in _keras_helpers.HELPER_ORDER
        if name in body.context.helpers
    ]
    body_text = blocks(*helpers, body.function_lines(), *loss_blocks(graph, _loss_lines), LOADER, PREDICT)
    header = [
        *docstring_lines(metadata, graph, "Keras"),
        "",
        *_imports(body_text),
        "",
        *constant_lines(metadata, seed),
    ]
    return blocks(header) + "\n\n" + body_text, body.context.arrays


class KerasCode:
    """The ``keras_code`` format (``archspec.exporting.Format``)."""

    name = "keras_code"
    framework = "tensorflow"
    suffix = ".py"

    def write(
        self, spec: Spec, weights: Mapping[str, np.ndarray], out: Path, dtype: str, metadata: ExportMetadata
    ) -> None:
        from archspec.api import graph_of

        out = Path(out)
        text, arrays = generate(graph_of(spec), weights, metadata)
        write_files(out, text, {k: np.ascontiguousarray(a, dtype=dtype) for k, a in arrays.items()}, metadata)

    def companions(self, out: Path) -> list[Path]:
        """The weights file written beside ``out`` (moved and removed with it by the exporter)."""
        return [weights_path(Path(out))]

    def load(self, out: Path, dtype: str) -> Runner:
        """The generated file's own ``load_model`` and ``predict``."""
        module = import_file(Path(out))
        model = module.load_model(weights_path(Path(out)), dtype)

        def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return module.predict(model, {name: np.ascontiguousarray(array) for name, array in inputs.items()})

        return run
