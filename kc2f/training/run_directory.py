"""The layout of a run directory: the only code that knows its file names.

    config.json          resolved options (`RunConfig.to_dict()`)
    labels.json          class names, in output order
    history.json/.csv    one row per epoch (`HISTORY_FIELDS`, then any val_* metric)
    state.json           the commit: the last epoch's history, counters, checkpoint name and checksums
    checkpoints/         model + optimizer variables and the run state of each kept epoch
    .kc2f-run            the marker that kc2f made this directory: nothing is removed or
                         overwritten in a directory without it (`claim`)
    .lock                the writing process's lock (pid and host)
    events.out.tfevents.*  TensorBoard event files (one per process start), in the run directory itself so
                         that `tensorboard --logdir runs/` names each run by its directory
    model.keras          the finished run's inference model
    summary.json         the finished run's summary

Trainer, evaluation, reports, plots, sweeps, export and inference read and
write a run through `RunDirectory`. Every JSON file is replaced atomically
(written to a temporary file, flushed, renamed), and reading a missing or
malformed file raises `ValueError` naming the file. `state.json` is the only
commit point of an epoch: the history files are views of it, rewritten from
it after every commit and at every start, and `read_history` reads the
committed history.
"""

import csv
import json
import os
import pathlib
import re
import shutil

HISTORY_FIELDS = (
    "epoch", "phase", "factor", "tokens", "loss", "val_metric", "lr", "samples",
    "train_seconds", "eval_seconds", "epoch_flops", "cumulative_flops", "cumulative_seconds",
)


def fsync_directory(path):
    """Flushes a directory entry (a rename) to disk; a no-op where directories cannot be opened."""
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
    fsync_directory(path.parent)


def write_text_atomic(path, text):
    """Writes `text` to `path` so that a reader sees the old or the new file, never half."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def read_json(path):
    """The JSON in `path`; ValueError naming the file when it is missing or malformed."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


