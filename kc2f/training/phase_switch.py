"""The `PhaseSwitch` callback: ends a phase and moves the model to the next factor."""

import contextlib
import time

import keras


class PhaseSwitch(keras.callbacks.Callback):
    """Ends each phase at its last epoch and builds the next phase's model.

    The phase switch of *From Coarse to Fine* (https://arxiv.org/abs/2401.08415):
    at the end of a compressed phase the model is rebuilt for the next
    (finer) factor through the run's model family, every weight is carried over
    and the grid-shaped ones are resized (position embedding interpolated,
    patch kernel resized), and training goes on with a fresh optimizer and
    learning-rate schedule. In budget mode (the paper's Table 2) the final phase
    ends at the first epoch whose validation metric reaches `target`.

    At the end of each epoch the callback decides (reading the evaluator's
    `state.result`), and stops Keras' `fit` at the end of a phase or of the
    run. When `fit` returns after a phase's last epoch (`on_train_end`, after
    the epoch was recorded and checkpointed), it builds the next phase's model
    and transfers the weights into it; the driver compiles a fresh optimizer for
    `next_model` and continues. The time this takes is charged to the next
    epoch's training time (`state.overhead`).

    Args:
        schedule: the run's `PhaseSchedule`.
        family: the run's `ModelFamily` (weight transfer, token counts).
        build: function `factor -> model` (the family's `build` with the
            run's options, dataset and classes bound).
        state: the run's `RunState`.
        target: metric value that ends the final phase, or `None`
            (convergence mode: train every epoch).
        scope: zero-argument context manager the new model is built in (a
            distribution's variable scope), or `None`.
        log: function taking one line of text.
        on_switch: optional `(epoch, text)` function told about each switch
            (TensorBoard).

    Attributes:
        next_model: the next phase's model after a switch, else `None`.
    """

    def __init__(self, schedule, family, build, state, target=None, scope=None, log=print, on_switch=None):
        super().__init__()
        self.schedule = schedule
        self.family = family
        self.build = build
        self.state = state
        self.target = target
        self.scope = scope or contextlib.nullcontext
        self.log = log
        self.on_switch = on_switch
        self.next_model = None
        self._next_phase = None

    def on_train_begin(self, logs=None):
        self.next_model = self._next_phase = None

    def on_epoch_begin(self, epoch, logs=None):
        self.state.phase_ended = False

    def on_epoch_end(self, epoch, logs=None):
        phase = self.schedule.phase_of_epoch(epoch)
        last_phase = phase == self.schedule.num_phases - 1
        value = self.state.result.metric if self.state.result is not None else None
        if last_phase and self.target is not None and value is not None and value >= self.target:
            self.state.target_reached = True
            self.state.finished = True
            self.state.stop_reason = f"target {self.target:.4f} reached"
        elif epoch + 1 >= self.schedule.total_epochs:
            self.state.finished = True
            self.state.stop_reason = "all epochs trained"
        elif self.schedule.is_last_epoch_of_phase(epoch):
            self._next_phase = phase + 1
            self.state.phase_ended = True
        if self.state.finished or self._next_phase is not None:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._next_phase is not None:
            self.next_model = self.switch(self.model, self._next_phase)

    def switch(self, model, phase):
        """`model` carried over to `phase`'s factor (the same model if it already has it)."""
        factor = self.schedule.factors[phase]
        if model.factor == factor:
            return model
        start = time.perf_counter()
        with self.scope():
            new_model = self.build(factor)
            report = self.family.transfer(model, new_model)
        self.log(
            f"Phase {phase + 1}: C={model.factor} -> C={factor}, tokens "
            f"{self.family.tokens(model)} -> {self.family.tokens(new_model)}; resized "
            f"{', '.join(report.paths('resized'))}; fresh optimizer and LR schedule."
        )
        if self.on_switch is not None:
            epoch = self.schedule.phase_start(phase)
            self.on_switch(epoch, f"epoch {epoch}: C={model.factor} -> C={factor}")
        self.state.overhead += time.perf_counter() - start
        return new_model
