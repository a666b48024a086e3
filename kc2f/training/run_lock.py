"""The exclusive lock of a run directory: one writing process at a time."""

import fcntl
import os
import socket

from kc2f.training.run_error import OTHER_RUN_DIR, RunError


class RunLock:
    """An advisory lock on `run_dir/.lock` held by the process that writes the run.

    `flock` locks belong to the open file: the kernel drops the lock when the
    process dies, however it dies (SIGKILL included), so a killed run never
    leaves a stale lock behind. The lock file holds the holder's pid and host,
    which a second process trying to write the same run directory names in its
    error. In multi-process training only the chief takes it.

    Args:
        path: the lock file (`RunDirectory.lock_path`).
    """

    def __init__(self, path):
        self.path = path
        self._fd = None

    def acquire(self):
        """Takes the lock, or raises `RunError` naming the process that holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunError(f"Cannot create the lock file {self.path}: {error.strerror}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunError(
                f"Run directory {os.path.dirname(self.path) or '.'} is in use by {holder} "
                f"(lock file {self.path}); wait for that run to end or {OTHER_RUN_DIR}."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
