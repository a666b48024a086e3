"""Helpers that write tiny audio fixtures (no external encoders needed).

The PCM WAV writer lives in `tests/conftest.py` (shared with other test
packages) and is re-exported here.
"""

import struct

import numpy as np

from tests.conftest import FSDD, REPO, write_wav  # noqa: F401  (re-exported)

REPO_ROOT = str(REPO)
# The real FSDD of a development checkout (data_dir holding recordings/); only
# tests about the real data's own properties use it.
FSDD_DIR = str(FSDD.parent)


def write_float_wav(path, x, rate, dtype="<f4"):
    """IEEE-float WAV (format tag 3) with an extra LIST chunk before `data`."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    data = x.astype(dtype).tobytes()
    width = np.dtype(dtype).itemsize
    channels = x.shape[1]
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * width * channels, width * channels,
                      8 * width)
    listing = b"INFOISFT\x04\x00\x00\x00kc2f"
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"LIST" + struct.pack("<I", len(listing)) + listing
            + b"data" + struct.pack("<I", len(data)) + data)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def write_flac(path, x, rate):
    """16-bit FLAC through tensorflow-io's encoder."""
    import tensorflow as tf
    import tensorflow_io as tfio

    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)
    with open(path, "wb") as f:
        f.write(tfio.audio.encode_flac(tf.constant(pcm), rate=rate).numpy())
    return path


def band_limited_signal(rate, seconds=0.5, seed=0):
    """Band-limited test signal (below 3.5 kHz, so it survives every rate down to 8 kHz)."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(seed)
    x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in
            zip(rng.uniform(0.05, 0.2, 5), rng.uniform(100, 3500, 5), rng.uniform(0, 6, 5)))
    return 0.9 * x / np.abs(x).max()
