"""The ``torch_code`` format: one readable PyTorch file per model (an ``nn.Module`` with a written-out
``forward``, the spec's loss, ``load_model()``), and its weights in torch's layout beside it
(``model.py`` + ``model.safetensors``). The file imports torch and safetensors, never archspec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from archspec.errors import lookup
from archspec.graph import Head, ModelGraph, Node
from archspec.spec.training import CROSS_ENTROPY_LOSSES

from . import _torch_helpers
from ._torch_layers import ACTIVATIONS, EMITTERS, TorchContext
from ._writer import (
    INDENT,
    Tensors,
    blocks,
    constant_lines,
    docstring_lines,
    import_file,
    loss_blocks,
    propagate_mask,
    python_name,
    weights_path,
    write_files,
)

if TYPE_CHECKING:  # annotations only
    from archspec.exporting import ExportMetadata, Runner
    from archspec.spec import Spec


def _imports(text: str) -> list[str]:
    """The imports the generated text uses (math and F only where it uses them)."""
    lines = ["import functools"] if "functools." in text else []
    lines += ["import math"] if "math." in text else []
    lines += ["from pathlib import Path", "", "import torch"]
    lines += ["import torch.nn.functional as F"] if "F." in text else []
    lines += ["from safetensors.torch import load_file", "from torch import nn"]
    if "pack_padded_sequence(" in text:
        lines.append("from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence")
    return lines


_LOSSES = {
    # (from logits, from probabilities); ``output`` is what forward(..., return_logits=True) returns.
    "sparse_categorical_crossentropy": (
        "-torch.log_softmax(output, dim=1).gather(1, target.long().unsqueeze(1)).mean()",
        "-probabilities(output).gather(1, target.long().unsqueeze(1)).mean()",
    ),
    "categorical_crossentropy": (
        "-(target.reshape(output.shape) * torch.log_softmax(output, dim=1)).sum(dim=1).mean()",
        "-(target.reshape(output.shape) * probabilities(output)).sum(dim=1).mean()",
    ),
    "binary_crossentropy": (
        "F.binary_cross_entropy_with_logits(output, target.reshape(output.shape))",
        "F.binary_cross_entropy(output.clamp(1e-7, 1 - 1e-7), target.reshape(output.shape))",
    ),
    "mse": ("((output - target.reshape(output.shape)) ** 2).mean()",) * 2,
    "mae": ("(output - target.reshape(output.shape)).abs().mean()",) * 2,
}


def _loss_lines(function: str, loss: str, head: Head) -> list[str]:
    formula = _LOSSES[loss][0 if head.from_logits else 1]
    lines = [
        f"def {function}(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:",
        f'{INDENT}"""The spec\'s loss ({loss}) of {head.output}, the mean over the batch, as archspec computes it.',
    ]
    if head.from_logits and loss in CROSS_ENTROPY_LOSSES:
        lines += [
            "",
            f"{INDENT}archspec computes cross-entropy from logits: pass forward(..., return_logits=True), the",
            f'{INDENT}tensor before the output\'s {head.activation}, so training never goes through a double softmax."""',
        ]
    else:
        lines[-1] += '"""'
    if "probabilities(" in formula:
        lines += [
            f"{INDENT}def probabilities(p):",
            f"{INDENT * 2}return torch.log(torch.clamp(p / p.sum(dim=1, keepdim=True), 1e-7, 1 - 1e-7))",
            "",
        ]
    return [*lines, f"{INDENT}return {formula}"]


MODULE_ATTRIBUTES = frozenset(
    [
        "T_destination",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
        "step",
        "dtype",
    ]
)
"""Attribute names of ``torch.nn.Module`` (torch 2.x) and of the generated model, which a layer must
not shadow (names starting with "_" are never used: ``_attribute`` adds a prefix)."""


def _attribute(node_id: str, taken: set[str]) -> str:
    name = python_name(node_id, taken)
    if name.startswith("_"):  # nn.Module's own state lives in underscore names (_modules, _parameters)
        taken.discard(name)
        name = python_name(f"layer{name}", taken)
    return name


