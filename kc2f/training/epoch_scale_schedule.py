"""A learning rate given per epoch as multiples of the peak rate (LambdaLR-style schedules)."""

import keras
import numpy as np
from keras import ops


def parse_epoch_scales(text):
    """`"0.02,0.05,0.1*9,0.03"` -> `(0.02, 0.05, 0.1, …, 0.1, 0.03)`: one multiplier per epoch, `x*n` repeats.

    Raises:
        ValueError: naming `lr_epoch_scales` for anything else (an empty list,
            a non-number, a repeat count below 1, a negative multiplier).
    """
    message = ("Option 'lr_epoch_scales' expects comma-separated non-negative numbers, each optionally "
               f"repeated as x*n (e.g. 0.02,0.05,0.1*9,0.03). Received: lr_epoch_scales={text!r}")
    scales = []
    for item in str(text).split(","):
        value, _, count = item.strip().partition("*")
        try:
            value, count = float(value), int(count) if count else 1
        except ValueError:
            raise ValueError(message) from None
        if value < 0 or count < 1:
            raise ValueError(message)
        scales += [value] * count
    if not scales:
        raise ValueError(message)
    return tuple(scales)


@keras.saving.register_keras_serializable(package="kc2f")
class EpochScaleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate × scales[epoch]`, the last multiplier holding for every later epoch.

    What PyTorch's `LambdaLR` stepped once per epoch gives, e.g. HTS-AT's
    (`configure_optimizers` in its `sed_model.py`: ×0.02, 0.05, 0.1 over the
    first three epochs as warm-up, then 0.1, 0.05, 0.02 by its
    `lr_scheduler_epoch` [10, 20, 30], then 0.03). Constant within an epoch.

    Args:
        learning_rate: the peak (base) rate.
        scales: multipliers, one per epoch (0-based, within the phase).
        steps_per_epoch: optimizer steps per epoch.
    """

    def __init__(self, learning_rate, scales, steps_per_epoch=1):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive. Received: learning_rate={learning_rate}")
        scales = tuple(float(s) for s in scales)
        if not scales or min(scales) < 0:
            raise ValueError(f"scales must be non-empty and non-negative. Received: scales={scales}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1. Received: steps_per_epoch={steps_per_epoch}")
        self.learning_rate = learning_rate
        self.scales = scales
        self.steps_per_epoch = steps_per_epoch

    def __call__(self, step):
        epoch = ops.floor(ops.cast(step, "float32") / self.steps_per_epoch)
        index = ops.cast(ops.minimum(epoch, len(self.scales) - 1), "int32")
        return self.learning_rate * ops.take(np.asarray(self.scales, "float32"), index)

    def get_config(self):
        return dict(learning_rate=self.learning_rate, scales=list(self.scales), steps_per_epoch=self.steps_per_epoch)
