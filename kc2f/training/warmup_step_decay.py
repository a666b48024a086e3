"""AST's learning-rate schedule: linear warm-up, then step decay by epochs."""

import keras
from keras import ops


def check_peak_and_warmup(learning_rate, warmup_steps):
    """ValueError unless the peak rate is positive and the warm-up steps are >= 0."""
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive. Received: learning_rate={learning_rate}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0. Received: warmup_steps={warmup_steps}")


def linear_warmup(step, warmup_steps):
    """The warm-up factor of optimizer step `step` (a float tensor): `(step + 1) / warmup_steps`, at most 1."""
    return ops.minimum(1.0, (step + 1.0) / max(warmup_steps, 1))


@keras.saving.register_keras_serializable(package="kc2f")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over `warmup_steps`, then `decay_rate` every `decay_every` epochs.

    AST (https://arxiv.org/abs/2104.01778, and its recipes) warms up linearly over
    the first 1000 steps, then halves the rate every 5 epochs from epoch 10
    (AudioSet-balanced). A phase switch compiles a fresh optimizer, so the
    schedule restarts from step 0 in every phase, as the paper resets it.

    Args:
        learning_rate: peak rate.
        warmup_steps: steps of linear warm-up (0: none).
        steps_per_epoch: optimizer steps per epoch (to turn steps into epochs).
        decay_start_epoch: first epoch (0-based, within the phase) decayed.
        decay_every: epochs between decays.
        decay_rate: multiplier per decay.
    """

    def __init__(
        self,
        learning_rate,
        warmup_steps=1000,
        steps_per_epoch=1,
        decay_start_epoch=10,
        decay_every=5,
        decay_rate=0.5,
    ):
        check_peak_and_warmup(learning_rate, warmup_steps)
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1. Received: steps_per_epoch={steps_per_epoch}")
        if decay_every < 1:
            raise ValueError(f"decay_every must be >= 1. Received: decay_every={decay_every}")
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps
        self.steps_per_epoch = steps_per_epoch
        self.decay_start_epoch = decay_start_epoch
        self.decay_every = decay_every
        self.decay_rate = decay_rate

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = linear_warmup(step, self.warmup_steps)
        epoch = ops.floor(step / self.steps_per_epoch)
        decays = ops.floor(ops.maximum(0.0, epoch - self.decay_start_epoch) / self.decay_every)
        decays = ops.where(epoch >= self.decay_start_epoch, decays + 1.0, 0.0)
        return self.learning_rate * warm * ops.power(self.decay_rate, decays)

    def get_config(self):
        return dict(
            learning_rate=self.learning_rate,
            warmup_steps=self.warmup_steps,
            steps_per_epoch=self.steps_per_epoch,
            decay_start_epoch=self.decay_start_epoch,
            decay_every=self.decay_every,
            decay_rate=self.decay_rate,
        )
