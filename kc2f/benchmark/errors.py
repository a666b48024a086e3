"""The benchmark's error: a `ValueError`, so `kc2f bench` reports it as a user error."""


class BenchError(ValueError):
    """A benchmark cannot run as asked; the message says why."""
