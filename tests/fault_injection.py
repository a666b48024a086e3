"""`kc2f` with a SIGKILL at an exact point of a run, for the crash and resume tests.

    KC2F_FAULT=epoch:3 python tests/fault_injection.py fit ...

`epoch:N` kills the process right after epoch N's training and validation,
before its checkpoint is committed; `checkpoint:N` kills it in the middle of
that checkpoint's write (model variables on disk, optimizer not yet). Without
KC2F_FAULT it is plain `kc2f`. The faults are injected here, by wrapping the
library's own methods, so that production code carries no test hook.
"""

import os
import signal
import sys

from kc2f.cli import main
from kc2f.training import checkpoint_store
from kc2f.training.checkpoint_store import CheckpointStore
from kc2f.training.epoch_recorder import EpochRecorder


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def install(fault):
    where, _, number = fault.partition(":")
    epoch = int(number)
    if where == "epoch":
        record = EpochRecorder.on_epoch_end

        def on_epoch_end(self, index, logs=None):
            if index + 1 == epoch:
                _kill()
            record(self, index, logs)

        EpochRecorder.on_epoch_end = on_epoch_end
    elif where == "checkpoint":
        save, save_arrays = CheckpointStore.save, checkpoint_store._save_arrays

        def save_killing(self, name, *args, **kwargs):
            if name != f"epoch-{epoch:04d}":
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
    else:
        raise SystemExit(f"KC2F_FAULT must be epoch:N or checkpoint:N. Received: {fault!r}")


if __name__ == "__main__":
    if os.environ.get("KC2F_FAULT"):
        install(os.environ["KC2F_FAULT"])
    sys.exit(main())
