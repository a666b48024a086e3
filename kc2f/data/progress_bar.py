"""The `ProgressBar` of kc2f's long passes (the scan, `kc2f stats`, `kc2f pack`, evaluation).

A bar with count, rate and ETA on stderr, drawn with `rich` (a Keras
dependency) only when it is wanted: `show_progress=True` forces it,
`False` hides it, `None` (the default) shows it when stderr is a terminal.
`KC2F_PROGRESS=1` / `0` overrides the default for scripts and CI logs.
Without a bar it costs one attribute check per step.
"""

import os
import sys


def progress_wanted(show_progress=None):
    """Whether a bar is drawn: `show_progress` if given, else `KC2F_PROGRESS`, else stderr is a TTY."""
    if show_progress is not None:
        return bool(show_progress)
    forced = os.environ.get("KC2F_PROGRESS", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """Count, rate and ETA of one pass, on stderr; a context manager.

    Args:
        description: what is counted, e.g. `"scan"`.
        total: the number of items (`None`: unknown, no ETA).
        unit: the items' name in the rate, e.g. `"clips"`.
        show_progress: `True`, `False` or `None` (see `progress_wanted`).

    Example:
        with ProgressBar("scan", len(files), unit="clips") as bar:
            for f in files:
                ...
                bar.advance()
    """

    def __init__(self, description, total=None, *, unit="items", show_progress=None):
        if total is not None and total < 0:
            raise ValueError(f"total must be >= 0 or None. Received: total={total!r}")
        self.description, self.total, self.unit = description, total, unit
        self.enabled = progress_wanted(show_progress)
        self._progress = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            unit = self.unit

            def rate(task):
                return f"{task.speed:,.1f} {unit}/s" if task.speed else f"- {unit}/s"

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr), transient=False, refresh_per_second=4,
            )
            self._rate = rate
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, rate="")
        return self

    def advance(self, n=1):
        """Counts `n` more items done."""
        if self._progress is not None:
            self._progress.advance(self._task, n)
            task = self._progress.tasks[0]
            self._progress.update(self._task, rate=self._rate(task))

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        return False
