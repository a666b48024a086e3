"""The adaptive phase-switch policies on synthetic metric sequences (pure logic, no Keras)."""

import json
import math

import numpy as np
import pytest

from kc2f.training.budget_policy import BudgetPolicy, fit_saturating
from kc2f.training.phase_schedule import adaptive_schedule
from kc2f.training.plateau_policy import PlateauPolicy


def _first_switch(policy, metrics=None, losses=None, flops=None):
    """1-based epoch of the phase at which `policy` first ends it (None if it never does), and that decision."""
    count = len(metrics if metrics is not None else losses)
    for i in range(count):
        decision = policy.observe(
            metric=None if metrics is None else metrics[i],
            loss=None if losses is None else losses[i],
            flops=None if flops is None else flops[i],
        )
        if decision["switch"]:
            return i + 1, decision
    return None, None


# --- plateau -------------------------------------------------------------------------------------


def test_plateau_fires_exactly_after_patience_epochs_without_improvement():
    # Best 0.5 at epoch 3; epochs 4, 5, 6 do not beat it: wait reaches 3 at epoch 6.
    metrics = [0.1, 0.3, 0.5, 0.5, 0.4, 0.5, 0.9]
    epoch, decision = _first_switch(PlateauPolicy(patience=3), metrics)
    assert epoch == 6
    assert decision == {"switch": True, "reason": "plateau", "best": 0.5, "wait": 3, "epochs": 6}
    # One more epoch of patience and the improvement at epoch 7 keeps the phase going.
    assert _first_switch(PlateauPolicy(patience=4), metrics)[0] is None


def test_plateau_min_delta_decides_what_counts_as_an_improvement():
    metrics = [0.50, 0.60, 0.605, 0.609, 0.62, 0.70]
    # Steps of < 0.01 are no improvement: best 0.60 at epoch 2, waits at 3 and 4.
    assert _first_switch(PlateauPolicy(patience=2, min_delta=0.01), metrics)[0] == 4
    # With min_delta 0 every rise counts and the phase never plateaus here.
    assert _first_switch(PlateauPolicy(patience=2, min_delta=0.0), metrics)[0] is None


def test_plateau_on_the_training_loss_wants_it_lower():
    losses = [2.0, 1.5, 1.2, 1.25, 1.21, 1.3, 0.1]
    epoch, decision = _first_switch(PlateauPolicy(monitor="loss", patience=3), losses=losses)
    assert epoch == 6 and decision["best"] == 1.2
    # The metric is not what it watches.
    with pytest.raises(ValueError, match="needs the loss"):
        PlateauPolicy(monitor="loss").observe(metric=0.5)


@pytest.mark.parametrize("min_epochs, max_epochs", [(1, None), (3, 8), (5, 5), (6, 12)])
def test_plateau_never_before_min_nor_after_max(min_epochs, max_epochs):
    rng = np.random.default_rng(min_epochs * 100 + (max_epochs or 0))
    for _ in range(50):
        metrics = list(np.round(rng.uniform(0.0, 1.0, size=20), 2))
        policy = PlateauPolicy(patience=int(rng.integers(1, 5)), min_delta=float(rng.choice([0.0, 0.05])),
                               min_epochs=min_epochs, max_epochs=max_epochs)
        epoch, decision = _first_switch(policy, metrics)
        assert epoch is not None  # random values plateau within 20 epochs, or max ends the phase
        assert epoch >= min_epochs
        if max_epochs is not None:
            assert epoch <= max_epochs
            assert decision["reason"] == ("max_epochs" if decision["wait"] < policy.patience else "plateau")
    # A flat sequence would fire at epoch 2 (patience 1) but min_epochs holds it to 4.
    assert _first_switch(PlateauPolicy(patience=1, min_epochs=4), [0.5] * 10)[0] == 4
    # A rising sequence never plateaus: max_epochs ends it.
    epoch, decision = _first_switch(PlateauPolicy(patience=1, max_epochs=5), [i / 10 for i in range(10)])
    assert (epoch, decision["reason"]) == (5, "max_epochs")


