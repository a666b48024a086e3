"""The `EpochRecorder` callback: history row, cost counters, TensorBoard and checkpoint."""

import time

import keras

from kc2f.training.phase_optimizer import TRAIN_METRIC, current_learning_rate
from kc2f.training.run_error import RunError
from kc2f.training.run_state import best_row, top_rows


class EpochRecorder(keras.callbacks.Callback):
    """Records every finished epoch and commits it so that a killed run resumes after it.

    Per epoch: the history row (phase, factor, tokens, loss, training
    accuracy of single-label runs, validation loss and metrics, learning rate,
    training FLOPs from the model family's closed form and wall time, both
    cumulative, as the paper's Table 2 needs), a log line, then (chief process
    only) the checkpoint of model and optimizer with the run state and the
    history files, and last the TensorBoard scalars: written after the commit,
    an epoch killed before it leaves no events and is written once when it is
    trained again.

    TensorBoard groups: `train/` (loss, accuracy, lr), `<split>/` (loss and
    metrics on the evaluation split, `val` or `test`: the labels say which
    split selects the best epoch), and `phase`, `factor`, `tokens`,
    `cumulative_train_*`, `switch/*`.

    With an adaptive phase switch the row also holds the decision's
    evidence (`phase_end`: why the phase ended after this epoch, empty if it
    did not; `switch_*`: the policy's values), also written to TensorBoard,
    and the commit holds the switch's state, so a resumed run decides alike.

    Args:
        family: the run's `ModelFamily` (FLOPs and token counts).
        metric: the dataset's headline metric name.
        samples_per_epoch: training samples per epoch (global batch × steps).
        state: the run's `RunState` (reads `result`, `overhead`; appends to
            `history`, adds to `counters`).
        run: the `RunDirectory`.
        store: the run's `CheckpointStore`.
        writer: the run's `ScalarWriter`.
        extra_state: constant entries of `state.json` (bad-audio counts, target).
        log: function taking one line of text.
        chief: whether this process writes the run directory.
        split: name of the split the epoch's metric is on, `"val"` or `"test"`
            (TensorBoard group and log label).
    """

    def __init__(self, *, family, metric, samples_per_epoch, state, run, store, writer,
                 extra_state, log=print, chief=True, split="val", average_best=None):
        super().__init__()
        self.split, self.average_best = split, average_best
        self.family, self.metric = family, metric
        self.samples_per_epoch, self.state = samples_per_epoch, state
        self.run, self.store, self.writer = run, store, writer
        self.extra_state, self.log, self.chief = extra_state, log, chief

    def on_epoch_end(self, epoch, logs=None):
        model, state, result = self.model, self.state, self.state.result
        phase = state.schedule.phase_of_epoch(epoch)
        epoch_flops = self.family.training_flops_per_sample(model) * self.samples_per_epoch
        train_seconds = result.train_seconds + state.overhead
        switch_seconds, state.overhead = state.overhead, 0.0
        timing = state.step_timing or {}
        state.counters["flops"] += epoch_flops
        state.counters["seconds"] += train_seconds
        row = {
            "epoch": epoch + 1,
            "phase": phase + 1,
            "factor": model.factor,
            "tokens": self.family.tokens(model),
            "loss": float(logs["loss"]),
            **({"train_accuracy": float(logs[TRAIN_METRIC])} if TRAIN_METRIC in logs else {}),
            "val_metric": result.metric,
            **({"val_loss": result.loss} if result.loss is not None else {}),
            "lr": current_learning_rate(model.optimizer),
            "samples": self.samples_per_epoch,
            "train_seconds": train_seconds,
            "eval_seconds": result.eval_seconds,
            # Where train_seconds went (kc2f.training.step_timer): first-step excess, the
            # other step periods, epoch start to first batch, and the switch before the epoch.
            "compile_seconds": timing.get("compile_seconds"),
            "step_seconds": timing.get("step_seconds"),
            "setup_seconds": timing.get("setup_seconds"),
            "step_ms": timing.get("step_ms"),
            "switch_seconds": switch_seconds,
            "epoch_flops": epoch_flops,
            "cumulative_flops": state.counters["flops"],
            "cumulative_seconds": state.counters["seconds"],
            **{f"val_{name}": value for name, value in result.metrics.items()},
            **(state.decision or {}),
        }
        state.history.append(row)
        self.log(
            f"epoch {epoch + 1}/{state.schedule.total_epochs} phase {phase + 1} C={model.factor}: "
            f"loss {row['loss']:.4f} {self.split} {self.metric} {row['val_metric']:.4f} ({train_seconds:.1f}s train, "
            f"{state.counters['flops'] / 1e12:.3f} TFLOP so far)"
        )
        if self.chief:
            self._commit(epoch, model, state)
        self._write_scalars(epoch, row, phase, result, state)

    def _write_scalars(self, epoch, row, phase, result, state):
        split = self.split
        self.writer.scalars(epoch + 1, {
            "train/loss": row["loss"], "train/accuracy": row.get("train_accuracy"), "train/lr": row["lr"],
            f"{split}/loss": result.loss, f"{split}/{self.metric}": row["val_metric"],
            "phase": row["phase"], "factor": row["factor"], "tokens": row["tokens"],
            "cumulative_train_flops": row["cumulative_flops"],
            "cumulative_train_seconds": row["cumulative_seconds"],
            **{f"{split}/{name}": value for name, value in result.metrics.items()},
            **{f"switch/{name[len('switch_'):]}": value for name, value in (state.decision or {}).items()
               if name.startswith("switch_") and isinstance(value, (int, float))},
        })
        if state.decision and state.decision["phase_end"]:
            self.writer.text(epoch + 1, "phase_end",
                             f"phase {phase + 1} ended after epoch {epoch + 1}: {state.decision['phase_end']}")
        self.writer.flush()

    def averaged_names(self, state):
        """`average_checkpoints: best:K`: the checkpoints of the final phase's K best epochs so far, which
        stay on disk and which the run averages at its end (empty without the option)."""
        if self.average_best is None:
            return []
        final = state.schedule.factors[-1]
        return [self.store.name(row["epoch"]) for row in top_rows(state.history, self.average_best, final)]

    def _commit(self, epoch, model, state):
        committed = {
            **self.extra_state,
            "history": state.history,
            "counters": state.counters,
            "finished": state.finished,
            "stop_reason": state.stop_reason,
            "best_epoch": best_row(state.history, self.family.metric_across_factors)["epoch"],
            **({"switch": state.switch} if state.switch is not None else {}),
        }
        # After a phase's last epoch the next phase compiles a fresh optimizer anyway.
        optimizer = None if state.phase_ended else model.optimizer
        done = epoch  # epochs committed before this one
        start = time.perf_counter()
        try:
            self.store.save(self.store.name(epoch + 1), model, optimizer, committed,
                            best=self.store.name(committed["best_epoch"]), keep=self.averaged_names(state))
            # Committed with the next epoch: a save cannot hold its own duration.
            seconds = time.perf_counter() - start
            state.checkpoint_seconds += seconds
            state.counters["checkpoint_seconds"] = state.counters.get("checkpoint_seconds", 0.0) + seconds
            done = epoch + 1
            self.run.write_history(state.history, split=self.split)
        except OSError as error:
            raise RunError(
                f"Cannot write the checkpoint of epoch {epoch + 1} in {self.run}: {error.strerror or error}. "
                f"{done} epoch(s) committed; free space (or fix the folder) and run the same command to resume."
            ) from None
