"""Atomic, resumable checkpoints of a run: model, optimizer and run state."""

import os
import shutil

import numpy as np

from kc2f.training.run_directory import RunDirectory, fsync_directory


def _save_arrays(path, variables):
    arrays = {f"{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    names = [v.path for v in variables]
    with open(path, "wb") as handle:
        np.savez(handle, __names__=np.array(names), **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def _load_arrays(path, variables, what):
    with np.load(path) as data:
        count = len(data.files) - 1
        if count != len(variables):
            raise ValueError(
                f"Checkpoint {path} holds {count} {what} variables, the model has "
                f"{len(variables)}: it was written by a different configuration."
            )
        for i, variable in enumerate(variables):
            value = data[f"{i:05d}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Checkpoint {path}: {what} variable {variable.path} has shape "
                    f"{tuple(variable.shape)} but the checkpoint holds {value.shape}."
                )
            variable.assign(value)


class CheckpointStore:
    """Keeps a run's checkpoints (`RunDirectory.checkpoints`) and its committed state.

    A checkpoint is written into a temporary directory, flushed, and renamed into
    place; only then does `state.json` (replaced atomically) point to it. A kill
    at any moment therefore leaves either the previous consistent state or the
    new one, and `load_state` never sees a half-written checkpoint. Old
    checkpoints other than the latest and the best are removed afterwards.

    Args:
        run: the `RunDirectory` (or its path).
    """

    def __init__(self, run):
        self.run = run if isinstance(run, RunDirectory) else RunDirectory(run)
        self.directory = self.run.checkpoints

    def load_state(self):
        """The last committed run state, or `None` for a new run."""
        return self.run.read_state()

    def save(self, name, model, optimizer, state, keep=()):
        """Writes checkpoint `name` (model + optimizer variables) and commits `state`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _save_arrays(tmp / "model.npz", model.variables)
        _save_arrays(tmp / "optimizer.npz", optimizer.variables if optimizer is not None else [])
        fsync_directory(tmp)
        final = self.directory / name
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_directory(self.directory)
        self.run.write_state({**state, "checkpoint": name})
        self._prune(keep=set(keep) | {name})

    def restore_model(self, name, model):
        _load_arrays(self.directory / name / "model.npz", model.variables, "model")

    def restore_optimizer(self, name, optimizer, trainable_variables):
        optimizer.build(trainable_variables)
        _load_arrays(self.directory / name / "optimizer.npz", optimizer.variables, "optimizer")

    def path(self, name):
        return self.directory / name

    def _prune(self, keep):
        for entry in self.directory.iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
