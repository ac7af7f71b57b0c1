"""TensorBoard event files of a run (``train(..., logdir=DIR)``, ``archspec train --logdir DIR``).

Written with the ``tensorboard`` package's own record writer (TFRecord framing with masked
CRC-32C) and protocol buffers, into a plain file named as TensorBoard names them
(``events.out.tfevents.<time>.<host>.<backend>``). Its ``EventFileWriter`` is not used: it
opens files through ``tf.io.gfile`` and so imports TensorFlow whenever it is installed,
and a torch run must load no TensorFlow to log (nor a TensorFlow run torch). Tags:

    step/loss, step/learning_rate, step/gradient_norm   every optimizer step (x: the step, 1-based)
    epoch/<history key>                                 every epoch's history row (x: the epoch)
    final/<split>_<key>                                 the final evaluation (x: the last step)
    spec                                                the spec as YAML (text)

``step/gradient_norm`` is the global norm of the step's gradient before clipping.
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path

import numpy as np
import yaml

from archspec.errors import UsageError

_NOT_LOGGED = ("epoch", "steps", "seconds")


class EventLog:
    """One TensorBoard run in ``logdir`` (one event file per process start)."""

    def __init__(self, logdir, spec, backend: str, cluster=None):
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.compat.proto.tensor_pb2 import TensorProto
            from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
            from tensorboard.summary.writer.record_writer import RecordWriter
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            raise UsageError("logdir needs the 'tensorboard' package: pip install tensorboard") from None
        self._event, self._summary = event_pb2, summary_pb2
        folder = Path(logdir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"{folder}: cannot create the log folder ({error.strerror or error})") from None
        suffix = f".{backend}" + (f".rank{cluster.rank}" if cluster is not None else "")
        name = f"events.out.tfevents.{time.time():010.0f}.{socket.gethostname()}.{os.getpid()}{suffix}"
        try:
            self.file = open(folder / name, "wb")  # noqa: SIM115 (open for the run's whole length)
        except OSError as error:
            raise UsageError(f"{folder}: cannot write an event file ({error.strerror or error})") from None
        self.writer = RecordWriter(self.file)
        self.folder = folder
        self.writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        text = yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
        markdown = "\n".join("    " + line for line in text.splitlines())  # a code block
        value = summary_pb2.Summary.Value(
            tag="spec",
            metadata=summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
            ),
            tensor=TensorProto(
                dtype=7, string_val=[markdown.encode()], tensor_shape=TensorShapeProto()
            ),  # 7: DT_STRING
        )
        self._write(0, [value])

    def _write(self, step: int, values: list) -> None:
        event = self._event.Event(wall_time=time.time(), step=int(step), summary=self._summary.Summary(value=values))
        self.writer.write(event.SerializeToString())

    def _scalar(self, tag: str, value: float):
        return self._summary.Summary.Value(tag=tag, simple_value=float(value))

    def steps(self, first: int, losses: np.ndarray, rates: list[float], norms: np.ndarray | None) -> None:
        """Steps ``first`` .. (0-based): their losses, learning rates and gradient norms."""
        for i, loss in enumerate(losses):
            values = [self._scalar("step/loss", loss), self._scalar("step/learning_rate", rates[i])]
            if norms is not None:
                values.append(self._scalar("step/gradient_norm", norms[i]))
            self._write(first + i + 1, values)

    def epoch(self, epoch: int, row: dict[str, float]) -> None:
        """Epoch ``epoch`` (0-based)'s history values; the file is flushed so TensorBoard sees them."""
        values = [
            self._scalar(f"epoch/{key}", value)
            for key, value in row.items()
            if key not in _NOT_LOGGED and isinstance(value, (int, float)) and math.isfinite(value)
        ]
        self._write(epoch + 1, values)
        self.writer.flush()

    def final(self, final: dict[str, dict[str, float]], step: int) -> None:
        values = [
            self._scalar(f"final/{split}_{key}", value) for split, row in final.items() for key, value in row.items()
        ]
        self._write(step, values)

    def close(self) -> None:
        self.writer.close()  # flushes and closes the file
