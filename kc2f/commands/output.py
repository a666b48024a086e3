"""Where a command's results and its logs go: the one `--json` / `--quiet` convention of the CLI.

Every command that prints results takes `--json`: the results go to stdout as
JSON, and everything else (log lines, Keras progress bars, warnings) to
stderr, so `kc2f fit --json ... | jq` reads clean JSON. `--quiet` drops the
progress bars and progress lines. Where the bars' stream is not a terminal (a
redirected log), Keras prints one plain line per epoch instead of bars redrawn
with carriage returns and ANSI colours.
"""

import contextlib
import sys

import click


def log_function(as_json):
    """The `log` callable of a command: stdout for humans, stderr when stdout carries `--json` results."""
    return (lambda line: click.echo(line, err=True)) if as_json else click.echo


@contextlib.contextmanager
def results_stdout(as_json):
    """While training: Keras' progress bars (printed to stdout) go to stderr under `--json`."""
    if not as_json:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def keras_verbosity(quiet, as_json=False):
    """Keras' `verbose`: 0 under `--quiet`, bars on a terminal, else one plain line per epoch (2)."""
    if quiet:
        return 0
    stream = sys.stderr if as_json else sys.stdout
    return 1 if stream.isatty() else 2
