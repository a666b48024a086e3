"""`PlateauPolicy`: leave a coarse phase once its monitored value stops improving."""

from kc2f.training.phase_schedule import check_phase_bounds

_MONITORS = ("metric", "loss")


class PlateauPolicy:
    """Ends a coarse phase when its metric (or loss) has not improved for `patience` epochs.

    An adaptive phase switch, beyond *From Coarse to Fine*
    (https://arxiv.org/abs/2401.08415), whose conclusion leaves "learnable
    schedulers for the phase transition" to future work: the paper gives the
    initial phases a fixed share of the epochs. Here a coarse phase ends at the
    first of its epochs `n` (counted from 1 within the phase) with
    `min_epochs <= n` and either `wait >= patience` (reason `"plateau"`) or
    `n >= max_epochs` (reason `"max_epochs"`), where `wait` counts the epochs
    since the monitored value last improved on the phase's best by more than
    `min_delta` (higher is better for the metric, lower for the loss). Before
    `min_epochs` it never ends the phase.

    Pure logic on the sequence of one phase's observations, without Keras, so
    that an epoch-based trainer and a step-based one (counting evaluations)
    can share it. `get_state`/`set_state` carry everything a decision depends
    on, so a run resumed from a committed state decides as an uninterrupted one.

    Args:
        monitor: `"metric"` (validation metric, higher is better) or `"loss"`
            (training loss, lower is better).
        patience: epochs without improvement that end the phase (>= 1).
        min_delta: smallest change that counts as an improvement (>= 0).
        min_epochs: the phase trains at least this many epochs (>= 1).
        max_epochs: the phase trains at most this many epochs (>= min_epochs),
            or `None` (no limit of its own; the trainer's epoch budget still
            bounds the phase).
    """

    def __init__(self, monitor="metric", patience=3, min_delta=0.0, min_epochs=1, max_epochs=None):
        if monitor not in _MONITORS:
            raise ValueError(f"monitor must be one of {_MONITORS}. Received: monitor={monitor!r}")
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1. Received: patience={patience!r}")
        if not min_delta >= 0.0:
            raise ValueError(f"min_delta must be >= 0. Received: min_delta={min_delta!r}")
        check_phase_bounds(min_epochs, max_epochs)
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs
        self.start_phase()

    def get_config(self):
        return {"monitor": self.monitor, "patience": self.patience, "min_delta": self.min_delta,
                "min_epochs": self.min_epochs, "max_epochs": self.max_epochs}

    def start_phase(self, **context):
        """Forgets the previous phase (`context` is the budget rule's; unused here)."""
        self.epochs, self.best, self.wait = 0, None, 0

    def get_state(self):
        """JSON-ready state of the current phase."""
        return {"epochs": self.epochs, "best": self.best, "wait": self.wait}

    def set_state(self, state):
        self.epochs, self.best, self.wait = int(state["epochs"]), state["best"], int(state["wait"])

    def observe(self, metric=None, loss=None, flops=None):
        """Takes one epoch's values and decides whether the phase ends after it.

        Args:
            metric: the epoch's validation metric (higher is better).
            loss: the epoch's training loss.
            flops: cumulative training FLOPs (unused by this rule).

        Returns:
            dict: `switch` (bool), `reason` (`"plateau"`, `"max_epochs"` or
            `None`), `best`, `wait` (epochs since the last improvement) and
            `epochs` (of this phase so far).
        """
        value = metric if self.monitor == "metric" else loss
        if value is None:
            raise ValueError(f"PlateauPolicy(monitor={self.monitor!r}) needs the {self.monitor} of every epoch.")
        value = float(value)
        self.epochs += 1
        sign = 1.0 if self.monitor == "metric" else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        reason = None
        if self.epochs >= self.min_epochs:
            if self.wait >= self.patience:
                reason = "plateau"
            elif self.max_epochs is not None and self.epochs >= self.max_epochs:
                reason = "max_epochs"
        return {"switch": reason is not None, "reason": reason, "best": self.best, "wait": self.wait,
                "epochs": self.epochs}
