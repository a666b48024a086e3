"""Phase schedules, the PhaseSwitch callback and the LR schedule."""

import keras
import numpy as np
import pytest

from kc2f.families import get_family
from kc2f.training.phase_schedule import PhaseSchedule, build_schedule, parse_factors
from kc2f.training.phase_switch import PhaseSwitch
from kc2f.training.run_state import EpochResult, RunState
from kc2f.training.warmup_step_decay import WarmupStepDecay
from tests.families.toy_family import FrameEnergyClassifier


@pytest.mark.parametrize(
    "factors,epochs,fraction,expected",
    [
        ("2,1", 20, 0.25, (5, 15)),  # VGGSound / VoxCeleb / Kinetics-Sounds: 5 of 20
        ("4,1", 5, 0.25, (1, 4)),  # AudioSet: 1 of 5
        ("1", 30, 0.25, (30,)),
        ("4,2,1", 20, 0.3, (3, 3, 14)),  # the 3-phase reading of the paper
        ("4,2,1", 10, 0.25, (2, 1, 7)),
    ],
)
def test_build_schedule_splits_like_the_paper(factors, epochs, fraction, expected):
    schedule = build_schedule(factors, epochs, initial_fraction=fraction)
    assert schedule.phase_epochs == expected
    assert schedule.total_epochs == epochs


@pytest.mark.parametrize(
    "factors,epochs,expected",
    [
        ("4,2,1", 20, (3, 3, 14)),  # the paper's 3-phase split (Table 4 back-solves to it)
        ("2,1", 20, (5, 15)),  # one initial phase: 25%
        ("4,1", 5, (1, 4)),  # AudioSet: 1 of 5
        ("4,2,1", 5, (1, 1, 3)),
        ("8,4,2,1", 20, (2, 2, 2, 14)),  # 30% shared by three initial phases
        ("2", 12, (12,)),  # coarse only
    ],
)
def test_default_split_is_the_papers(factors, epochs, expected):
    assert build_schedule(factors, epochs).phase_epochs == expected


def test_resolved_config_records_the_default_fraction():
    from kc2f.training.preparation import resolve
    from kc2f.training.run_config import RunConfig

    three, _ = resolve(RunConfig(factors=(4, 2, 1), epochs=20))
    two, _ = resolve(RunConfig(factors=(2, 1), epochs=20))
    explicit, _ = resolve(RunConfig(factors=(4, 2, 1), epochs=20, initial_fraction=0.25))
    assert (three.initial_fraction, two.initial_fraction, explicit.initial_fraction) == (0.30, 0.25, 0.25)
    assert build_schedule(explicit.factors, 20, initial_fraction=explicit.initial_fraction).phase_epochs == (3, 2, 15)


def test_a_single_coarse_factor_is_a_one_phase_run():
    schedule = PhaseSchedule((2,), (6,))
    assert schedule.num_phases == 1 and schedule.phase_of_epoch(5) == 0


def test_explicit_phase_epochs_and_epoch_lookup():
    schedule = build_schedule("4,2,1", None, phase_epochs="3,3,14")
    assert schedule.factors == (4, 2, 1)
    assert [schedule.phase_of_epoch(e) for e in (0, 2, 3, 5, 6, 19)] == [0, 0, 1, 1, 2, 2]
    assert schedule.is_last_epoch_of_phase(2) and not schedule.is_last_epoch_of_phase(3)
    assert (schedule.phase_start(2), schedule.phase_end(2)) == (6, 20)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(factors="2,2,1", epochs=10), "strictly descending"),
        (dict(factors="1,2", epochs=10), "end in 1"),
        (dict(factors="2,2", epochs=10), "end in 1"),
        (dict(factors="0,1", epochs=10), "factors=\\(0, 1\\)"),
        (dict(factors="a,1", epochs=10), "factors='a,1'"),
        (dict(factors="2,1", epochs=1), "no epoch for the final phase"),
        (dict(factors="2,1", epochs=10, phase_epochs="3,3,4"), "one entry per factor"),
        (dict(factors="2,1", epochs=10, phase_epochs="3,3"), "add up to epochs"),
        (dict(factors="2,1", epochs=10, initial_fraction=1.5), "initial_fraction=1.5"),
    ],
)
def test_invalid_schedules_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_schedule(**kwargs)


