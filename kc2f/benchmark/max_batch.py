"""The largest training batch that fits on the device, per size × method × factor."""

from kc2f.benchmark.backend import precision_scope, release
from kc2f.benchmark.errors import BenchError
from kc2f.benchmark.memory import is_oom_error
from kc2f.benchmark.output import format_max_batch_row
from kc2f.benchmark.rows import model_tokens, new_result
from kc2f.benchmark.step import TrainStep, build_model, compile_model, synthetic_batch


def search_max_batch(fits, start=1, limit=None):
    """Largest batch `b <= limit` with `fits(b)`, by doubling from `start` then bisecting.

    `fits` must be monotone (a batch that fits means every smaller one fits).
    Returns `(batch, capped)`: `capped` is True when `limit` itself fits (the
    true maximum may be larger); `batch` is 0 when not even 1 fits.
    """
    if start < 1:
        raise BenchError(f"start must be >= 1. Received: start={start}")
    if limit is not None and limit < 1:
        raise BenchError(f"limit must be >= 1. Received: limit={limit}")
    good, bad = 0, None
    batch = start if limit is None else min(start, limit)
    while True:
        if fits(batch):
            good = batch
            if limit is not None and batch >= limit:
                return good, True
            batch = batch * 2 if limit is None else min(batch * 2, limit)
        else:
            bad = batch
            break
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good, False


def fits_or_oom(trial):
    """Wraps `trial(batch)` into `fits(batch)`: False on a backend OOM, errors re-raised."""

    def fits(batch):
        try:
            trial(batch)
            return True
        except Exception as error:  # noqa: BLE001 - only OOM is an answer
            if is_oom_error(error):
                release()
                return False
            raise

    return fits


def find_max_batch(spec, *, max_batch=4096, trial_steps=2, log=None):
    """Largest training batch that fits, per size × method × factor of `spec`.

    Each trial builds and compiles the model and runs `trial_steps` training
    steps at the batch; an out-of-memory error of the backend (XLA
    RESOURCE_EXHAUSTED, TensorFlow ResourceExhaustedError, torch
    OutOfMemoryError) means "does not fit". The batch doubles from
    `spec.batch` until a trial fails or `max_batch` is reached, then bisects.

    Returns:
        A dict: `backend`, `device`, `precision`, `rows` (`size`, `method`,
        `factor`, `tokens`, `max_batch`, `capped`, `trials`).
    """
    with precision_scope(spec.precision) as precision:
        result = new_result(precision, spec.jit, None)
        for size, method, factor in spec.configurations():
            row = _largest_batch(spec, size, method, factor, max_batch, trial_steps)
            result["rows"].append(row)
            if log:
                log(format_max_batch_row(result, row))
    return result


def _largest_batch(spec, size, method, factor, max_batch, trial_steps):
    """The max-batch row of one configuration."""
    tried = []
    tokens = []

    def trial(batch):
        tried.append(batch)
        model = build_model(size, method, factor, spec)
        tokens[:] = [model_tokens(model)]
        compile_model(model, spec)
        step = TrainStep(model, synthetic_batch(batch, spec.samples, spec.num_classes, spec.seed))
        try:
            for _ in range(trial_steps):
                step()
        finally:
            step = None
            release(model)

    best, capped = search_max_batch(fits_or_oom(trial), start=min(spec.batch, max_batch), limit=max_batch)
    return {"size": size.name, "hidden_dim": size.hidden_dim, "depth": size.depth,
            "num_heads": size.num_heads, "method": method, "factor": factor,
            "tokens": tokens[0] if tokens else None, "frames": spec.target_frames,
            "max_batch": best, "capped": capped, "trials": tried}
