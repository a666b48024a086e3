"""SSAST's learning-rate schedule: linear warm-up, then ×`decay_rate` when the evaluation metric stalls."""

import math

import keras
from keras import ops

from kc2f.training.warmup_step_decay import check_peak_and_warmup, linear_warmup

# The plateau rule's state, held as optimizer variables (see `WarmupPlateauDecay.attach`).
_STATE = ("lr_plateau_scale", "lr_plateau_best", "lr_plateau_wait")


@keras.saving.register_keras_serializable(package="kc2f")
class WarmupPlateauDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over `warmup_steps`, then ×`decay_rate` after `patience` evaluations without gain.

    SSAST (https://arxiv.org/abs/2110.09784; `src/traintest_mask.py` of
    https://github.com/YuanGongND/ssast) warms up linearly over 1000 steps and
    then steps `torch.optim.lr_scheduler.ReduceLROnPlateau(mode="max",
    factor=0.5, patience=2)` on the masked-patch accuracy of every evaluation
    (every 4000 steps): the rate halves when `patience + 1` evaluations in a
    row have not beaten the best by the relative `threshold` (1e-4, torch's
    default). `update` applies that rule once per evaluation.

    The rule's state (the current multiplier, the best metric and the count of
    evaluations without gain) lives in three scalar variables of the
    optimizer (`attach`), so it is part of the optimizer state that a
    checkpoint saves and a resumed run restores, it is read inside the
    compiled train step on every backend (JAX passes optimizer variables
    in), and a phase switch, which compiles a fresh optimizer, starts it
    anew: the coarse phase's plateau does not carry into the fine phase.

    Args:
        learning_rate: peak rate.
        warmup_steps: steps of linear warm-up (0: none).
        decay_rate: multiplier per decay (SSAST: 0.5).
        patience: evaluations without gain tolerated before a decay (SSAST: 2).
        threshold: relative gain over the best that counts as one.
    """

    def __init__(self, learning_rate, warmup_steps=1000, decay_rate=0.5, patience=2, threshold=1e-4):
        check_peak_and_warmup(learning_rate, warmup_steps)
        if decay_rate <= 0:
            raise ValueError(f"decay_rate must be positive. Received: decay_rate={decay_rate}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0. Received: patience={patience}")
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0. Received: threshold={threshold}")
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps
        self.decay_rate = decay_rate
        self.patience = patience
        self.threshold = threshold
        self._state = None

    def attach(self, optimizer):
        """Creates the rule's state as variables of `optimizer` (before it is built); returns `self`."""
        if self._state is not None:
            raise ValueError("This schedule is attached to an optimizer already; each phase needs its own.")
        initial = {"lr_plateau_scale": "ones", "lr_plateau_best": keras.initializers.Constant(-math.inf),
                   "lr_plateau_wait": "zeros"}
        self._state = {name: optimizer.add_variable((), initializer=initial[name], dtype="float32", name=name)
                       for name in _STATE}
        return self

    @property
    def scale(self):
        """The multiplier of the peak rate that the decays so far give (1.0 before any)."""
        return float(ops.convert_to_numpy(self._variables()["lr_plateau_scale"]))

    def update(self, metric):
        """Applies the plateau rule to one evaluation's `metric` (higher is better); returns the new scale."""
        state = self._variables()
        best = float(ops.convert_to_numpy(state["lr_plateau_best"]))
        wait = float(ops.convert_to_numpy(state["lr_plateau_wait"]))
        scale = self.scale
        # torch's ReduceLROnPlateau, mode "max", threshold_mode "rel" (best starts at -inf).
        if metric > best * (1.0 + self.threshold):
            best, wait = float(metric), 0.0
        else:
            wait += 1.0
            if wait > self.patience:
                scale, wait = scale * self.decay_rate, 0.0
        for name, value in zip(_STATE, (scale, best, wait)):
            state[name].assign(value)
        return scale

    def _variables(self):
        if self._state is None:
            raise ValueError("WarmupPlateauDecay needs attach(optimizer) before it is used.")
        return self._state

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = linear_warmup(step, self.warmup_steps)
        return self.learning_rate * warm * ops.cast(self._variables()["lr_plateau_scale"], "float32")

    def get_config(self):
        return dict(learning_rate=self.learning_rate, warmup_steps=self.warmup_steps, decay_rate=self.decay_rate,
                    patience=self.patience, threshold=self.threshold)

