"""The error a run raises when it cannot start or resume."""


class RunError(ValueError):
    """A run cannot start or resume; the message says why and what to do."""
