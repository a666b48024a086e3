"""What the callbacks of a run share: progress, counters and this epoch's measurements."""

import dataclasses


def best_row(history, across_factors=True):
    """The history row with the highest `val_metric`, the selected epoch.

    A family whose metric does not compare across factors
    (`ModelFamily.metric_across_factors`: SSAST's masked-patch accuracy is
    over each factor's own patches) selects among the rows of the latest
    factor only: the final phase once it has begun.
    """
    if not across_factors:
        history = [row for row in history if row["factor"] == history[-1]["factor"]]
    return max(history, key=lambda row: row["val_metric"])


def top_rows(history, count, factor):
    """The `count` rows of factor `factor` with the highest `val_metric` (ties: the earlier epoch), best first:
    the epochs `average_checkpoints: best:K` averages."""
    rows = [row for row in history if row["factor"] == factor]
    return sorted(rows, key=lambda row: (-row["val_metric"], row["epoch"]))[:count]


def describe_epochs(epochs):
    """`[3, 4, 5]` -> `"3..5"`; `[3, 5, 9]` -> `"3, 5, 9"` (sorted epochs)."""
    epochs = sorted(epochs)
    if epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"{epochs[0]}..{epochs[-1]}"
    return ", ".join(map(str, epochs))


@dataclasses.dataclass
class EpochResult:
    """One epoch's measurements, set by `EpochEvaluator` for the callbacks after it.

    Attributes:
        train_seconds: wall time of the epoch's training part.
        eval_seconds: wall time of the validation pass.
        metric: the dataset's headline validation metric.
        metrics: every validation metric by name (`kc2f.training.metrics`).
        loss: the validation loss (the training loss's definition), or `None`.
    """

    train_seconds: float
    eval_seconds: float
    metric: float
    metrics: dict
    loss: float = None


@dataclasses.dataclass
class RunState:
    """The state of a run that its callbacks read and write, explicitly.

    `EpochEvaluator` sets `result`; `PhaseSwitch` decides `finished` /
    `stop_reason` and charges the cost of a switch to `overhead`;
    `EpochRecorder` appends the epoch's row to `history`, adds it to
    `counters` and commits a checkpoint. The trainer restores it from
    `state.json` on resume.

    Attributes:
        history: one dict per finished epoch.
        counters: cumulative training `flops` and `seconds`.
        finished: the run has trained its last epoch or reached its target.
        stop_reason: why it finished.
        target_reached: the final phase met the budget target.
        phase_ended: the epoch that just ended was the last of a phase (not
            of the run): the next phase starts with a fresh optimizer.
        overhead: seconds spent outside `fit` (phase switch, recompilation)
            that the next epoch's training time includes.
        result: the current epoch's `EpochResult`.
        schedule: the run's current `PhaseSchedule` (an adaptive switch
            revises it when it ends a coarse phase).
        switch: an adaptive switch's committed state, `{"decided": lengths of
            the coarse phases ended so far, "policy": the policy's state}`, or
            `None` (fixed schedule).
        decision: this epoch's switch evidence for its history row, or `None`.
        step_timing: this epoch's `StepTimer` figures (compile, steps, setup).
        checkpoint_seconds: time spent writing checkpoints in this process
            (the committed total is `counters["checkpoint_seconds"]`, one
            save behind).
    """

    history: list = dataclasses.field(default_factory=list)
    counters: dict = dataclasses.field(default_factory=lambda: {"flops": 0.0, "seconds": 0.0})
    finished: bool = False
    stop_reason: str = None
    target_reached: bool = False
    phase_ended: bool = False
    overhead: float = 0.0
    result: EpochResult = None
    schedule: object = None
    switch: dict = None
    decision: dict = None
    step_timing: dict = None
    checkpoint_seconds: float = 0.0

    @classmethod
    def from_saved(cls, saved):
        """The state committed in `state.json` (or a new run's, for `None`)."""
        if not saved:
            return cls()
        return cls(
            history=list(saved["history"]),
            counters=dict(saved["counters"]),
            finished=bool(saved.get("finished")),
            stop_reason=saved.get("stop_reason"),
            switch=saved.get("switch"),
        )

    @property
    def epochs_done(self):
        return len(self.history)