def test_parse_factors():
    assert parse_factors("4, 2,1") == (4, 2, 1)
    assert parse_factors([2, 1]) == (2, 1)
    with pytest.raises(ValueError, match="must not be empty"):
        parse_factors("")


class _Model:
    stop_training = False


def _run_switch(schedule, metrics, target=None):
    state = RunState()
    callback = PhaseSwitch(schedule, get_family("toy-energy"), None, state, target=target)
    callback.set_model(_Model())
    events = []
    for epoch, value in enumerate(metrics):
        callback.on_epoch_begin(epoch)
        state.result = EpochResult(train_seconds=1.0, eval_seconds=0.1, metric=value, metrics={})
        callback.on_epoch_end(epoch)
        events.append((state.phase_ended, state.target_reached, state.finished))
        if state.finished:
            break
    return events


def test_phase_switch_signals_phase_ends_and_the_run_end():
    schedule = PhaseSchedule((4, 2, 1), (1, 2, 2))
    events = _run_switch(schedule, [0.1] * 5)
    assert events == [
        (True, False, False), (False, False, False), (True, False, False),
        (False, False, False), (False, False, True),
    ]


def test_phase_switch_budget_mode_stops_only_in_the_final_phase():
    schedule = PhaseSchedule((2, 1), (2, 3))
    # The coarse phase already beats the target: no stop there; stop at epoch 4.
    events = _run_switch(schedule, [0.9, 0.95, 0.5, 0.92, 0.99], target=0.9)
    assert len(events) == 4
    assert events[-1] == (False, True, True)
    assert events[1] == (True, False, False)


def test_phase_switch_builds_the_next_phase_model_and_transfers_the_weights():
    family = get_family("toy-energy")
    schedule = PhaseSchedule((4, 2, 1), (1, 1, 1))
    state, switches, lines = RunState(), [], []
    built = []

    def build(factor):
        built.append(factor)
        return FrameEnergyClassifier(3, factor=factor)

    callback = PhaseSwitch(schedule, family, build, state, log=lines.append,
                           on_switch=lambda epoch, text: switches.append((epoch, text)))
    model = FrameEnergyClassifier(3, factor=4)
    model.offset.assign(np.arange(16, dtype="float32"))
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    state.result = EpochResult(train_seconds=1.0, eval_seconds=0.1, metric=0.5, metrics={})
    callback.on_epoch_end(0)
    assert model.stop_training and callback.next_model is None  # the switch waits for fit to return
    callback.on_train_end()
    new = callback.next_model
    assert built == [2] and new.factor == 2 and new.cells == 32
    # The grid-shaped weight is resampled (a ramp stays a ramp), the head is copied.
    np.testing.assert_allclose(np.asarray(new.offset.numpy())[1::2] - np.asarray(new.offset.numpy())[::2], 0.5,
                               atol=1e-5)
    np.testing.assert_array_equal(np.asarray(new.head.bias.numpy()), np.asarray(model.head.bias.numpy()))
    assert switches == [(1, "epoch 1: C=4 -> C=2")] and "resized offset" in lines[0]
    assert state.overhead > 0
    # Resuming right after a phase's last epoch: the driver asks for the switch directly.
    assert callback.switch(new, 2).factor == 1 and callback.switch(new, 1) is new


def test_warmup_step_decay_values():
    schedule = WarmupStepDecay(1e-3, warmup_steps=10, steps_per_epoch=5, decay_start_epoch=2,
                               decay_every=2, decay_rate=0.5)
    lr = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    assert np.isclose(lr(0), 1e-4)
    assert np.isclose(lr(4), 5e-4)
    assert np.isclose(lr(9), 1e-3)  # epoch 1, warm-up done
    assert np.isclose(lr(10), 5e-4)  # epoch 2: first decay
    assert np.isclose(lr(19), 5e-4)  # epoch 3
    assert np.isclose(lr(20), 2.5e-4)  # epoch 4: second decay
    clone = WarmupStepDecay.from_config(schedule.get_config())
    assert clone.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="learning_rate=0"):
        WarmupStepDecay(0)
