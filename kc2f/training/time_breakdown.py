"""`summary.json`'s `time_breakdown`: where a run's wall time went, per phase, from its history rows.

`train_seconds` (the report's time column, `cumulative_seconds`) counts, per
epoch, the training part of `fit` from the epoch's start to its last step's end
(`EpochEvaluator`) plus the phase switch before it (rebuild, weight transfer,
fresh optimizer, the phase's input pipeline: `switch_seconds`). It is split by `StepTimer` into
`compile_seconds` (first-step excess), `step_seconds` (steady step periods,
input waits included) and `setup_seconds`; the rest (`other_seconds`) is
`switch_seconds` plus rounding. Evaluation (`eval_seconds`), checkpointing
(`checkpoint_seconds`) and the preparation before the first step (the scan,
statistics: `preparation_seconds`) are outside the time column and listed
beside it.
"""

import statistics

_SUMMED = ("train_seconds", "compile_seconds", "step_seconds", "setup_seconds", "switch_seconds", "eval_seconds")


def _total(rows, key):
    values = [row.get(key) for row in rows]
    values = [v for v in values if v is not None]
    return float(sum(values)) if values else None


def time_breakdown(history, checkpoint_seconds=None, preparation_seconds=None):
    """Per-phase and whole-run time figures of a run's `history` rows.

    Args:
        history: the run's rows (rows of runs older than the timer lack the
            split: their entries are `None`).
        checkpoint_seconds: total time writing checkpoints, if known.
        preparation_seconds: this process's time before the first step.

    Returns:
        dict: `phases` (one dict per phase: `phase`, `factor`, `epochs`, the
        sums of `_SUMMED`, `step_ms` median, `compile_share` of
        `train_seconds`), `total` (the same sums over the run),
        `checkpoint_seconds`, `preparation_seconds`.
    """
    phases = []
    for phase in sorted({row["phase"] for row in history}):
        rows = [row for row in history if row["phase"] == phase]
        entry = {"phase": phase, "factor": rows[0]["factor"], "epochs": len(rows)}
        entry.update({key: _total(rows, key) for key in _SUMMED})
        step_ms = [row["step_ms"] for row in rows if row.get("step_ms") is not None]
        entry["step_ms"] = statistics.median(step_ms) if step_ms else None
        phases.append(entry)
    total = {key: _total(history, key) for key in _SUMMED}
    for entry in phases + [total]:
        train, compiled = entry["train_seconds"], entry["compile_seconds"]
        entry["compile_share"] = compiled / train if train and compiled is not None else None
        parts = [entry[k] for k in ("compile_seconds", "step_seconds", "setup_seconds", "switch_seconds")]
        entry["other_seconds"] = train - sum(parts) if train is not None and None not in parts else None
    return {"phases": phases, "total": total, "checkpoint_seconds": checkpoint_seconds,
            "preparation_seconds": preparation_seconds}


def format_breakdown(breakdown):
    """Lines for the run log: one per phase, `C=2: 3 epochs, 41.2 s train (compile 9.1 s = 22%, ...)`."""
    lines = []
    for entry in breakdown["phases"]:
        def part(key):
            value = entry.get(key)
            return "n/a" if value is None else f"{value:.1f} s"
        share = entry["compile_share"]
        lines.append(
            f"phase {entry['phase']} C={entry['factor']}: {entry['epochs']} epochs, {part('train_seconds')} train "
            f"(compile {part('compile_seconds')}{'' if share is None else f' = {100 * share:.0f}%'}, "
            f"steps {part('step_seconds')}, setup {part('setup_seconds')}, switch {part('switch_seconds')}), "
            f"eval {part('eval_seconds')}"
        )
    return lines
