"""The `PhaseSwitch` callback: decides when a phase (or the run) ends."""

import keras


class PhaseSwitch(keras.callbacks.Callback):
    """Ends the current phase at its last epoch, or the run when the target is met.

    Keras cannot swap the model inside a running `fit`, so this callback only
    decides and signals: at the end of each epoch it sets `switch` (this was the
    last epoch of a compressed phase: the driver must rebuild the model for the
    next factor, transfer and resize the weights, and compile a fresh optimizer)
    or `target_reached` (budget mode of *From Coarse to Fine*,
    https://arxiv.org/abs/2401.08415, Table 2: the final phase stops at the first
    epoch whose validation metric reaches the baseline's best), and stops
    training in both cases.

    Args:
        schedule: the run's `PhaseSchedule`.
        target: metric value that ends the final phase, or `None`
            (convergence mode: train every epoch).
        monitor: the logs key holding the validation metric.
    """

    def __init__(self, schedule, target=None, monitor="val_metric"):
        super().__init__()
        self.schedule = schedule
        self.target = target
        self.monitor = monitor
        self.switch = False
        self.target_reached = False
        self.finished = False

    def on_epoch_begin(self, epoch, logs=None):
        self.switch = self.target_reached = self.finished = False

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        phase = self.schedule.phase_of_epoch(epoch)
        last_phase = phase == self.schedule.num_phases - 1
        value = logs.get(self.monitor)
        if last_phase and self.target is not None and value is not None and value >= self.target:
            self.target_reached = True
        if epoch + 1 >= self.schedule.total_epochs or self.target_reached:
            self.finished = True
        elif self.schedule.is_last_epoch_of_phase(epoch):
            self.switch = True
        if self.finished or self.switch:
            self.model.stop_training = True
