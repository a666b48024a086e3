"""The active backend and device: precision policy, jit, synchronisation, cleanup.

A backend's own module (jax, tensorflow, torch) is imported inside the branch
for that backend only: under KERAS_BACKEND=jax neither TensorFlow nor PyTorch
needs to be installed.
"""

import contextlib
import gc
import os
import platform

import keras
import numpy as np

from kc2f.training.distribution import accelerator_present


def device_name():
    """A short description of the device the backend computes on."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                return f"{device.platform}:{device.device_kind}"
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"cuda:{torch.cuda.get_device_name(0)}"
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"gpu:{details.get('device_name', gpus[0].name)}"
    except Exception:  # noqa: BLE001 - a description only
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu:{platform.processor() or platform.machine()} ({cores} cores)"


def resolve_precision(precision="auto"):
    """`auto` → `mixed_bfloat16` on a GPU/TPU, `float32` on CPU; other names as given."""
    if precision == "auto":
        return "mixed_bfloat16" if accelerator_present() else "float32"
    return precision


@contextlib.contextmanager
def precision_scope(precision="auto"):
    """Sets the global Keras policy of `precision` (resolved) and restores the previous one on exit.

    Yields the resolved policy name.
    """
    previous = keras.mixed_precision.global_policy().name
    precision = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield precision
    finally:
        keras.mixed_precision.set_global_policy(previous)


def compute_dtype(precision):
    return keras.mixed_precision.Policy(precision).compute_dtype


def resolve_jit(jit="auto"):
    """Keras `jit_compile` for the step: XLA on JAX and TensorFlow by default.

    `auto` turns XLA on for JAX and TensorFlow and keeps Keras' own choice on
    PyTorch (eager; `on` asks Keras for `torch.compile`).
    """
    if jit == "on":
        return True
    if jit == "off":
        return False
    return True if keras.backend.backend() in ("jax", "tensorflow") else "auto"


def jit_label(model):
    """How the model's train step runs: `xla`, `torch.compile` or `eager`."""
    if not model.jit_compile:
        return "eager"
    return "torch.compile" if keras.backend.backend() == "torch" else "xla"


def dtype_label(model):
    """The dtype `model` computes in, read off its own policy (not the precision a run asked for)."""
    return model.dtype_policy.compute_dtype


def synchronize(value):
    """Blocks until `value` (a backend tensor) is computed; returns it as NumPy."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.block_until_ready(value))
    if hasattr(value, "dtype") and keras.backend.standardize_dtype(value.dtype) in ("bfloat16", "float16"):
        # TensorFlow's bfloat16 tensors do not convert to NumPy ("object __array__ method not
        # producing an array"): `--precision mixed_bfloat16` failed at its first matmul.
        value = keras.ops.cast(value, "float32")
    return keras.ops.convert_to_numpy(value)


def to_device(data):
    """Puts a (nested) batch of NumPy arrays on the device once."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.tree_util.tree_map(jax.device_put, data)
    return keras.tree.map_structure(keras.ops.convert_to_tensor, data)


def release(model=None):
    """Frees what a benchmark row allocated before the next one."""
    del model
    # clear_session also resets the global dtype policy to float32: under `--precision
    # mixed_bfloat16` every row after the first one ran in float32 (on an H200 that made the C = 2
    # step slower than the C = 1 step, issue 35's "anomaly"). The policy is the run's, not the row's.
    policy = keras.config.dtype_policy()
    keras.backend.clear_session()
    keras.config.set_dtype_policy(policy)
    gc.collect()
    if keras.backend.backend() == "torch":
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass
