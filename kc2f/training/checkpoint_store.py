"""Atomic, verified, resumable checkpoints of a run: model, optimizer and run state."""

import hashlib
import json
import os
import shutil
import zipfile

import numpy as np

from kc2f.training.run_directory import RunDirectory, fsync_directory, write_json_atomic

FORMAT_VERSION = 1
MODEL_FILE = "model.npz"
OPTIMIZER_FILE = "optimizer.npz"
SNAPSHOT_FILE = "state.json"  # inside each checkpoint: the run state it belongs to
# What a damaged .npz raises when opened or read.
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


def _save_arrays(path, variables):
    arrays = {f"{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    names = [v.path for v in variables]
    with open(path, "wb") as handle:
        np.savez(handle, __names__=np.array(names), **arrays)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_arrays(path, variables, what):
    try:
        with np.load(path) as data:
            count = len(data.files) - 1
            if count != len(variables):
                raise ValueError(
                    f"Checkpoint {path} holds {count} {what} variables, the model has "
                    f"{len(variables)}: it was written by a different configuration."
                )
            values = [data[f"{i:05d}"] for i in range(count)]
    except ValueError:
        raise
    except _READ_ERRORS as error:
        raise ValueError(f"Checkpoint file {path} cannot be read ({type(error).__name__}: {error}).") from None
    for variable, value in zip(variables, values):
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Checkpoint {path}: {what} variable {variable.path} has shape "
                f"{tuple(variable.shape)} but the checkpoint holds {value.shape}."
            )
    for variable, value in zip(variables, values):
        variable.assign(value)


