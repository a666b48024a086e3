"""Helpers that write tiny audio fixtures (no external encoders needed)."""

import os
import struct
import wave

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FSDD_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "fsdd"))


def write_wav(path, x, rate, width=2):
    """PCM WAV, `x` float (frames,) or (frames, channels) in [-1, 1]; width 1/2/3/4 bytes."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if width == 1:
        data = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        bits = 8 * width
        v = np.clip(np.round(x * 2 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        v = v.astype("<i4")
        data = v.view(np.uint8).reshape(-1, 4)[:, :width].tobytes()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with wave.open(path, "wb") as f:
        f.setnchannels(x.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)
    return path


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
