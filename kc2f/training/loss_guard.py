"""Stops a run whose training loss is no longer a finite number, before that epoch is committed."""

import math

import keras

from kc2f.training.run_error import RunError


class LossGuard(keras.callbacks.Callback):
    """Raises `RunError` at the end of an epoch whose training loss is NaN or infinite.

    Keras' `TerminateOnNaN` stops training quietly; a kc2f run must instead end
    with an error, and must not commit the diverged epoch, so that the run
    directory keeps the last good checkpoint. Keras reports the epoch's running
    mean, which a single non-finite batch makes non-finite, so checking it once
    per epoch (first among the callbacks, before evaluation and the commit)
    catches every such batch without a device sync per step.

    Args:
        run: the run directory (named in the message).
        committed: function returning how many epochs are committed.
    """

    def __init__(self, run, committed):
        super().__init__()
        self.run = run
        self.committed = committed

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        kept = self.committed()
        where = (f"the run directory keeps epoch {kept}: train with other options (e.g. a lower --lr) in "
                 "another --run-dir" if kept else
                 "no epoch was committed: re-run with other options (e.g. a lower --lr) in the same --run-dir")
        raise RunError(f"Training loss became {float(loss)} in epoch {epoch + 1} of {self.run}; that epoch was "
                       f"not committed, and {where}.")
