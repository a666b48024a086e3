"""`BudgetPolicy`: end a coarse phase at the epoch that maximises the predicted final metric."""

import math

import numpy as np

from kc2f.training.phase_schedule import check_phase_bounds

_MIN_POINTS = 3  # the saturating curve has three parameters
_HORIZON = 1000  # epochs looked ahead when nothing else bounds the phase


def fit_saturating(x, y):
    """Least-squares fit of `y ≈ a - b * exp(-x / tau)` with `b >= 0` and `tau > 0`.

    `tau` is searched on a geometric grid from a tenth of the smallest to
    twenty times the largest `x`; for each `tau` the model is linear in
    `(a, b)` and solved exactly (a `b < 0` solution, a falling curve, is
    replaced by the constant `a = mean(y)`, `b = 0`).

    Args:
        x: increasing positive abscissae (FLOPs trained in the phase), shape `(n,)`.
        y: the metric after each, shape `(n,)`.

    Returns:
        `(a, b, tau)`.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < _MIN_POINTS:
        raise ValueError(f"fit_saturating needs >= {_MIN_POINTS} matching points. Received: x={x}, y={y}")
    best = (float(np.mean(y)), 0.0, float(x[-1]), float(np.sum((y - np.mean(y)) ** 2)))
    for tau in np.geomspace(0.1 * x[0], 20.0 * x[-1], 200):
        design = np.stack([np.ones_like(x), -np.exp(-x / tau)], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        if b < 0.0:
            continue
        sse = float(np.sum((design @ np.array([a, b]) - y) ** 2))
        if sse < best[3] - 1e-15:
            best = (float(a), float(b), float(tau), sse)
    return best[:3]


class BudgetPolicy:
    """Ends a coarse phase at the epoch that maximises the run's predicted final metric.

    An adaptive phase switch, beyond *From Coarse to Fine*
    (https://arxiv.org/abs/2401.08415), whose conclusion leaves "learnable
    schedulers for the phase transition" to future work.

    The model, deliberately small so that it can be checked by hand:

    * the coarse phase's metric against the FLOPs trained in it follows a
      saturating exponential `m(x) = a - b * exp(-x / tau)`, fitted by least
      squares to the phase's epochs so far (`fit_saturating`); its ceiling `a`
      is what the compressed input allows;
    * the next (finer) phase starts from the metric reached and approaches the
      metric's maximum, 1 (accuracy and mAP), learning at the same rate *per
      epoch* as the coarse phase (time constant `tau / coarse epoch FLOPs`
      epochs), while each of its epochs costs `next_epoch_flops`.

    Switching after `s` coarse epochs leaves `k(s) = epochs_left - s` epochs,
    fewer if the FLOPs budget cannot pay for them; the predicted final metric
    is `1 - (1 - m(s)) * exp(-k(s) * coarse_epoch_flops / tau)`. At each epoch
    the policy picks the `s` (from now to the last allowed) that maximises it,
    the earliest on a tie, and ends the phase when that is now. Equivalently it
    switches once the coarse curve's marginal gain per FLOP (which falls as it
    nears `a`) no longer beats what the same FLOPs buy in the finer phase. Why
    this model: it needs only the curve measured so far, it has three
    parameters, and it captures the trade-off the paper's Figure 2 shows (the
    compressed phase learns cheaply but saturates lower).

    Pure logic on the sequence of one phase's `(metric, flops)` observations,
    without Keras; `get_state`/`set_state` carry everything a decision depends
    on, so a resumed run decides as an uninterrupted one.

    Args:
        budget: total training FLOPs of the run, or `None` (the epochs alone
            bound the finer phases).
        min_epochs: the phase trains at least this many epochs (>= 1); the
            curve is fitted from 3 epochs on.
        max_epochs: the phase trains at most this many epochs, or `None`.
    """

    def __init__(self, budget=None, min_epochs=1, max_epochs=None):
        if budget is not None and not budget > 0:
            raise ValueError(f"budget must be positive FLOPs or None. Received: budget={budget!r}")
        check_phase_bounds(min_epochs, max_epochs)
        self.budget = None if budget is None else float(budget)
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs
        self.start_phase()

    def get_config(self):
        return {"budget": self.budget, "min_epochs": self.min_epochs, "max_epochs": self.max_epochs}

    def start_phase(self, start_flops=0.0, next_epoch_flops=None, epochs_left=None, **context):
        """Begins a coarse phase.

        Args:
            start_flops: cumulative training FLOPs of the run when it begins.
            next_epoch_flops: FLOPs of one epoch of the next (finer) phase.
            epochs_left: epochs of the run left for this phase and the ones
                after it.
        """
        self.start_flops = float(start_flops)
        self.next_epoch_flops = None if next_epoch_flops is None else float(next_epoch_flops)
        self.epochs_left = epochs_left
        self.metrics, self.flops = [], []

    def get_state(self):
        """JSON-ready state of the current phase."""
        return {"start_flops": self.start_flops, "next_epoch_flops": self.next_epoch_flops,
                "epochs_left": self.epochs_left, "metrics": list(self.metrics), "flops": list(self.flops)}

    def set_state(self, state):
        self.start_phase(state["start_flops"], state["next_epoch_flops"], state["epochs_left"])
        self.metrics, self.flops = [float(v) for v in state["metrics"]], [float(v) for v in state["flops"]]

    def predicted_final(self, switch_after):
        """Predicted final metric when the phase ends after `switch_after` epochs (needs >= 3 observed)."""
        a, b, tau = fit_saturating(self._trained(), self.metrics)
        return self._final(switch_after, a, b, tau)

    def observe(self, metric=None, loss=None, flops=None):
        """Takes one epoch's validation metric and cumulative FLOPs; decides whether the phase ends.

        Returns:
            dict: `switch` (bool), `reason` (`"budget"`, `"max_epochs"` or
            `None`), `epochs` (of this phase so far), `best_switch` (the
            phase length that maximises the prediction, or `None` before 3
            epochs), `predicted` (its predicted final metric) and `gain_per_flop`
            (the fitted coarse curve's slope now).
        """
        if metric is None or flops is None:
            raise ValueError("BudgetPolicy needs the metric and the cumulative FLOPs of every epoch.")
        self.metrics.append(float(metric))
        self.flops.append(float(flops))
        epochs = len(self.metrics)
        last = self._last_allowed()
        decision = {"switch": False, "reason": None, "epochs": epochs, "best_switch": None,
                    "predicted": None, "gain_per_flop": None}
        if epochs >= _MIN_POINTS and self.next_epoch_flops is not None and epochs < last:
            a, b, tau = fit_saturating(self._trained(), self.metrics)
            horizon = last if math.isfinite(last) else epochs + _HORIZON
            candidates = range(epochs, int(horizon) + 1)
            finals = [self._final(s, a, b, tau) for s in candidates]
            top = max(finals)
            best = next(s for s, f in zip(candidates, finals) if f >= top - 1e-12)
            decision.update(best_switch=best, predicted=top,
                            gain_per_flop=b / tau * math.exp(-self._trained()[-1] / tau))
            if epochs >= self.min_epochs and best == epochs:
                decision.update(switch=True, reason="budget")
        if not decision["switch"] and epochs >= self.min_epochs and epochs >= last:
            decision.update(switch=True, reason="max_epochs")
        return decision

    def _trained(self):
        return [f - self.start_flops for f in self.flops]

    def _epoch_flops(self):
        return self._trained()[-1] / len(self.flops)

    def _last_allowed(self):
        last = math.inf if self.max_epochs is None else self.max_epochs
        if self.epochs_left is not None:
            last = min(last, self.epochs_left - 1)  # the finer phases need at least one epoch
        return last

    def _final(self, switch_after, a, b, tau):
        coarse = self._epoch_flops()
        reached = min(1.0, a - b * math.exp(-switch_after * coarse / tau))
        finer = math.inf if self.epochs_left is None else self.epochs_left - switch_after
        if self.budget is not None:
            spent = self.start_flops + switch_after * coarse
            finer = min(finer, math.floor((self.budget - spent) / self.next_epoch_flops))
        if finer <= 0:
            return reached
        if math.isinf(finer):
            return 1.0
        return 1.0 - (1.0 - reached) * math.exp(-finer * coarse / tau)
