"""The JAX persistent compilation cache of kc2f runs: compiled steps kept across phases, runs and resumes.

A coarse-to-fine run compiles its train and evaluation steps once per phase
and again on every resume; a second run of the same shapes (a sweep's seeds, a
baseline beside a coarse-to-fine run) compiles them all again. On JAX, XLA's
executables can be kept on disk and loaded instead of compiled:
`enable_compilation_cache` points `jax_compilation_cache_dir` at
`$KC2F_CACHE_DIR/jax` and caches every program that took at least
`MIN_COMPILE_SECONDS` to compile. A cached executable is the one XLA would
build for the same program, so results do not change. Tracing (Python to
jaxpr) is still paid; the cache saves the XLA compilation.

TensorFlow has no equivalent for `tf.function` steps: tracing is per process,
and XLA's on-disk cache (`TF_XLA_FLAGS=--tf_xla_persistent_cache_directory`)
was not measured here, so kc2f leaves TensorFlow as it is.

Off by default, on with `KC2F_COMPILATION_CACHE=1`: measured on 2 CPU cores
with JAX 0.4.33, a run that loaded its first phase's train step from the cache
ran it, then crashed (segmentation fault) when it loaded the next phase's
step (docs/method.md#where-the-time-goes). Turn it on where a measurement shows
it works and helps (e.g. a GPU with a newer jaxlib).
"""

import os

import keras

from kc2f.data.cache_dir import cache_root

MIN_COMPILE_SECONDS = 1.0


def compilation_cache_wanted():
    """`KC2F_COMPILATION_CACHE=1` (opt-in; see the module docstring)."""
    return os.environ.get("KC2F_COMPILATION_CACHE", "0").strip().lower() in ("1", "true", "yes", "on")


def enable_compilation_cache(directory=None):
    """Turns on JAX's persistent compilation cache; returns its directory, or `None` (not JAX, or not asked for).

    Args:
        directory: where to keep it (default `$KC2F_CACHE_DIR/jax`).
    """
    if keras.backend.backend() != "jax" or not compilation_cache_wanted():
        return None
    import jax

    directory = os.fspath(directory or os.path.join(cache_root(), "jax"))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None  # an unwritable cache only costs the compilations
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
