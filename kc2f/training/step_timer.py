"""The `StepTimer` callback: where an epoch's training time goes, from per-batch timestamps.

What a callback can observe, and what it cannot (Keras 3, both backends): the
batch is fetched from the input pipeline inside `train_function` (TensorFlow:
inside the `tf.function`; JAX: in Python, just before the jitted step), so
waiting for input is part of a step's period, never a separate gap; on JAX a
step may return before the device finished it (asynchronous dispatch) and the
device time then shows up in a later period or at the epoch's end. The timer
therefore works on the periods between consecutive batch starts, which add up
to the epoch on either backend:

- `compile_seconds`: the first period's excess over the median of the others
  (tracing and XLA compilation, paid by the first epoch after every phase
  switch and every resume; about 0 in other epochs);
- `step_seconds`: the rest of the periods (steady steps, input waits included);
- `setup_seconds`: epoch start to the first batch (iterator creation).

`kc2f bench --breakdown` splits a steady step further (fbank, compression,
forward, backward, optimizer), and `kc2f bench --from-files` shows the input
pipeline's share. Cost when it runs: one `perf_counter` call per batch; it
reads no logs, so it forces no device synchronisation (`async_safe`).
"""

import statistics
import time

import keras


class StepTimer(keras.callbacks.Callback):
    """Per-epoch `compile_seconds`, `step_seconds`, `setup_seconds` and median `step_ms` into `state.step_timing`.

    Put it first in the callback list, so that the epoch's end is stamped
    before evaluation starts.

    Args:
        state: the run's `RunState` (its `step_timing` is set at every epoch end).
    """

    async_safe = True  # reads no logs: Keras may dispatch steps ahead of it

    def __init__(self, state):
        super().__init__()
        self.state = state
        self._epoch_start = None
        self._begins = []

    def on_epoch_begin(self, epoch, logs=None):
        self._begins = []
        self._epoch_start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self._begins.append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        self.state.step_timing = epoch_timing(self._epoch_start, self._begins, time.perf_counter())


def epoch_timing(epoch_start, begins, epoch_end):
    """The timing of one epoch from its start, its batches' start times and its end (seconds).

    Returns:
        dict: `compile_seconds` (None with fewer than 2 batches), `step_seconds`,
        `setup_seconds`, `step_ms` (median period, None without batches), `steps`.
    """
    if not begins:
        return {"compile_seconds": None, "step_seconds": 0.0, "setup_seconds": epoch_end - epoch_start,
                "step_ms": None, "steps": 0}
    periods = [b - a for a, b in zip(begins, begins[1:])] + [epoch_end - begins[-1]]
    compile_seconds = None
    if len(periods) >= 2:
        compile_seconds = max(0.0, periods[0] - statistics.median(periods[1:]))
    return {
        "compile_seconds": compile_seconds,
        "step_seconds": sum(periods) - (compile_seconds or 0.0),
        "setup_seconds": begins[0] - epoch_start,
        "step_ms": 1e3 * statistics.median(periods[1:] if len(periods) >= 2 else periods),
        "steps": len(periods),
    }
