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


def write_flac(path, x, rate, width=2):
    """FLAC of `width`-byte PCM (1, 2 or 3), through libsndfile's encoder.

    The PCM is the same quantisation `write_wav` uses, so the two files hold identical samples.
    """
    import soundfile

    x = np.asarray(x, np.float64)
    scale = 2.0 ** (8 * width - 1)
    pcm = np.clip(np.round(x * scale), -scale, scale - 1).astype(np.int32)
    subtype = {1: "PCM_S8", 2: "PCM_16", 3: "PCM_24"}[width]
    # libsndfile takes int32 as left-justified: shift the PCM to the top bits.
    soundfile.write(path, pcm << (32 - 8 * width), rate, format="FLAC", subtype=subtype)
    return path


def write_compressed(path, x, rate, kind):
    """A lossy file of float signal `x`: kind "vorbis", "opus" (Ogg) or "mp3", through libsndfile."""
    import soundfile

    format, subtype = {"vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS"),
                       "mp3": ("MP3", "MPEG_LAYER_III")}[kind]
    soundfile.write(path, np.asarray(x, np.float32), rate, format=format, subtype=subtype)
    return path


def band_limited_signal(rate, seconds=0.5, seed=0):
    """Band-limited test signal (below 3.5 kHz, so it survives every rate down to 8 kHz)."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(seed)
    x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in
            zip(rng.uniform(0.05, 0.2, 5), rng.uniform(100, 3500, 5), rng.uniform(0, 6, 5)))
    return 0.9 * x / np.abs(x).max()
