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

On by default from JAX 0.10 (`KC2F_COMPILATION_CACHE=0` turns it off, `=1` on
for any JAX). Measured on 2 CPU cores, JAX 0.10.2, `configs/fsdd.yaml` trimmed
to 1 + 1 epochs on 256 clips: epochs (C = 2, then C = 1) of 4.0 s and 5.0 s with
an empty cache, 1.6 s and 2.1 s, then 1.4 s and 2.2 s, in two later runs that
loaded it, with the same losses; a run SIGKILLed after epoch 1 resumed its C = 1
phase from the cache (2.1 s, the same loss)
(docs/method.md#where-the-time-goes). Below 0.10 it stays opt-in: with JAX
0.4.33 a run that loaded its first phase's step from the cache crashed
(segmentation fault) when it loaded the next phase's.
"""

import os

import keras

from kc2f.data.cache_dir import cache_root

MIN_COMPILE_SECONDS = 1.0


# The oldest JAX whose cache was measured to survive a phase switch and a resume.
DEFAULT_ON_FROM = (0, 10)


def compilation_cache_wanted(jax_version=None):
    """`KC2F_COMPILATION_CACHE` when set, else whether JAX is at least `DEFAULT_ON_FROM`.

    Args:
        jax_version: `(major, minor)`, default the installed JAX's.
    """
    setting = os.environ.get("KC2F_COMPILATION_CACHE", "").strip().lower()
    if setting:
        return setting in ("1", "true", "yes", "on")
    if jax_version is None:
        import jax

        jax_version = tuple(int(part) for part in jax.__version__.split(".")[:2])
    return tuple(jax_version) >= DEFAULT_ON_FROM


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
