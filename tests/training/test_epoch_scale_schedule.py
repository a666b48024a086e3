"""`lr_schedule: epoch-scales` and `optimizer: adamw`: HTS-AT's recipe through generic run options."""

import bisect

import keras
import numpy as np
import pytest

from kc2f.training.epoch_scale_schedule import EpochScaleSchedule, parse_epoch_scales
from kc2f.training.lean_adam import LeanAdam
from kc2f.training.phase_optimizer import compile_phase
from kc2f.training.run_config import RunConfig
from kc2f.training.warmup_step_decay import WarmupStepDecay

HTSAT_SCALES = "0.02,0.05,0.1*9,0.05*10,0.02*10,0.03"  # configs/htsat_audioset.yaml


def htsat_lr_foo(epoch, lr_rate=(0.02, 0.05, 0.1), lr_scheduler_epoch=(10, 20, 30)):
    """HTS-AT's sed_model.py configure_optimizers.lr_foo, transcribed."""
    if epoch < 3:
        return lr_rate[epoch]
    lr_pos = int(-1 - bisect.bisect_left(lr_scheduler_epoch, epoch))
    if lr_pos < -3:
        return max(lr_rate[0] * (0.98 ** epoch), 0.03)
    return lr_rate[lr_pos]


def test_parse_and_the_htsat_schedule_epoch_by_epoch():
    assert parse_epoch_scales("0.5,1*3") == (0.5, 1.0, 1.0, 1.0)
    schedule = EpochScaleSchedule(1e-3, parse_epoch_scales(HTSAT_SCALES), steps_per_epoch=7)
    for epoch in range(60):
        for step in (epoch * 7, epoch * 7 + 6):
            got = float(keras.ops.convert_to_numpy(schedule(step)))
            assert got == pytest.approx(1e-3 * htsat_lr_foo(epoch), rel=1e-6), epoch
    assert EpochScaleSchedule(**schedule.get_config()).get_config() == schedule.get_config()


@pytest.mark.parametrize("text", ["", "a,1", "0.1*0", "-1", "0.1*x"])
def test_bad_scales_name_the_option(text):
    with pytest.raises(ValueError, match="lr_epoch_scales"):
        parse_epoch_scales(text)


def test_run_config_checks_the_new_options():
    with pytest.raises(ValueError, match="lr_epoch_scales"):
        RunConfig(lr_schedule="epoch-scales")
    with pytest.raises(ValueError, match="optimizer"):
        RunConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="sample_rate"):
        RunConfig(sample_rate=0)


def _schedule_name(optimizer):
    return optimizer.get_config()["learning_rate"]["class_name"]


def _model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def test_defaults_stay_adam_with_warmup_step_decay_and_adamw_is_chosen_by_option():
    # Keras 3's AdamW is its Adam with a weight decay: both options build kc2f's Adam (LeanAdam; on
    # PyTorch Keras' own), with the option's decay and betas.
    adam_class = keras.optimizers.Adam if keras.backend.backend() == "torch" else LeanAdam
    default = compile_phase(_model(), RunConfig(lr=1e-3), False, 10)
    assert type(default) is adam_class and _schedule_name(default) == WarmupStepDecay.__name__
    assert default.get_config()["weight_decay"] == pytest.approx(RunConfig().weight_decay)
    config = RunConfig(lr=1e-3, optimizer="adamw", weight_decay=0.05, beta_1=0.9, lr_schedule="epoch-scales",
                       lr_epoch_scales=HTSAT_SCALES)
    adamw = compile_phase(_model(), config, True, 10)
    assert type(adamw) is adam_class and adamw.get_config()["weight_decay"] == pytest.approx(0.05)
    assert adamw.beta_1 == pytest.approx(0.9)
    assert _schedule_name(adamw) == EpochScaleSchedule.__name__
    adamw.iterations.assign(115)  # epoch 11 of 10-step epochs: x0.05
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(adamw.learning_rate)), 5e-5, rtol=1e-6)
