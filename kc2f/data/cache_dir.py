"""Where kc2f keeps what it can recompute: `$KC2F_CACHE_DIR`, default `~/.cache/kc2f`.

Holds the generated synthetic dataset (`synthetic/`), the pre-training scan's
results (`scan.sqlite`, `kc2f.data.scan_cache`) and, on JAX, the persistent
compilation cache (`jax/`). Everything there may be deleted at any time.
Pure Python: the benchmark imports it where TensorFlow is not installed.
"""

import os


def cache_root():
    """The kc2f cache directory (not created): `$KC2F_CACHE_DIR`, default `~/.cache/kc2f`."""
    return os.environ.get("KC2F_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "kc2f")
