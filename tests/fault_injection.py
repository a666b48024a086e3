"""`kc2f` with a SIGKILL at an exact point of a run, for the crash and resume tests.

    KC2F_FAULT=epoch:3 python tests/fault_injection.py fit ...

* `epoch:N` kills the process right after epoch N's training and validation,
  before anything of that epoch is written;
* `checkpoint:N` kills it in the middle of that epoch's checkpoint write
  (model variables on disk, optimizer not yet);
* `count:FILE` kills nothing and appends every write point of the run to FILE,
  one a line; `kill:POINT` kills the process at that write point.

A write point is `<epoch-NNNN or final>|<what>|<before or after>`, for each durable step of an
epoch's commit (`model.npz` and `optimizer.npz` written, the checkpoint folder
published, its and the run's `state.json`, pruning, `history.json`,
`history.csv`) and of the finished run (`model.keras`, `summary.json`).
Without KC2F_FAULT this is plain `kc2f`. The faults are injected here, by
wrapping the library's own functions, so that production code carries no
test hook.
"""

import os
import pathlib
import shutil
import signal
import sys

from kc2f.cli import main
from kc2f.training import checkpoint_store
from kc2f.training.checkpoint_store import CheckpointStore
from kc2f.training.epoch_recorder import EpochRecorder

PUBLISHED = ("state.json", "history.json", "history.csv", "model.keras", "summary.json")
FINAL = ("model.keras", "summary.json")


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def install(fault):
    where, _, arg = fault.partition(":")
    if where == "epoch":
        epoch = int(arg)
        record = EpochRecorder.on_epoch_end

        def on_epoch_end(self, index, logs=None):
            if index + 1 == epoch:
                _kill()
            record(self, index, logs)

        EpochRecorder.on_epoch_end = on_epoch_end
    elif where == "checkpoint":
        epoch = int(arg)
        save, save_arrays = CheckpointStore.save, checkpoint_store._save_arrays

        def save_killing(self, name, *args, **kwargs):
            if name != CheckpointStore.name(epoch):
                return save(self, name, *args, **kwargs)
            calls = []

            def save_arrays_killing(path, variables):
                if calls:  # the model file is written; die before the optimizer's
                    _kill()
                calls.append(path)
                save_arrays(path, variables)

            checkpoint_store._save_arrays = save_arrays_killing
            return save(self, name, *args, **kwargs)

        CheckpointStore.save = save_killing
    elif where in ("count", "kill"):
        _install_write_points(where, arg)
    else:
        raise SystemExit(f"KC2F_FAULT must be epoch:N, checkpoint:N, count:FILE or kill:POINT. Received: {fault!r}")


def _install_write_points(mode, arg):
    context = {"epoch": "start"}

    def point(what, when):
        name = f"{context['epoch']}|{what}|{when}"
        if mode == "count":
            with open(arg, "a") as handle:
                handle.write(name + "\n")
        elif name == arg:
            _kill()

    save = CheckpointStore.save

    def save_tracked(self, name, *args, **kwargs):
        context["epoch"] = name  # this commit's points, then the history views and, last, the finished run's
        return save(self, name, *args, **kwargs)

    CheckpointStore.save = save_tracked
    save_arrays = checkpoint_store._save_arrays

    def save_arrays_tracked(path, variables):
        save_arrays(path, variables)
        point(pathlib.Path(path).name, "after")

    checkpoint_store._save_arrays = save_arrays_tracked

    def wrap(function, label):
        def wrapped(src, dst, *args, **kwargs):
            dst_path = pathlib.Path(dst)
            what = label(dst_path)
            if what:
                point(what, "before")
            result = function(src, dst, *args, **kwargs)
            if what:
                point(what, "after")
            return result
        return wrapped

    def replaced(dst):
        if dst.name not in PUBLISHED:
            return None
        if dst.name in FINAL:
            context["epoch"] = "final"  # written once, when the run has finished
        inside = dst.parent.name.startswith(".tmp-")
        return f"checkpoint/{dst.name}" if inside else dst.name

    def renamed(dst):
        return "checkpoint" if dst.parent.name == "checkpoints" and dst.name.startswith("epoch-") else None

    os.replace = wrap(os.replace, replaced)
    os.rename = wrap(os.rename, renamed)
    rmtree = shutil.rmtree

    def rmtree_tracked(path, *args, **kwargs):
        pruned = pathlib.Path(path).parent.name == "checkpoints" and pathlib.Path(path).name.startswith("epoch-")
        rmtree(path, *args, **kwargs)
        if pruned and context["epoch"] != "start":
            point(f"prune {pathlib.Path(path).name}", "after")

    shutil.rmtree = rmtree_tracked


if __name__ == "__main__":
    if os.environ.get("KC2F_FAULT"):
        install(os.environ["KC2F_FAULT"])
    sys.exit(main())
