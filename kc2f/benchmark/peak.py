"""The device's dense matmul peak, and the throughput and MFU of a step against it."""

import math
import time

import keras
import numpy as np

from kc2f.benchmark.backend import accelerator_present, synchronize


def measure_matmul_peak(dtype="float32", size=None, repeats=None, trials=3):
    """Dense matmul throughput of the device, FLOP/s, timed in the active backend.

    Multiplies two `(size, size)` matrices of `dtype` with `keras.ops.matmul`,
    jitted where the backend can (`jax.jit`; `tf.function(jit_compile=True)`;
    eager on PyTorch), `repeats` times back to back between two synchronisations,
    and keeps the best of `trials`. Defaults: 8192 and 20 repeats on an
    accelerator, 1024 and 4 repeats on CPU.

    Returns:
        `dict(flops_per_s, dtype, size, repeats)`.
    """
    accel = accelerator_present()
    size = size or (8192 if accel else 1024)
    repeats = repeats or (20 if accel else 4)
    rng = np.random.default_rng(0)
    a = keras.ops.cast(keras.ops.convert_to_tensor(rng.standard_normal((size, size), np.float32)), dtype)
    b = keras.ops.cast(keras.ops.convert_to_tensor(rng.standard_normal((size, size), np.float32)), dtype)

    def matmul(x, y):
        return keras.ops.matmul(x, y)

    backend = keras.backend.backend()
    # The backend's own jit, imported only under that backend (TensorFlow only on KERAS_BACKEND=tensorflow).
    if backend == "jax":
        import jax

        matmul = jax.jit(matmul)
    elif backend == "tensorflow":
        import tensorflow as tf

        matmul = tf.function(matmul, jit_compile=True)
    # A scalar read back synchronises every backend (TF and torch queue their GPU work).
    synchronize(matmul(a, b)[0, 0])
    best = math.inf
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            c = matmul(a, b)
        synchronize(c[0, 0])
        best = min(best, (time.perf_counter() - start) / repeats)
    return {"flops_per_s": 2.0 * size**3 / best, "dtype": str(dtype), "size": size, "repeats": repeats}


def best_matmul(a, b):
    """The faster of two `measure_matmul_peak` results (a busy moment reads low once)."""
    return a if a["flops_per_s"] >= b["flops_per_s"] else b


def throughput(batch, step_s, train_flops_per_sample, peak_flops_per_s=None):
    """`(samples_per_s, tflops, mfu)` of a step; `mfu` is `None` without a peak."""
    samples_per_s = batch / step_s
    flops_per_s = samples_per_s * train_flops_per_sample
    mfu = flops_per_s / peak_flops_per_s if peak_flops_per_s else None
    return samples_per_s, flops_per_s / 1e12, mfu


def set_peak(result, matmul):
    """Sets the matmul peak of `result` and recomputes every row's MFU against it."""
    result["matmul"] = matmul
    result["matmul_peak_tflops"] = matmul["flops_per_s"] / 1e12
    for row in result["rows"]:
        row["mfu"] = 1e12 * row["tflops"] / matmul["flops_per_s"]
