"""The coarse-to-fine phase schedule: which factor trains for which epochs."""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class PhaseSchedule:
    """Factors and epochs of each training phase.

    *From Coarse to Fine* (https://arxiv.org/abs/2401.08415) trains phase `i` on
    inputs compressed `factors[i]`× along time, for `phase_epochs[i]` epochs;
    the last factor of a coarse-to-fine run is 1 (full resolution).
    `factors == (1,)` is the baseline; a single factor C > 1 trains and
    evaluates at C only (the paper's Table 1 coarse-only rows, e.g. "Pool2").

    Args:
        factors: descending compression factors ending in 1, e.g. `(2, 1)`, or
            a single factor.
        phase_epochs: epochs per phase, same length, each >= 1.
    """

    factors: tuple
    phase_epochs: tuple

    def __post_init__(self):
        factors, epochs = tuple(self.factors), tuple(self.phase_epochs)
        if not factors or any(not isinstance(f, int) or f < 1 for f in factors):
            raise ValueError(f"factors must be positive integers. Received: factors={factors}")
        if len(factors) > 1 and factors[-1] != 1:
            raise ValueError(
                f"factors must end in 1 (full resolution), or be a single factor (a one-phase run). "
                f"Received: factors={factors}"
            )
        if any(a <= b for a, b in zip(factors, factors[1:])):
            raise ValueError(f"factors must be strictly descending. Received: factors={factors}")
        if len(epochs) != len(factors):
            raise ValueError(
                "phase_epochs needs one entry per factor. Received: "
                f"factors={factors}, phase_epochs={epochs}"
            )
        if any(not isinstance(e, int) or e < 1 for e in epochs):
            raise ValueError(f"phase_epochs must be integers >= 1. Received: phase_epochs={epochs}")
        object.__setattr__(self, "factors", factors)
        object.__setattr__(self, "phase_epochs", epochs)

    @property
    def total_epochs(self):
        return sum(self.phase_epochs)

    @property
    def num_phases(self):
        return len(self.factors)

    def phase_of_epoch(self, epoch):
        """Phase index (0-based) that trains global epoch `epoch` (0-based)."""
        if not 0 <= epoch < self.total_epochs:
            raise ValueError(
                f"epoch must be in [0, {self.total_epochs}). Received: epoch={epoch}"
            )
        phase = 0
        while epoch >= self.phase_end(phase):
            phase += 1
        return phase

    def phase_start(self, phase):
        """First global epoch (0-based) of `phase`."""
        return sum(self.phase_epochs[:phase])

    def phase_end(self, phase):
        """One past the last global epoch of `phase`."""
        return sum(self.phase_epochs[: phase + 1])

    def is_last_epoch_of_phase(self, epoch):
        return epoch + 1 == self.phase_end(self.phase_of_epoch(epoch))