class RunDirectory:
    """One run's directory and the files in it.

    Args:
        path: the run directory (need not exist yet).
    """

    CONFIG = "config.json"
    LABELS = "labels.json"
    HISTORY = "history.json"
    HISTORY_CSV = "history.csv"
    STATE = "state.json"
    SUMMARY = "summary.json"
    MODEL = "model.keras"
    CHECKPOINTS = "checkpoints"
    TENSORBOARD = "tensorboard"  # where runs made before the event files moved to the run directory keep them
    EVENTS_PREFIX = "events.out.tfevents."
    LOCK = ".lock"
    MARKER = ".kc2f-run"
    CHECKPOINT_PREFIX = "epoch-"
    # What a run killed in its first epoch leaves, besides its first checkpoint.
    BEFORE_FIRST_COMMIT = (CONFIG, LABELS, TENSORBOARD, LOCK, MARKER)
    # kc2f's own temporary names: `write_json_atomic`'s `.NAME.PID.tmp` and the model's
    # `.model.PID.keras`; a user's `.notes.tmp` has no PID and is never matched.
    TEMPORARY = re.compile(r"^\.[\w.-]+\.\d+\.tmp$|^\.model\.\d+\.keras$")
    CHECKPOINT_TEMPORARY = re.compile(r"^\.tmp-epoch-\d{4}-\d+$")  # CheckpointStore.save's folder

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __str__(self):
        return str(self.path)

    @classmethod
    def checkpoint_name(cls, epoch):
        """The folder name of epoch `epoch`'s checkpoint (1-based), e.g. `epoch-0001`."""
        return f"{cls.CHECKPOINT_PREFIX}{epoch:04d}"

    def file(self, name):
        return self.path / name

    @property
    def model_path(self):
        return self.path / self.MODEL

    @property
    def checkpoints(self):
        return self.path / self.CHECKPOINTS

    @property
    def tensorboard(self):
        """The TensorBoard log directory: the run directory itself (one TensorBoard run per kc2f run)."""
        return self.path

    def event_files(self):
        """The run's TensorBoard event files, oldest first."""
        return sorted(self.path.glob(self.EVENTS_PREFIX + "*")) if self.path.is_dir() else []

    @property
    def lock_path(self):
        return self.path / self.LOCK

    def create(self):
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def is_claimed(self):
        """Whether kc2f made this directory: its marker, or (runs made before the marker) a
        `state.json`, `config.json` or checkpoint folder of kc2f's own form."""
        if (self.path / self.MARKER).is_file():
            return True
        for name, key in ((self.STATE, "checkpoint"), (self.CONFIG, "factors")):
            try:
                if key in read_json(self.path / name):
                    return True
            except (ValueError, TypeError):
                pass
        return self.checkpoints.is_dir() and any(
            entry.is_dir() and re.fullmatch(self.CHECKPOINT_PREFIX + r"\d{4}", entry.name)
            for entry in self.checkpoints.iterdir())

    def claim(self):
        """Makes the directory a kc2f run directory, or refuses one that holds files kc2f did not write.

        A missing or completely empty directory (not even a dotfile) is created
        and marked; a directory that `is_claimed` keeps its contents (and gets
        the marker if it predates it). Anything else is refused before a single
        file is written or removed.

        Raises:
            ValueError: the directory holds entries kc2f did not write (named), or
                is not a directory.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"Run directory {self.path} is a file, not a directory. Choose another --run-dir.")
        if self.path.is_dir() and not self.is_claimed():
            entries = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in self.path.iterdir())
            if entries:
                shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
                raise ValueError(
                    f"Run directory {self.path} holds files that kc2f did not write ({shown}): kc2f "
                    "writes runs only into a new or empty directory. Choose another --run-dir."
                )
        self.create()
        if not (self.path / self.MARKER).is_file():
            write_json_atomic(self.path / self.MARKER, {"kc2f_run_directory": 1})
        return self

    def has(self, name):
        return (self.path / name).is_file()

    def stale_temporaries(self):
        """Temporary files and folders of interrupted writes (`.x.PID.tmp`, `.model.PID.keras`, `.tmp-*`),
        in a directory that `is_claimed` only: kc2f removes nothing from a directory it did not make."""
        if not self.path.is_dir() or not self.is_claimed():
            return []
        found = [entry for entry in self.path.iterdir() if self.TEMPORARY.match(entry.name)]
        if self.checkpoints.is_dir():
            found += [entry for entry in self.checkpoints.iterdir()
                      if self.TEMPORARY.match(entry.name) or self.CHECKPOINT_TEMPORARY.match(entry.name)]
            found += [path for path in self.checkpoints.glob("*/.*.tmp") if self.TEMPORARY.match(path.name)]
        return sorted(found)

    def remove_stale_temporaries(self):
        """Removes what `stale_temporaries` finds (call it holding the lock); returns the paths."""
        found = self.stale_temporaries()
        for path in found:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return found

    def unexpected_entries(self):
        """Entries that a run directory without a commit should not hold (e.g. another run's history).

        A run killed in its first epoch leaves its config, labels, TensorBoard
        file and at most the first epoch's checkpoint, published but not yet
        committed; anything else is unexpected.
        """
        if not self.path.is_dir():
            return []
        entries = []
        for entry in sorted(self.path.iterdir()):
            if entry.name.startswith(".") and entry.name != self.LOCK:
                continue  # temporaries: removed at start
            if entry.name == self.CHECKPOINTS and entry.is_dir():
                names = {p.name for p in entry.iterdir() if not p.name.startswith(".")}
                expected = names <= {self.checkpoint_name(1)}
            else:
                expected = entry.name in self.BEFORE_FIRST_COMMIT or entry.name.startswith(self.EVENTS_PREFIX)
            if not expected:
                entries.append(entry.name + ("/" if entry.is_dir() else ""))
        return entries

    def check_writable(self):
        """Raises ValueError naming the folder when the run or checkpoint folder cannot be written."""
        for folder in (self.path, self.checkpoints):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".write-check.{os.getpid()}.tmp"
                with open(probe, "w") as handle:
                    handle.write("kc2f")
                    handle.flush()
                    os.fsync(handle.fileno())
                probe.unlink()
            except OSError as error:
                raise ValueError(f"Cannot write to {folder}: {error.strerror or error}.") from None

    def free_bytes(self):
        return shutil.disk_usage(self.path).free

    # --- JSON files ---------------------------------------------------------------------------

    def read_config(self):
        config = read_json(self.path / self.CONFIG)
        if not isinstance(config, dict):
            raise ValueError(f"{self.path / self.CONFIG} must hold a JSON object of options.")
        return config

    def write_config(self, config):
        write_json_atomic(self.path / self.CONFIG, config)

    def read_labels(self):
        labels = read_json(self.path / self.LABELS)
        if not isinstance(labels, list) or not labels or not all(isinstance(name, str) for name in labels):
            raise ValueError(f"{self.path / self.LABELS} must hold a JSON list of label names.")
        return labels

    def write_labels(self, labels):
        write_json_atomic(self.path / self.LABELS, list(labels))

    def read_state(self):
        """The last committed state, or `None` for a run that has not finished an epoch."""
        if not self.has(self.STATE):
            return None
        return read_json(self.path / self.STATE)

    def write_state(self, state):
        write_json_atomic(self.path / self.STATE, state)

    def read_history(self):
        """The committed per-epoch rows (from `state.json`, else `history.json`); ValueError when there is none."""
        state = self.read_state()
        if state is not None and state.get("history"):
            return list(state["history"])
        path = self.path / self.HISTORY
        if not path.is_file():
            raise ValueError(f"{self.path} is not a kc2f run directory with a finished epoch (no {self.HISTORY}).")
        history = read_json(path)
        if not isinstance(history, list) or not history:
            raise ValueError(f"{path} holds no epoch.")
        return history

    def write_history(self, history, split="val"):
        """`history.json` and `history.csv`, each replaced atomically.

        `split` is the split the `val_*` entries were computed on (`"val"` or
        `"test"`, `RunConfig.selection_split`): `history.json` keeps the
        `val_*` keys that reports read; `history.csv`, the table a person
        opens, names its columns after the split (`test_metric`, `test_loss`, ...).
        """
        write_json_atomic(self.path / self.HISTORY, history)
        tmp = self.path / f".{self.HISTORY_CSV}.{os.getpid()}.tmp"
        with open(tmp, "w", newline="") as handle:
            extra = sorted({key for row in history for key in row} - set(HISTORY_FIELDS))
            fields = list(HISTORY_FIELDS) + extra
            if split != "val":
                renamed = {key: f"{split}_{key[4:]}" for key in fields if key.startswith("val_")}
                history = [{renamed.get(key, key): value for key, value in row.items()} for row in history]
                fields = [renamed.get(key, key) for key in fields]
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path / self.HISTORY_CSV)

    def is_finished(self):
        """Whether the run finished (its summary is written)."""
        return self.has(self.SUMMARY)

    def read_summary(self):
        """The finished run's summary, or `None` while the run is unfinished."""
        if not self.has(self.SUMMARY):
            return None
        return read_json(self.path / self.SUMMARY)

    def write_summary(self, summary):
        write_json_atomic(self.path / self.SUMMARY, summary)

    def require_model(self):
        """`model.keras`'s path; ValueError when the run has not finished."""
        if not self.model_path.is_file():
            raise ValueError(f"{self.path} has no trained model ({self.model_path} is missing): has the run finished?")
        return self.model_path