class _Body:
    """The generated ``Model``'s ``__init__`` and ``forward`` for a graph, and its state dict."""

    def __init__(self, graph: ModelGraph, weights: Mapping[str, np.ndarray]):
        self.graph = graph
        attributes: set[str] = set(MODULE_ATTRIBUTES)
        self.attributes = {node.id: _attribute(node.id, attributes) for node in graph.nodes}
        for node in graph.nodes:  # the two directions of a bidirectional layer are modules of their own
            attributes.update({f"{self.attributes[node.id]}_forward", f"{self.attributes[node.id]}_backward"})
        tensors = Tensors(taken={"self", "step", "torch", "nn", "F", "math", "return_logits", "dtype"})
        for name in graph.spec.inputs:
            tensors.add(name)
        self.context = TorchContext(tensors, self.attributes.__getitem__, weights)
        self.logits = {head.logits for head in graph.heads}
        for node in graph.nodes:
            self._node(node)

    def _node(self, node: Node) -> None:
        c = self.context
        arguments = [c.tensors[name] for name in node.inputs]
        var = c.tensors.add(node.id)
        expression = lookup(EMITTERS, node.type, "layer type", owner="the torch_code format")(node, c, arguments)
        if node.activation is not None and node.activation != "linear":
            if f"{node.id}:pre" in self.logits:
                pre = c.tensors.add(f"{node.id}:pre")
                c.assign(pre, expression)
                expression = pre
            expression = ACTIVATIONS[node.activation].format(expression)
        elif node.activation is not None:
            c.tensors.names[f"{node.id}:pre"] = var
        c.assign(var, expression)
        self._mask(node)

    def _mask(self, node: Node) -> None:
        c = self.context
        propagate_mask(
            c.tensors,
            c.assign,
            node,
            "torch.ones_like({tensor}[:, :, 0], dtype=torch.bool)",
            "torch.cat([{parts}], dim=1)",
            lambda a, b: f"{a} & {b}",
        )

    def init_lines(self) -> list[str]:
        return self.context.init

    def forward_lines(self) -> list[str]:
        c, graph = self.context, self.graph
        inputs = [f"{c.tensors[name]}: torch.Tensor" for name in graph.spec.inputs]
        outputs = [c.tensors[name] for name in graph.outputs]
        logits = [c.tensors[head.logits] for head in graph.heads] or outputs
        lines = [
            f"def forward(self, {', '.join(inputs)}, return_logits: bool = False):",
            f'{INDENT}"""The outputs {", ".join(graph.outputs)} (channels-last inputs). With return_logits, the',
            f"{INDENT}tensors the loss reads instead (the output before its softmax or sigmoid). Each training-mode",
            f'{INDENT}call draws the dropout masks of step self.step, then advances it (as archspec\'s model)."""',
            *([f"{INDENT}step = self.step"] if any("step)" in line or "step," in line for line in c.forward) else []),
            *(line[len(INDENT) :] for line in c.forward),
            f"{INDENT}if self.training:",
            f"{INDENT * 2}self.step += 1",
            f"{INDENT}if return_logits:",
            f"{INDENT * 2}return {', '.join(logits)}",
            f"{INDENT}return {', '.join(outputs)}",
        ]
        return [f"{INDENT}{line}" for line in lines]


def generate(graph: ModelGraph, weights: Mapping[str, np.ndarray], metadata: ExportMetadata):
    """(the file's text, its state dict in torch's layout)."""
    body = _Body(graph, weights)
    seed = graph.spec.training.seed if graph.spec.training else 0
    helpers = [
        _torch_helpers.HELPERS[name].strip().splitlines()
        for name in _torch_helpers.HELPER_ORDER
        if name in body.context.helpers
    ]
    model = [
        "class Model(nn.Module):",
        f'{INDENT}"""{graph.spec.name}: the spec\'s layers as torch modules, named after the spec\'s layer ids."""',
        "",
        f"{INDENT}def __init__(self, dtype: torch.dtype = torch.float32) -> None:",
        f"{INDENT * 2}super().__init__()",
        *body.init_lines(),
        f"{INDENT * 2}self.dtype = dtype",
        f"{INDENT * 2}self.step = 0  # the dropout step: training-mode calls so far",
        "",
        *body.forward_lines(),
    ]
    loader = [
        'def load_model(path: str | Path = WEIGHTS_FILE, dtype: str = "float32") -> Model:',
        f'{INDENT}"""The model holding the weights of ``path`` (safetensors, torch\'s layout), in inference mode."""',
        f"{INDENT}model = Model(getattr(torch, dtype))",
        f"{INDENT}model.load_state_dict({{name: tensor.to(model.dtype) for name, tensor in load_file(str(path)).items()}})",
        f"{INDENT}return model.eval()",
    ]
    predict = [
        "def predict(model: Model, inputs: dict) -> dict:",
        f'{INDENT}"""Output name -> numpy array for channels-last numpy ``inputs`` (input name -> array), in inference mode."""',
        f"{INDENT}tensors = [torch.as_tensor(inputs[name]) for name in INPUTS]",
        f"{INDENT}tensors = [t.to(model.dtype) if t.is_floating_point() else t for t in tensors]",
        f"{INDENT}with torch.no_grad():",
        f"{INDENT * 2}result = model.eval()(*tensors)",
        f"{INDENT}values = result if isinstance(result, tuple) else (result,)",
        f"{INDENT}return {{name: value.numpy() for name, value in zip(OUTPUTS, values)}}",
    ]
    constants = constant_lines(metadata, seed)
    body_text = blocks(*helpers, model, *loss_blocks(graph, _loss_lines), loader, predict)
    header = [*docstring_lines(metadata, graph, "PyTorch"), "", *_imports(body_text), "", *constants]
    text = blocks(header) + "\n\n" + body_text
    return text, body.context.state


class TorchCode:
    """The ``torch_code`` format (``archspec.exporting.Format``)."""

    name = "torch_code"
    framework = "torch"
    suffix = ".py"

    def write(
        self, spec: Spec, weights: Mapping[str, np.ndarray], out: Path, dtype: str, metadata: ExportMetadata
    ) -> None:
        from archspec.api import graph_of

        out = Path(out)
        text, state = generate(graph_of(spec), weights, metadata)
        arrays = {name: np.ascontiguousarray(array, dtype=dtype) for name, array in state.items()}
        write_files(out, text, arrays, metadata)

    def companions(self, out: Path) -> list[Path]:
        """The weights file written beside ``out`` (moved and removed with it by the exporter)."""
        return [weights_path(Path(out))]

    def load(self, out: Path, dtype: str) -> Runner:
        """The generated file's own ``load_model`` and ``predict`` (torch is the file's import, not archspec's)."""
        module = import_file(Path(out))
        model = module.load_model(weights_path(Path(out)), dtype)

        def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return module.predict(model, {name: np.ascontiguousarray(array) for name, array in inputs.items()})

        return run