def parse_factors(text):
    """Parses `"4,2,1"` into `(4, 2, 1)`; raises ValueError naming the text."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [item.strip() for item in str(text).split(",") if item.strip()]
    try:
        factors = tuple(int(item) for item in items)
    except ValueError:
        raise ValueError(
            f"factors must be comma-separated integers such as '2,1'. Received: factors={text!r}"
        ) from None
    if not factors:
        raise ValueError(f"factors must not be empty. Received: factors={text!r}")
    return factors


# [C2F]: one initial phase takes about 25% of the baseline's epochs (5 of 20, 1 of 5);
# two initial phases take 30%, 3 epochs each of 20 (docs/method.md#phases).
TWO_PHASE_FRACTION = 0.25
MULTI_PHASE_FRACTION = 0.30


def default_initial_fraction(num_phases):
    """The paper's share of the epochs for the initial phases of a `num_phases` run.

    0.25 with one initial phase (`2,1`, `4,1`), 0.30 with two or more (`4,2,1`:
    3 + 3 + 14 of 20 epochs, the split the paper's Table 4 back-solves to).
    """
    return TWO_PHASE_FRACTION if num_phases <= 2 else MULTI_PHASE_FRACTION


def build_schedule(factors, epochs, phase_epochs=None, initial_fraction=None):
    """Splits `epochs` over the phases of `factors`.

    With `phase_epochs` given, it is used as is (and must sum to `epochs` when
    `epochs` is given). Otherwise the initial (compressed) phases together take
    `initial_fraction` of the epochs, rounded to the nearest epoch, at least one
    each, split evenly among them (earlier phases take the remainder); the
    final full-resolution phase takes the rest. The default fraction is the
    paper's (`default_initial_fraction`): 5 of 20 epochs for `2,1`, 3 + 3 of 20
    for `4,2,1`, 1 of 5 on AudioSet.

    A single factor is a one-phase run: `1` is the baseline, `2` alone trains
    and evaluates at C = 2 only (the paper's Table 1 "Pool2" row).

    Args:
        factors: e.g. `(2, 1)`.
        epochs: total epochs (the baseline's), or `None` with `phase_epochs`.
        phase_epochs: optional explicit split.
        initial_fraction: share of `epochs` for the initial phases, in (0, 1);
            `None`: `default_initial_fraction(len(factors))`.

    Returns:
        `PhaseSchedule`.
    """
    factors = parse_factors(factors)
    if phase_epochs is not None:
        phase_epochs = parse_factors(phase_epochs)
        if epochs is not None and sum(phase_epochs) != epochs:
            raise ValueError(
                "phase_epochs must add up to epochs. Received: "
                f"phase_epochs={phase_epochs}, epochs={epochs}"
            )
        return PhaseSchedule(factors, phase_epochs)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1. Received: epochs={epochs}")
    if len(factors) == 1:
        return PhaseSchedule(factors, (epochs,))
    if initial_fraction is None:
        initial_fraction = default_initial_fraction(len(factors))
    if not 0.0 < initial_fraction < 1.0:
        raise ValueError(
            f"initial_fraction must be in (0, 1). Received: initial_fraction={initial_fraction}"
        )
    initial_phases = len(factors) - 1
    initial = max(initial_phases, int(math.floor(epochs * initial_fraction + 0.5)))
    if initial >= epochs:
        raise ValueError(
            f"{epochs} epochs leave no epoch for the final phase of factors {factors}. "
            f"Received: epochs={epochs}, initial_fraction={initial_fraction}"
        )
    base, extra = divmod(initial, initial_phases)
    split = tuple(base + (1 if i < extra else 0) for i in range(initial_phases))
    return PhaseSchedule(factors, split + (epochs - initial,))


def adaptive_schedule(factors, epochs, decided=(), max_epochs=None):
    """The provisional schedule of an adaptive phase switch (`switch` plateau or budget).

    The coarse phases whose end was decided keep their length (`decided`);
    each following coarse phase gets, provisionally, `max_epochs` (or as many
    as leave one epoch to every later phase, if fewer); the final phase takes
    the rest, so the run's total stays `epochs`. A coarse phase that ends
    early gives its unspent epochs to the phases after it.

    Args:
        factors: e.g. `(4, 2, 1)`.
        epochs: total epochs of the run.
        decided: lengths of the first coarse phases, decided so far.
        max_epochs: the longest a coarse phase may train, or `None`.

    Returns:
        `PhaseSchedule`.
    """
    factors = parse_factors(factors)
    decided = tuple(int(e) for e in decided)
    if len(decided) >= len(factors):
        raise ValueError(f"decided must name fewer phases than factors {factors}. Received: decided={decided}")
    lengths = list(decided)
    for phase in range(len(decided), len(factors) - 1):
        room = epochs - sum(lengths) - (len(factors) - 1 - phase)
        lengths.append(room if max_epochs is None else min(max_epochs, room))
    lengths.append(epochs - sum(lengths))
    return PhaseSchedule(factors, tuple(lengths))


def check_phase_bounds(min_epochs, max_epochs):
    """Raises ValueError unless `1 <= min_epochs <= max_epochs` (integers; `max_epochs` may be `None`)."""
    if not isinstance(min_epochs, int) or min_epochs < 1:
        raise ValueError(f"min_epochs must be an integer >= 1. Received: min_epochs={min_epochs!r}")
    if max_epochs is not None and (not isinstance(max_epochs, int) or max_epochs < min_epochs):
        raise ValueError(
            f"max_epochs must be an integer >= min_epochs ({min_epochs}) or None. Received: max_epochs={max_epochs!r}"
        )
