"""Training a run coarse-to-fine, and what a run leaves on disk.

- `run_config.RunConfig`: every option of a run (names, types, defaults, help).
- `run_directory.RunDirectory`: every file of a run directory; `run_lock.RunLock`:
  one writing process per run directory; `checkpoint_store.CheckpointStore`:
  the epoch's one atomic commit (checkpoint + state, with checksums) and the
  fallback to the newest valid checkpoint.
- `preparation`: options resolved from the dataset recipe, resume check, the
  data indexed and scanned once, normalisation statistics.
- `phase_schedule.PhaseSchedule`: which factor trains which epochs.
- `phase_switch.PhaseSwitch`: ends a phase and carries the model to the next
  factor through its model family (the paper's phase switch).
- `epoch_evaluator.EpochEvaluator`, `epoch_recorder.EpochRecorder`: per-epoch
  timing and exact validation metrics; history, FLOPs/time counters,
  TensorBoard and the checkpoint commit. They share a `run_state.RunState`.
- `phase_optimizer.compile_phase`: a fresh optimizer and LR schedule per phase.
- `trainer.fit`: the driver, a loop over phases.
- `distribution`, `metrics`, `evaluation`, `scalar_writer`.

Nothing is imported here, so that `kc2f.training.run_config` stays light for
the command line.
"""
