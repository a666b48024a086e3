"""Device memory: the peak a row used, and whether an error means it ran out.

A backend's own module is imported inside the branch for that backend only
(TensorFlow only under KERAS_BACKEND=tensorflow).
"""

import keras

_OOM_MARKERS = ("resource_exhausted", "resourceexhausted", "out of memory", "oom when allocating")


def reset_peak_memory():
    """Resets the device's peak-memory counter where the backend can (not JAX)."""
    backend = keras.backend.backend()
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                tf.config.experimental.reset_memory_stats("GPU:0")
    except Exception:  # noqa: BLE001 - memory is reported as n/a then
        pass


def peak_memory_bytes():
    """Peak device memory in bytes, or `None` where the backend does not expose it.

    JAX: `memory_stats()["peak_bytes_in_use"]` of the first device (a process-wide
    peak: JAX cannot reset it, so a row shows the largest of itself and the rows
    before it); PyTorch: `torch.cuda.max_memory_allocated()`; TensorFlow:
    `tf.config.experimental.get_memory_info("GPU:0")["peak"]`. CPU: `None`.
    """
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats()
            if stats and "peak_bytes_in_use" in stats:
                return int(stats["peak_bytes_in_use"])
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return int(torch.cuda.max_memory_allocated())
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except Exception:  # noqa: BLE001 - memory is reported as n/a then
        pass
    return None


def is_oom_error(error):
    """Whether `error` is a backend's out-of-memory error (JAX/XLA, TF, PyTorch)."""
    name = type(error).__name__.lower()
    if "outofmemory" in name or "resourceexhausted" in name:
        return True
    message = str(error).lower()
    return any(marker in message for marker in _OOM_MARKERS)