def test_plateau_state_round_trips_through_json_and_decides_alike():
    metrics = [0.2, 0.4, 0.4, 0.45, 0.44, 0.44, 0.43, 0.5]
    reference = PlateauPolicy(patience=3, min_delta=0.02)
    expected = [reference.observe(metric=m) for m in metrics]
    for cut in range(len(metrics)):
        first = PlateauPolicy(patience=3, min_delta=0.02)
        for m in metrics[:cut]:
            first.observe(metric=m)
        resumed = PlateauPolicy(**first.get_config())
        resumed.set_state(json.loads(json.dumps(first.get_state())))
        assert [resumed.observe(metric=m) for m in metrics[cut:]] == expected[cut:]
    assert PlateauPolicy(**reference.get_config()).get_config() == reference.get_config()


@pytest.mark.parametrize("kwargs, match", [
    ({"monitor": "accuracy"}, "monitor='accuracy'"),
    ({"patience": 0}, "patience=0"),
    ({"min_delta": -0.1}, "min_delta=-0.1"),
    ({"min_epochs": 0}, "min_epochs=0"),
    ({"min_epochs": 4, "max_epochs": 3}, "max_epochs=3"),
])
def test_plateau_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PlateauPolicy(**kwargs)


# --- budget --------------------------------------------------------------------------------------


def _curve(a, b, tau, epochs, epoch_flops):
    x = epoch_flops * np.arange(1, epochs + 1)
    return x, a - b * np.exp(-x / tau)


def test_fit_saturating_recovers_a_known_curve():
    x, y = _curve(0.9, 0.7, 3.0e12, 8, 1e12)
    a, b, tau = fit_saturating(x, y)
    np.testing.assert_allclose(fit_saturating(x, y), (0.9, 0.7, 3.0e12), rtol=0.03)
    np.testing.assert_allclose(a - b * np.exp(-x / tau), y, atol=2e-3)
    # A falling sequence fits as a constant at its mean (no rising curve explains it).
    assert fit_saturating([1, 2, 3], [0.5, 0.4, 0.3]) == pytest.approx((0.4, 0.0, 3.0))


def _expected_switch(a, b, tau, coarse, fine, epochs_left, budget, min_epochs, last):
    """The switch epoch of BudgetPolicy's model, computed independently in NumPy (true curve)."""
    s = np.arange(1, last + 1, dtype=np.float64)
    reached = np.minimum(1.0, a - b * np.exp(-s * coarse / tau))
    finer = epochs_left - s
    if budget is not None:
        finer = np.minimum(finer, np.floor((budget - s * coarse) / fine))
    final = np.where(finer > 0, 1.0 - (1.0 - reached) * np.exp(-np.maximum(finer, 0) * coarse / tau), reached)
    # Switch at the first epoch s >= max(3, min_epochs) at which s itself maximises over [s, last].
    for n in range(max(3, min_epochs), last + 1):
        if final[n - 1] >= final[n - 1:].max() - 1e-9:
            return n
    return last


@pytest.mark.parametrize("a, tau_epochs, fine_ratio, budget_epochs", [
    (0.95, 1.5, 2.0, None),   # fast, high coarse ceiling: switch early
    (0.60, 4.0, 2.0, None),   # low ceiling: the finer phase is worth it soon
    (0.99, 6.0, 4.0, 14.0),   # slow curve, costly fine epochs, tight budget: stay coarse long
    (0.90, 3.0, 2.0, 18.0),
])
def test_budget_switches_where_its_model_predicts_the_best_final_metric(a, tau_epochs, fine_ratio, budget_epochs):
    coarse, epochs_left = 1e12, 30
    tau = tau_epochs * coarse
    fine = fine_ratio * coarse
    budget = None if budget_epochs is None else budget_epochs * fine
    x, metrics = _curve(a, 0.8 * a, tau, 25, coarse)
    policy = BudgetPolicy(budget=budget, min_epochs=1, max_epochs=None)
    policy.start_phase(start_flops=0.0, next_epoch_flops=fine, epochs_left=epochs_left)
    epoch, decision = _first_switch(policy, list(metrics), flops=list(x))
    expected = _expected_switch(a, 0.8 * a, tau, coarse, fine, epochs_left, budget, 1, epochs_left - 1)
    assert epoch == expected, (epoch, expected, decision)
    assert decision["reason"] == "budget" and decision["best_switch"] == epoch
    assert 0.0 < decision["predicted"] <= 1.0


