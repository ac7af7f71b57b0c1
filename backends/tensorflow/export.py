"""The export formats TensorFlow writes: ``saved_model`` (a SavedModel folder with a
``serving_default`` signature, loaded with ``tf.saved_model.load``) and ``litert`` (a ``.tflite``
flatbuffer run with the LiteRT interpreter of ``ai-edge-litert``).

Both serve the backend's own Keras model in inference mode, with the batch dimension left
``None``. LiteRT: the model's variables are frozen into constants (converted from a SavedModel,
LiteRT keeps resource variables that its interpreter leaves uninitialised: every output NaN),
recurrent layers are unrolled over their fixed number of steps (Keras' ``while`` loop lowers to
TensorList operators that LiteRT's builtin kernels lack), and only builtin kernels are allowed
(no Flex delegate: the interpreter of ``ai-edge-litert`` has none).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from archspec.errors import CheckpointError, UsageError
from archspec.exporting import ExportMetadata, Runner
from archspec.graph import resolve
from archspec.spec import Spec

from .model import TensorFlowModel, build

SIGNATURE = "serving_default"
METADATA_FILE = "archspec.json"  # SavedModel: assets/archspec.json; LiteRT: the flatbuffer's metadata named "archspec"
METADATA_NAME = "archspec"


def _model(spec: Spec, weights: Mapping[str, np.ndarray], dtype: str) -> TensorFlowModel:
    return build(resolve(spec), weights, dtype=dtype, device="cpu")


def _signature(spec: Spec, dtype: str) -> list[tf.TensorSpec]:
    return [
        tf.TensorSpec((None, *item.shape), dtype if item.dtype == "float" else item.dtype, name=name)
        for name, item in spec.inputs.items()
    ]


def _call(model: TensorFlowModel, args) -> list[tf.Tensor]:
    """The outputs, in ``graph.outputs`` order, of the inputs ``args`` (spec order)."""
    names = list(model.spec.inputs)
    result = model.native(args[0] if len(args) == 1 else dict(zip(names, args)), training=False)
    outputs = model.graph.outputs
    return [result[name] for name in outputs] if isinstance(result, dict) else [result]


class _Serving(tf.Module):
    """What the SavedModel holds: the Keras model, the metadata asset, the serving function."""

    def __init__(self, model: TensorFlowModel, dtype: str, metadata_path: str):
        super().__init__()
        self.network = model.native
        self.archspec_metadata = tf.saved_model.Asset(metadata_path)
        outputs = list(model.graph.outputs)

        @tf.function(input_signature=_signature(model.spec, dtype))
        def serve(*args):
            return dict(zip(outputs, _call(model, args)))

        self.serve = serve


class SavedModelFormat:
    """A SavedModel folder: ``serving_default`` takes the spec's inputs by name, returns the outputs
    by id; the metadata is the asset ``assets/archspec.json``."""

    name = "saved_model"
    framework = "tensorflow"
    suffix = ""  # a folder

    def write(
        self, spec: Spec, weights: Mapping[str, np.ndarray], out: Path, dtype: str, metadata: ExportMetadata
    ) -> None:
        model = _model(spec, weights, dtype)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, METADATA_FILE)
            Path(path).write_text(metadata.to_json())
            serving = _Serving(model, dtype, path)
            tf.saved_model.save(serving, str(out), signatures={SIGNATURE: serving.serve})

    def load(self, out: Path, dtype: str) -> Runner:
        loaded = tf.saved_model.load(str(out))
        function = loaded.signatures[SIGNATURE]
        kinds = {name: spec.dtype for name, spec in function.structured_input_signature[1].items()}

        def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            feeds = {name: tf.constant(np.asarray(inputs[name]), dtype=kind) for name, kind in kinds.items()}
            return {name: value.numpy() for name, value in function(**feeds).items()}

        return run


def read_saved_model_metadata(out: Path) -> ExportMetadata:
    """The archspec metadata of a SavedModel written here (its asset, readable without TensorFlow too)."""
    path = Path(out) / "assets" / METADATA_FILE
    if not path.is_file():
        raise CheckpointError(f"{out}: expected the asset assets/{METADATA_FILE}, received none")
    return ExportMetadata.from_json(path.read_text())


def _unroll(model: TensorFlowModel) -> None:
    """Unroll every recurrent layer (the bidirectional copies included): steps are fixed by the spec."""
    for layer in model.native._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RNN):
            layer.unroll = True


class LiteRTFormat:
    """A ``.tflite`` flatbuffer of builtin kernels (float32 only); signature ``serving_default``
    with the spec's input and output names; the metadata in the flatbuffer's ``metadata`` entry
    named ``archspec``."""

    name = "litert"
    framework = "tensorflow"
    suffix = ".tflite"

    def write(
        self, spec: Spec, weights: Mapping[str, np.ndarray], out: Path, dtype: str, metadata: ExportMetadata
    ) -> None:
        if dtype != "float32":
            raise UsageError(f"litert: expected dtype float32 (LiteRT's kernels compute in float32), received {dtype}")
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        model = _model(spec, weights, dtype)
        _unroll(model)

        def serve(*args):
            return _call(model, args)

        function = tf.function(serve, input_signature=_signature(spec, dtype))
        frozen = convert_variables_to_constants_v2(function.get_concrete_function())
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        flatbuffer = converter.convert()
        out.write_bytes(_with_signature_and_metadata(flatbuffer, spec, metadata))

    def load(self, out: Path, dtype: str) -> Runner:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(out)).get_signature_runner(SIGNATURE)

        def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            details = runner.get_input_details()
            feeds = {name: np.ascontiguousarray(inputs[name], dtype=item["dtype"]) for name, item in details.items()}
            return {name: np.array(value) for name, value in runner(**feeds).items()}

        return run


def _with_signature_and_metadata(flatbuffer: bytes, spec: Spec, metadata: ExportMetadata) -> bytes:
    """The converter gives a frozen function's file no signature: add ``serving_default`` with the
    spec's input names and output ids (the subgraph keeps the function's argument and output
    order), and the metadata (JSON) as the flatbuffer's ``metadata`` entry ``archspec``."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    signature = schema.SignatureDefT()
    signature.signatureKey = SIGNATURE
    signature.subgraphIndex = 0
    signature.inputs = [_tensor_map(schema, name, index) for name, index in zip(spec.inputs, subgraph.inputs)]
    signature.outputs = [_tensor_map(schema, name, index) for name, index in zip(metadata.outputs, subgraph.outputs)]
    model.signatureDefs = [signature]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata.to_json().encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _tensor_map(schema, name: str, index: int):
    item = schema.TensorMapT()
    item.name = name
    item.tensorIndex = int(index)
    return item


def read_litert_metadata(out: Path) -> ExportMetadata:
    """The archspec metadata of a ``.tflite`` file written here."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(Path(out).read_bytes()))
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            return ExportMetadata.from_json(bytes(model.buffers[entry.buffer].data).decode())
    raise CheckpointError(f"{out}: expected the flatbuffer metadata entry '{METADATA_NAME}', received none")


FORMATS = {fmt.name: fmt for fmt in (SavedModelFormat(), LiteRTFormat())}
