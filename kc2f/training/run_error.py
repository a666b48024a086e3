"""The error a run raises when it cannot start or resume."""


# The way out of a run directory that cannot be used, in the words of every command that names one.
OTHER_RUN_DIR = "choose another run directory (--run-dir; --out of sweep, cv and demo)"


class RunError(ValueError):
    """A run cannot start or resume; the message says why and what to do."""
