"""Atomic, resumable checkpoints of a run: model, optimizer and run state."""

import json
import os
import pathlib
import shutil

import numpy as np

STATE_FILE = "state.json"


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path, data):
    """Writes JSON to `path` so that a reader sees the old or the new file, never half."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


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
    """Keeps a run's checkpoints under `run_dir/checkpoints` and its `state.json`.

    A checkpoint is written into a temporary directory, flushed, and renamed into
    place; only then does `state.json` (replaced atomically) point to it. A kill
    at any moment therefore leaves either the previous consistent state or the
    new one, and `load_state` never sees a half-written checkpoint. Old
    checkpoints other than the latest and the best are removed afterwards.

    Args:
        run_dir: the run directory.
        fault_hook: test hook called between the files of a write (`None` in
            normal use); the resume tests kill the process there.
    """

    def __init__(self, run_dir, fault_hook=None):
        self.run_dir = pathlib.Path(run_dir)
        self.directory = self.run_dir / "checkpoints"
        self.fault_hook = fault_hook

    def load_state(self):
        """The last committed run state, or `None` for a new run."""
        path = self.run_dir / STATE_FILE
        if not path.exists():
            return None
        with open(path) as handle:
            return json.load(handle)

    def save(self, name, model, optimizer, state, keep=()):
        """Writes checkpoint `name` (model + optimizer variables) and commits `state`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _save_arrays(tmp / "model.npz", model.variables)
        if self.fault_hook:
            self.fault_hook("checkpoint")
        _save_arrays(tmp / "optimizer.npz", optimizer.variables if optimizer is not None else [])
        _fsync_dir(tmp)
        final = self.directory / name
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(self.directory)
        write_json_atomic(self.run_dir / STATE_FILE, {**state, "checkpoint": name})
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