def test_budget_switches_no_earlier_when_finer_epochs_cost_more():
    coarse = 1e12
    x, metrics = _curve(0.97, 0.8, 5e12, 25, coarse)
    epochs = []
    for ratio in (1.5, 3.0, 6.0):
        policy = BudgetPolicy(budget=60 * coarse)
        policy.start_phase(next_epoch_flops=ratio * coarse, epochs_left=30)
        epochs.append(_first_switch(policy, list(metrics), flops=list(x))[0])
    assert epochs == sorted(epochs) and epochs[0] < epochs[-1], epochs


def test_budget_respects_min_and_max_epochs_and_needs_three_points():
    coarse = 1e12
    x, metrics = _curve(0.9, 0.8, 0.5 * coarse, 20, coarse)  # saturated at once: switch as early as allowed
    policy = BudgetPolicy(min_epochs=1)
    policy.start_phase(next_epoch_flops=2 * coarse, epochs_left=30)
    assert _first_switch(policy, list(metrics), flops=list(x))[0] == 3  # a fit needs 3 epochs
    policy = BudgetPolicy(min_epochs=6)
    policy.start_phase(next_epoch_flops=2 * coarse, epochs_left=30)
    assert _first_switch(policy, list(metrics), flops=list(x))[0] == 6
    # A curve that keeps rising at the coarse ceiling 1 never pays for the finer phase: max ends it.
    x, metrics = _curve(1.0, 0.9, 40 * coarse, 20, coarse)
    policy = BudgetPolicy(budget=25 * coarse, max_epochs=7)
    policy.start_phase(next_epoch_flops=10 * coarse, epochs_left=30)
    epoch, decision = _first_switch(policy, list(metrics), flops=list(x))
    assert (epoch, decision["reason"]) == (7, "max_epochs")


def test_budget_state_round_trips_through_json_and_decides_alike():
    coarse = 1e12
    x, metrics = _curve(0.97, 0.8, 5e12, 12, coarse)
    x = x + 3e12  # the phase starts after 3 TFLOPs of an earlier phase

    def fresh():
        policy = BudgetPolicy(budget=50 * coarse, max_epochs=12)
        policy.start_phase(start_flops=3e12, next_epoch_flops=2 * coarse, epochs_left=25)
        return policy

    reference = fresh()
    expected = [reference.observe(metric=m, flops=f) for m, f in zip(metrics, x)]
    for cut in (0, 2, 3, 5):
        first = fresh()
        for m, f in zip(metrics[:cut], x[:cut]):
            first.observe(metric=m, flops=f)
        resumed = BudgetPolicy(**first.get_config())
        resumed.set_state(json.loads(json.dumps(first.get_state())))
        assert [resumed.observe(metric=m, flops=f) for m, f in zip(metrics[cut:], x[cut:])] == expected[cut:]


@pytest.mark.parametrize("kwargs, match", [
    ({"budget": 0}, "budget=0"), ({"min_epochs": 0}, "min_epochs=0"), ({"min_epochs": 3, "max_epochs": 2}, "max_epochs=2"),
])
def test_budget_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BudgetPolicy(**kwargs)


# --- the provisional schedule ------------------------------------------------------------------


def test_adaptive_schedule_keeps_the_total_and_gives_unspent_epochs_to_later_phases():
    assert adaptive_schedule((2, 1), 30, (), 15).phase_epochs == (15, 15)
    assert adaptive_schedule((2, 1), 30, (6,), 15).phase_epochs == (6, 24)
    assert adaptive_schedule((4, 2, 1), 30, (), 7).phase_epochs == (7, 7, 16)
    assert adaptive_schedule((4, 2, 1), 30, (3,), 7).phase_epochs == (3, 7, 20)
    assert adaptive_schedule((4, 2, 1), 30, (3, 2), 7).phase_epochs == (3, 2, 25)
    # Without a maximum a coarse phase may take all but one epoch per later phase.
    assert adaptive_schedule((4, 2, 1), 10, (), None).phase_epochs == (8, 1, 1)
    assert adaptive_schedule((4, 2, 1), 5, (), 7).phase_epochs == (3, 1, 1)
    assert math.isclose(sum(adaptive_schedule((8, 4, 2, 1), 40, (5,), 9).phase_epochs), 40)
