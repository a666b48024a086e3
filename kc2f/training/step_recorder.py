"""The `StepRecorder` callback: per-step training loss, metric and learning rate for TensorBoard."""

import threading

import keras
import numpy as np


def per_step_values(running_means):
    """Per-step values from Keras' running means of one epoch: `n·mean_n - (n-1)·mean_(n-1)`.

    Keras reports a batch's `loss` (and compiled metrics) as the mean over the
    epoch so far, weighted by batch size; with equal batches (kc2f drops the
    remainder whenever an epoch has a full batch) differencing the running
    sums recovers each step's own value. The means are float32, so a
    recovered value carries an absolute error of about `n · 6e-8 · |mean|`.

    Args:
        running_means: the running means after steps 1..n, in order.

    Returns:
        float64 array of the n per-step values.
    """
    means = np.asarray(running_means, np.float64)
    sums = means * np.arange(1, len(means) + 1)
    return np.diff(sums, prepend=0.0)


class StepRecorder(keras.callbacks.Callback):
    """Collects each training step's loss (and accuracy) and learning rate; writes them once per epoch.

    The hot path only stores the batch's logs: Keras dispatches this
    callback on a worker thread (`async_safe`) where the backend allows
    it, and the events are written and flushed at the epoch's end, after
    `EpochRecorder` has committed the epoch. The run's global step
    (`epochs before this one × steps_per_epoch + step`) is the x-axis of
    the `step/*` scalars, so a resumed run continues the same axis; an
    epoch killed before its commit wrote no step events, and is trained
    and written again, so no step appears twice.

    Args:
        writer: the run's `ScalarWriter`.
        steps_per_epoch: optimizer steps per epoch.
        schedule_fn: returns the current phase's learning-rate schedule (a
            callable of the optimizer step, `learning_rate_schedule`).
        metric_name: name of the compiled training metric in the logs
            (`"accuracy"`), or `None`.
    """

    async_safe = True  # only appends to a locked buffer

    def __init__(self, writer, steps_per_epoch, schedule_fn, metric_name=None):
        super().__init__()
        self.writer, self.steps_per_epoch = writer, steps_per_epoch
        self.schedule_fn, self.metric_name = schedule_fn, metric_name
        self._lock = threading.Lock()
        self._rows = []
        self._first_iteration = 0

    def on_epoch_begin(self, epoch, logs=None):
        with self._lock:
            self._rows = []
        self._first_iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        # Taken now: a plateau rule changes the schedule at the epoch's end, before the rates are written.
        iterations = np.arange(self._first_iteration, self._first_iteration + self.steps_per_epoch)
        self._rates = np.asarray(keras.ops.convert_to_numpy(self.schedule_fn()(iterations)), np.float64)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        with self._lock:
            self._rows.append((batch, logs.get("loss"), logs.get(self.metric_name) if self.metric_name else None))

    def on_epoch_end(self, epoch, logs=None):
        with self._lock:
            rows = sorted(self._rows, key=lambda row: row[0])
            self._rows = []
        if not rows or any(row[1] is None for row in rows):
            return
        losses = per_step_values([row[1] for row in rows])
        metrics = per_step_values([row[2] for row in rows]) if all(row[2] is not None for row in rows) else None
        # The learning rate step k was taken with: the phase's schedule at the optimizer's k-th iteration.
        rates = np.broadcast_to(self._rates, (self.steps_per_epoch,))[:len(rows)]
        first = epoch * self.steps_per_epoch
        for index, (batch, _, _) in enumerate(rows):
            values = {"step/loss": losses[index], "step/lr": rates[index]}
            if metrics is not None:
                values[f"step/{self.metric_name}"] = metrics[index]
            self.writer.scalars(first + batch + 1, values)
        self.writer.flush()