class CheckpointStore:
    """Keeps a run's checkpoints (`RunDirectory.checkpoints`) and commits its state.

    A checkpoint `epoch-NNNN/` holds `model.npz`, `optimizer.npz` and
    `state.json`, the run state of that epoch. It is written into a temporary
    directory, flushed and renamed into place; only then is the run's
    `state.json` replaced (atomically) by that state plus the checkpoint's name
    and the SHA-256 of its files. That replacement is the epoch's one commit: a
    kill at any moment leaves the previous commit or the new one, and every
    other file (history, TensorBoard) is derived from it. The last
    `keep_last` checkpoints, the best one and the `protect`ed ones are kept,
    so that a damaged or missing latest checkpoint falls back to an older
    valid one (`newest_valid`) and the checkpoints a weight average needs
    (`average_model`) survive until the end of the run.

    Args:
        run: the `RunDirectory` (or its path).
        keep_last: how many of the newest checkpoints to keep (>= 1), besides
            the best.
        protect: names of checkpoints never pruned (e.g. the epochs of
            `--average-checkpoints`).
    """

    def __init__(self, run, keep_last=2, protect=()):
        if not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"keep_last must be an integer >= 1. Received: keep_last={keep_last!r}")
        self.run = run if isinstance(run, RunDirectory) else RunDirectory(run)
        self.directory = self.run.checkpoints
        self.keep_last = keep_last
        self.protect = frozenset(protect)

    def load_state(self):
        """The last committed run state, or `None` for a new run (ValueError naming a damaged file)."""
        return self.run.read_state()

    @staticmethod
    def name(epoch):
        return RunDirectory.checkpoint_name(epoch)

    def save(self, name, model, optimizer, state, best=None, keep=()):
        """Writes checkpoint `name` (model + optimizer variables), commits `state`, prunes old ones.

        Args:
            name: `CheckpointStore.name(epoch)`.
            model: the model (its `variables`).
            optimizer: the optimizer, or `None` (the next phase starts a fresh one).
            state: the run state to commit (JSON-serialisable dict).
            best: the name of the best checkpoint, kept whatever its age.
            keep: more names kept whatever their age (the epochs a best-K average will read).

        Raises:
            OSError: a write failed (full disk, read-only directory); the
                temporary directory is removed and the previous commit stands.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".tmp-{name}-{os.getpid()}"
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            _save_arrays(tmp / MODEL_FILE, model.variables)
            _save_arrays(tmp / OPTIMIZER_FILE, optimizer.variables if optimizer is not None else [])
            checksums = {MODEL_FILE: _sha256(tmp / MODEL_FILE), OPTIMIZER_FILE: _sha256(tmp / OPTIMIZER_FILE)}
            committed = {**state, "format_version": FORMAT_VERSION, "checkpoint": name, "checksums": checksums}
            write_json_atomic(tmp / SNAPSHOT_FILE, committed)
            fsync_directory(tmp)
            final = self.directory / name
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_directory(self.directory)
        self.run.write_state(committed)
        self._prune(keep={name} | ({best} if best else set()) | set(keep))
        return committed

    def problem(self, state):
        """Why the checkpoint `state` points to cannot be restored, or `None` if it can."""
        name = state.get("checkpoint")
        if not name:
            return f"{self.run.file(RunDirectory.STATE)} names no checkpoint"
        folder = self.directory / name
        for file_name, expected in (state.get("checksums") or {}).items():
            path = folder / file_name
            if not path.is_file():
                return f"{path} is missing"
            if _sha256(path) != expected:
                return f"{path} is damaged (checksum mismatch)"
        for file_name in (MODEL_FILE, OPTIMIZER_FILE):
            if not (folder / file_name).is_file():
                return f"{folder / file_name} is missing"
        return None

    def newest_valid(self):
        """`(state, skipped)`: the newest checkpoint that verifies, with its own run state.

        `skipped` lists why newer ones were passed over. `state` is `None` when
        no checkpoint verifies.
        """
        skipped = []
        for name in reversed(self._names()):
            snapshot = self.directory / name / SNAPSHOT_FILE
            try:
                state = json.loads(snapshot.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                skipped.append(f"{snapshot} cannot be read ({type(error).__name__})")
                continue
            if not isinstance(state, dict) or state.get("checkpoint") != name:
                skipped.append(f"{snapshot} does not describe {name}")
                continue
            problem = self.problem(state)
            if problem:
                skipped.append(problem)
                continue
            return state, skipped
        return None, skipped

    def restore_model(self, name, model):
        _load_arrays(self.directory / name / MODEL_FILE, model.variables, "model")

    def restore_optimizer(self, name, optimizer, trainable_variables):
        optimizer.build(trainable_variables)
        _load_arrays(self.directory / name / OPTIMIZER_FILE, optimizer.variables, "optimizer")

    def average_model(self, names, model):
        """Sets `model`'s variables to the element-wise mean of checkpoints `names`' model weights.

        AST's checkpoint weight averaging ([AST-code] `src/traintest.py`,
        `validate_wa`): the mean is taken in float64 and cast to each
        variable's dtype; integer variables (random-generator states) take the
        last checkpoint's value. Each checkpoint is verified against the
        checksums of its own run state first.

        Args:
            names: checkpoint names (`CheckpointStore.name(epoch)`), at least one.
            model: a model of the checkpoints' architecture (same variables
                and shapes).

        Raises:
            ValueError: a checkpoint is missing, damaged or of another shape;
                the message names the file.
        """
        if not names:
            raise ValueError("average_model needs at least one checkpoint. Received: names=[]")
        sums = None
        for name in names:
            snapshot = self.directory / name / SNAPSHOT_FILE
            try:
                state = json.loads(snapshot.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ValueError(f"Checkpoint {self.directory / name} cannot be averaged: {snapshot} "
                                 f"cannot be read ({type(error).__name__}).") from None
            problem = self.problem(state) if isinstance(state, dict) else f"{snapshot} is not a run state"
            if problem:
                raise ValueError(f"Checkpoint {self.directory / name} cannot be averaged: {problem}.")
            _load_arrays(self.directory / name / MODEL_FILE, model.variables, "model")
            values = [np.asarray(v.numpy()) for v in model.variables]
            if sums is None:
                sums = [value.astype(np.float64) for value in values]
            else:
                sums = [total + value for total, value in zip(sums, values)]
        for variable, total, last in zip(model.variables, sums, values):
            if np.issubdtype(last.dtype, np.floating):
                variable.assign((total / len(names)).astype(last.dtype))
        return model

    def path(self, name):
        return self.directory / name

    def bytes_needed(self, model, optimizer_slots=2):
        """Disk space one checkpoint of `model` takes, with `optimizer_slots` arrays per weight (Adam: 2)."""
        model_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.variables)
        trainable = sum(int(np.prod(v.shape)) * 4 for v in model.trainable_variables)
        return model_bytes + optimizer_slots * trainable

    def _names(self):
        """Names of the published checkpoints, oldest first."""
        return sorted(p.name for p in self.directory.glob(f"{RunDirectory.CHECKPOINT_PREFIX}*") if p.is_dir())

    def _prune(self, keep):
        names = self._names()
        keep = set(keep) | set(names[-self.keep_last:]) | self.protect
        for name in names:
            if name not in keep:
                shutil.rmtree(self.directory / name, ignore_errors=True)
