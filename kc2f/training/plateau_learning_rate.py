"""Steps a phase's `WarmupPlateauDecay` with each evaluation's metric."""

import keras

from kc2f.training.warmup_plateau_decay import WarmupPlateauDecay


class PlateauLearningRate(keras.callbacks.Callback):
    """Feeds each epoch's metric to the phase's `WarmupPlateauDecay` (SSAST's ReduceLROnPlateau step).

    It runs after `EpochEvaluator` (whose `state.result` holds the metric on
    the run's selection split) and before `EpochRecorder`, so the checkpoint
    that commits the epoch holds the rule's updated state, and a resumed run
    goes on from it. Other schedules are left alone.

    Args:
        schedule_fn: returns the current phase's learning-rate schedule.
        state: the run's `RunState`.
        log: where a decay is reported.
    """

    def __init__(self, schedule_fn, state, log=print):
        super().__init__()
        self.schedule_fn, self.state, self.log = schedule_fn, state, log

    def on_epoch_end(self, epoch, logs=None):
        schedule = self.schedule_fn()
        if not isinstance(schedule, WarmupPlateauDecay) or self.state.result is None:
            return
        before = schedule.scale
        after = schedule.update(self.state.result.metric)
        if after < before:
            self.log(f"epoch {epoch + 1}: {schedule.patience + 1} evaluation(s) without gain; learning rate "
                     f"x{schedule.decay_rate:g} -> {schedule.learning_rate * after:.3g}")
