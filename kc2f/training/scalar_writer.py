"""TensorBoard scalar, text and hparams logging that works on every Keras backend."""

import time

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class ScalarWriter:
    """Writes scalars to a TensorBoard event file without TensorFlow.

    Keras' own `TensorBoard` callback needs TensorFlow; the coarse-to-fine driver
    runs on JAX and PyTorch too, and one run spans several `fit` calls (one per
    epoch and phase), so it writes its per-epoch scalars itself with the
    `tensorboard` package's event writer, one event file per process (a resumed
    run appends a new file to the same directory; TensorBoard merges them).

    Args:
        logdir: directory of the event files.
        enabled: `False` makes every call a no-op (the non-chief processes of
            a multi-process run, which must not write logs).
    """

    def __init__(self, logdir, enabled=True):
        self._writer = EventFileWriter(str(logdir), flush_secs=5) if enabled else None

    def scalars(self, step, values):
        """Writes `values` (name → float) at global `step`."""
        if self._writer is None:
            return
        summary = summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag=name, simple_value=float(value))
                for name, value in values.items()
                if value is not None
            ]
        )
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def text(self, step, tag, text):
        """Writes a text note (e.g. a phase switch) as a tensor summary TensorBoard shows."""
        if self._writer is None:
            return
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            string_val=[text.encode("utf-8")],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]),
        )
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
        )
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata)]
        )
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def hparams(self, step, hparams, metrics):
        """Writes the run's hyperparameters and final metrics for TensorBoard's HParams dashboard.

        Args:
            step: global step of the record.
            hparams: option name → value; lists become comma-joined strings
                and `None` the string `"none"` (the dashboard takes bool,
                number or string).
            metrics: metric tag → final value; written as scalars, which the
                dashboard lists beside the hyperparameters.
        """
        if self._writer is None:
            return
        values = {name: _hparam_value(value) for name, value in hparams.items()}
        summary = hparams_summary.hparams_pb(values)
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))
        self.scalars(step, metrics)

    def flush(self):
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()


def _hparam_value(value):
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
