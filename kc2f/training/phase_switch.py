"""The `PhaseSwitch` callback: ends a phase and moves the model to the next factor."""

import contextlib
import time

import keras

from kc2f.training.budget_policy import BudgetPolicy
from kc2f.training.phase_schedule import adaptive_schedule
from kc2f.training.plateau_policy import PlateauPolicy

SWITCH_RULES = ("fixed", "plateau", "budget")


def max_coarse_epochs(config, num_phases, epochs):
    """`config.switch_max_epochs`, or by default half the epochs shared by the coarse phases."""
    if config.switch_max_epochs is not None:
        return config.switch_max_epochs
    return max(config.switch_min_epochs, (epochs // 2) // max(1, num_phases - 1))


def build_policy(config, num_phases, epochs):
    """The adaptive switch policy of `config.switch` (`None` for `fixed`, the paper's schedule)."""
    if config.switch == "fixed" or num_phases == 1:
        return None
    max_epochs = max_coarse_epochs(config, num_phases, epochs)
    if config.switch == "plateau" and max_epochs < config.switch_patience + 1:
        # The first epoch sets the best; `patience` more without improvement end the phase.
        cap = ("switch_max_epochs" if config.switch_max_epochs is not None
               else f"half of the {epochs} epochs over {num_phases - 1} coarse phase(s)")
        raise ValueError(
            f"--switch plateau cannot fire: a coarse phase trains at most {max_epochs} epochs ({cap}), but "
            f"switch_patience {config.switch_patience} needs {config.switch_patience + 1} to see a plateau. Lower "
            f"switch_patience, raise switch_max_epochs or train more epochs. Received: "
            f"switch_patience={config.switch_patience}, max coarse epochs={max_epochs}"
        )
    if config.switch == "plateau":
        return PlateauPolicy(monitor=config.switch_monitor, patience=config.switch_patience,
                             min_delta=config.switch_min_delta, min_epochs=config.switch_min_epochs,
                             max_epochs=max_epochs)
    if config.switch == "budget":
        return BudgetPolicy(budget=config.switch_budget, min_epochs=config.switch_min_epochs, max_epochs=max_epochs)
    raise ValueError(f"Option 'switch' must be one of {SWITCH_RULES}. Received: switch={config.switch!r}")


class PhaseSwitch(keras.callbacks.Callback):
    """Ends each phase at its last epoch and builds the next phase's model.

    The phase switch of *From Coarse to Fine* (https://arxiv.org/abs/2401.08415):
    at the end of a compressed phase the model is rebuilt for the next
    (finer) factor through the run's model family, every weight is carried over
    and the grid-shaped ones are resized (position embedding interpolated,
    patch kernel resized), and training goes on with a fresh optimizer and
    learning-rate schedule. In budget mode (the paper's Table 2) the final phase
    ends at the first epoch whose validation metric reaches `target`.

    With a `policy` (`PlateauPolicy` or `BudgetPolicy`: an adaptive switch,
    beyond the paper) a coarse phase ends when the policy says so or at its
    provisional last epoch (`adaptive_schedule`); the schedule in
    `state.schedule` is then revised so that the unspent epochs go to the
    phases after it. The policy's state and the decided phase lengths live in
    `state.switch`, which every epoch commits, and the decision's evidence in
    `state.decision`, which the recorder adds to the epoch's history row.

    At the end of each epoch the callback decides (reading the evaluator's
    `state.result`), and stops Keras' `fit` at the end of a phase or of the
    run. When `fit` returns after a phase's last epoch (`on_train_end`, after
    the epoch was recorded and checkpointed), it builds the next phase's model
    and transfers the weights into it; the driver compiles a fresh optimizer for
    `next_model` and continues. The time this takes is charged to the next
    epoch's training time (`state.overhead`).

    Args:
        schedule: the run's `PhaseSchedule`; with a `policy`, the
            `adaptive_schedule` of the phase lengths decided so far.
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
        policy: adaptive switch policy, or `None` (the fixed `schedule`).
        max_epochs: the longest a coarse phase may train (adaptive only).
        epoch_flops: function `factor -> training FLOPs of one epoch`
            (needed by `BudgetPolicy` and to stop at `budget`).
        budget: training FLOPs after which the final phase stops, or `None`.

    Attributes:
        next_model: the next phase's model after a switch, else `None`.
    """

    def __init__(self, schedule, family, build, state, target=None, scope=None, log=print, on_switch=None,
                 policy=None, max_epochs=None, epoch_flops=None, budget=None):
        super().__init__()
        self.policy = policy
        self.max_epochs = max_epochs
        self.epoch_flops = epoch_flops
        self.budget = budget
        self.state = state
        state.schedule = schedule
        if policy is not None:
            if state.switch is None:
                state.switch = {"decided": [], "policy": None}
                self._start_policy(0)
            else:
                policy.set_state(state.switch["policy"])
        self.family = family
        self.build = build
        self.target = target
        self.scope = scope or contextlib.nullcontext
        self.log = log
        self.on_switch = on_switch
        self.next_model = None
        self._next_phase = None

    @property
    def schedule(self):
        """The run's current `PhaseSchedule` (revised by an adaptive switch)."""
        return self.state.schedule

    def on_train_begin(self, logs=None):
        self.next_model = self._next_phase = None

    def on_epoch_begin(self, epoch, logs=None):
        self.state.phase_ended = False
        self.state.decision = None

    def on_epoch_end(self, epoch, logs=None):
        phase = self.schedule.phase_of_epoch(epoch)
        last_phase = phase == self.schedule.num_phases - 1
        value = self.state.result.metric if self.state.result is not None else None
        if self.policy is not None and not last_phase:
            self._decide(epoch, phase, value, logs)
        spent = self.state.counters["flops"] + (self.epoch_flops(self.model.factor) if self.budget else 0.0)
        if last_phase and self.target is not None and value is not None and value >= self.target:
            self.state.target_reached = True
            self.state.finished = True
            self.state.stop_reason = f"target {self.target:.4f} reached"
        elif epoch + 1 >= self.schedule.total_epochs:
            self.state.finished = True
            self.state.stop_reason = "all epochs trained"
        elif last_phase and self.budget and spent + self.epoch_flops(self.model.factor) > self.budget:
            self.state.finished = True
            self.state.stop_reason = f"FLOPs budget {self.budget:.4g} spent"
        elif self.schedule.is_last_epoch_of_phase(epoch):
            self._next_phase = phase + 1
            self.state.phase_ended = True
        if self.state.finished or self._next_phase is not None:
            self.model.stop_training = True

    def _decide(self, epoch, phase, value, logs):
        """Asks the policy about this epoch; on a switch, revises the schedule and starts the next phase's policy."""
        flops = self.state.counters["flops"]
        if self.epoch_flops is not None:
            flops += self.epoch_flops(self.model.factor)
        decision = self.policy.observe(metric=value, loss=float((logs or {}).get("loss", "nan")), flops=flops)
        reason = decision["reason"]
        if reason is None and self.schedule.is_last_epoch_of_phase(epoch):
            reason = "epoch budget"  # the later phases need the rest of the epochs
        if reason is not None:
            switch = self.state.switch
            switch["decided"] = [*switch["decided"], epoch + 1 - self.schedule.phase_start(phase)]
            self.state.schedule = adaptive_schedule(self.schedule.factors, self.schedule.total_epochs,
                                                    switch["decided"], self.max_epochs)
            self._start_policy(phase + 1, start_flops=flops)
            evidence = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in decision.items() if k not in ("switch", "reason") and v is not None)
            self.log(f"Phase {phase + 1} ends after epoch {epoch + 1} ({reason}: {evidence}); "
                     f"epochs per phase now {list(self.schedule.phase_epochs)}.")
        else:
            self.state.switch["policy"] = self.policy.get_state()
        self.state.decision = {
            "phase_end": reason or "",
            **{f"switch_{k}": v for k, v in decision.items() if k not in ("switch", "reason")},
        }

    def _start_policy(self, phase, start_flops=0.0):
        schedule = self.schedule
        if phase < schedule.num_phases - 1:
            next_flops = self.epoch_flops(schedule.factors[phase + 1]) if self.epoch_flops is not None else None
            self.policy.start_phase(start_flops=start_flops, next_epoch_flops=next_flops,
                                    epochs_left=schedule.total_epochs - schedule.phase_start(phase))
        self.state.switch["policy"] = self.policy.get_state()

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
            f"{', '.join(report.paths('resized')) or 'nothing'}; fresh optimizer and LR schedule."
        )
        if self.on_switch is not None:
            epoch = self.schedule.phase_start(phase)
            self.on_switch(epoch, f"epoch {epoch}: C={model.factor} -> C={factor}")
        self.state.overhead += time.perf_counter() - start
        return new_model
