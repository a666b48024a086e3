"""The training step timed on synthetic waveforms kept on the device."""

import functools

from kc2f.benchmark.backend import release
from kc2f.benchmark.measure import measure_configurations
from kc2f.benchmark.memory import reset_peak_memory
from kc2f.benchmark.rows import make_row
from kc2f.benchmark.step import TrainStep, build_model, compile_model, synthetic_batch, time_steps, training_flops


def run_benchmark(spec, *, log=None):
    """Times the training step for every size × method × factor of `spec` on synthetic waveforms.

    Returns:
        A dict: `tool`, `backend`, `device`, `precision`, `jit`,
        `matmul_peak_tflops`, `matmul`, `rows` (see `rows.make_row`).
    """
    return measure_configurations(spec, functools.partial(measure_row, spec), log=log)


def measure_row(spec, size, method, factor, peak_flops_per_s=None):
    """Times the training step of one configuration on synthetic waveforms; returns a row dict."""
    model = compile_model(build_model(size, method, factor, spec), spec)
    flops = training_flops(model)
    reset_peak_memory()
    step = TrainStep(model, synthetic_batch(spec.batch, spec.samples, spec.num_classes, spec.seed))
    try:
        first, times = time_steps(step, spec.steps, spec.warmup)
    finally:
        step.close()
    row = make_row(model, size, spec, times, first, flops, peak_flops_per_s)
    release(model)
    return row
