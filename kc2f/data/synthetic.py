"""The embedded default dataset: procedurally generated sound events, no download.

Eight classes of 1.28 s, 16 kHz clips. Every clip draws its pitch, timing,
duration, level and background noise at random, so the classes overlap in
frequency, loudness and time and must be told apart by their *shape* in the
spectrogram. The signal-to-noise ratio goes down to -3 dB, so a small share
of clips is genuinely ambiguous: a tiny AST reaches well above chance
(12.5%) in a few minutes on CPU, but not 100% after one epoch.

| class | what it is |
|---|---|
| `tone` | one steady sine, 150-3000 Hz, 0.15-0.9 s |
| `chirp_up` | sine sweeping up by 1-3 octaves (exponential) |
| `chirp_down` | the same sweeping down |
| `noise_burst` | band-limited noise burst (random centre, 0.5-1.5 octave wide) |
| `click_train` | short clicks at a regular 6-30 Hz rate |
| `am_tone` | sine amplitude-modulated at 4-16 Hz, depth 0.6-1 |
| `two_tone` | two successive tones (a musical interval of 3-12 semitones) |
| `harmonic` | a harmonic complex, f0 100-400 Hz, 4-10 partials with 1/k roll-off |

Every clip also carries background noise (white or pink), a random gain and
short fades, so there are no clicks at event edges that would give classes
away. Generation is deterministic: clip `i` of class `c` in split `s` uses
`numpy.random.default_rng([seed, s, c, i])`, independent of the other clips.

On disk the dataset is in the `folder` layout with split folders:
`{out_dir}/{train,test}/{class}/{class}_{i:04d}.wav` (16-bit PCM).
"""

import json
import os
import shutil
import tempfile
import wave

import numpy as np

from kc2f.data.cache_dir import cache_root

SAMPLE_RATE = 16000
CLIP_SECONDS = 1.28
CLIP_SAMPLES = int(round(SAMPLE_RATE * CLIP_SECONDS))
CLASSES = (
    "tone",
    "chirp_up",
    "chirp_down",
    "noise_burst",
    "click_train",
    "am_tone",
    "two_tone",
    "harmonic",
)
DEFAULT_CLIPS_PER_CLASS = 100
_MARKER = "kc2f_synthetic.json"
_VERSION = 1  # bump when the generator changes, so cached copies are regenerated


def _envelope(n, rng):
    """Raised-cosine fades of 5-20 ms at both ends."""
    fade = min(int(rng.uniform(0.005, 0.02) * SAMPLE_RATE), n // 2)
    env = np.ones(n)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        env[:fade] = ramp
        env[n - fade:] = ramp[::-1]
    return env


def _event_span(rng, min_s, max_s):
    duration = int(rng.uniform(min_s, max_s) * SAMPLE_RATE)
    start = int(rng.integers(0, CLIP_SAMPLES - duration + 1))
    return start, duration


def _sweep(f0, f1, n):
    """Exponential sweep from f0 to f1 Hz over n samples (phase-continuous)."""
    t = np.arange(n) / SAMPLE_RATE
    T = n / SAMPLE_RATE
    k = np.log(f1 / f0) / T
    return np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)


def _band_noise(rng, n, low, high):
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    x = np.fft.irfft(spectrum, n)
    return x / (np.abs(x).max() + 1e-9)


def _event(name, rng):
    """The foreground event of class `name`, as a full-length clip (peak ~1)."""
    clip = np.zeros(CLIP_SAMPLES)
    phase = rng.uniform(0, 2 * np.pi)
    if name == "tone":
        start, n = _event_span(rng, 0.15, 0.9)
        f = np.exp(rng.uniform(np.log(150), np.log(3000)))
        x = np.sin(2 * np.pi * f * np.arange(n) / SAMPLE_RATE + phase)
    elif name in ("chirp_up", "chirp_down"):
        start, n = _event_span(rng, 0.2, 0.9)
        octaves = rng.uniform(1.0, 3.0)
        low = np.exp(rng.uniform(np.log(150), np.log(4000 / 2**octaves)))
        high = low * 2**octaves
        x = _sweep(low, high, n) if name == "chirp_up" else _sweep(high, low, n)
    elif name == "noise_burst":
        start, n = _event_span(rng, 0.1, 0.7)
        centre = np.exp(rng.uniform(np.log(300), np.log(5000)))
        width = rng.uniform(0.5, 1.5)
        x = _band_noise(rng, n, centre / 2 ** (width / 2), centre * 2 ** (width / 2))
    elif name == "click_train":
        start, n = _event_span(rng, 0.4, 1.1)
        rate = rng.uniform(6, 30)
        x = np.zeros(n)
        click = np.hanning(int(rng.integers(8, 40))) * rng.choice([-1, 1])
        for onset in np.arange(rng.uniform(0, 1 / rate), n / SAMPLE_RATE, 1 / rate):
            i = int(onset * SAMPLE_RATE)
            x[i:i + len(click)] += click[: n - i]
    elif name == "am_tone":
        start, n = _event_span(rng, 0.4, 1.1)
        f = np.exp(rng.uniform(np.log(150), np.log(3000)))
        t = np.arange(n) / SAMPLE_RATE
        depth = rng.uniform(0.6, 1.0)
        modulator = 1 - depth * 0.5 * (1 + np.cos(2 * np.pi * rng.uniform(4, 16) * t + phase))
        x = modulator * np.sin(2 * np.pi * f * t)
    elif name == "two_tone":
        start, n = _event_span(rng, 0.3, 1.0)
        f1 = np.exp(rng.uniform(np.log(150), np.log(2000)))
        f2 = f1 * 2 ** (rng.choice([-1, 1]) * rng.integers(3, 13) / 12)
        split = int(n * rng.uniform(0.35, 0.65))
        t = np.arange(n) / SAMPLE_RATE
        x = np.where(np.arange(n) < split, np.sin(2 * np.pi * f1 * t), np.sin(2 * np.pi * f2 * t))
        x[:split] *= _envelope(split, rng)
        x[split:] *= _envelope(n - split, rng)
    elif name == "harmonic":
        start, n = _event_span(rng, 0.2, 0.9)
        f0 = rng.uniform(100, 400)
        t = np.arange(n) / SAMPLE_RATE
        partials = [k for k in range(1, int(rng.integers(4, 11)) + 1) if k * f0 < 7000]
        x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in partials)
    else:
        raise ValueError(f"Unknown synthetic class. Received: name={name!r}")
    x = x / (np.abs(x).max() + 1e-9) * _envelope(n, rng)
    clip[start:start + n] = x
    return clip


def generate_clip(class_name, rng):
    """One clip of `class_name`: event + background noise, float32 `(20480,)` in [-1, 1].

    Args:
        class_name: one of `CLASSES`.
        rng: `numpy.random.Generator` (all randomness of the clip comes from it).
    """
    event = _event(class_name, rng)
    if rng.random() < 0.5:
        noise = rng.standard_normal(CLIP_SAMPLES)
    else:  # pink: 1/sqrt(f) amplitude
        spectrum = np.fft.rfft(rng.standard_normal(CLIP_SAMPLES))
        spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(CLIP_SAMPLES, 1 / SAMPLE_RATE), 20.0))
        noise = np.fft.irfft(spectrum, CLIP_SAMPLES)
    snr_db = rng.uniform(-3.0, 25.0)
    event_power = np.mean(event[event != 0] ** 2) if np.any(event) else 1.0
    noise *= np.sqrt(event_power / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    x = event + noise
    x *= rng.uniform(0.1, 0.9) / (np.abs(x).max() + 1e-9)
    return x.astype(np.float32)


def _write_wav16(path, x):
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes())


def write_synthetic_dataset(out_dir, clips_per_class=DEFAULT_CLIPS_PER_CLASS, seed=0,
                            test_clips_per_class=None):
    """Writes the synthetic dataset as 16-bit WAVs in the `folder` layout.

    Args:
        out_dir: target directory (created; existing class folders are
            overwritten).
        clips_per_class: training clips per class.
        seed: generation seed; the same seed gives byte-identical files.
        test_clips_per_class: test clips per class, default
            `max(2, clips_per_class // 4)`.

    Returns:
        `out_dir`.
    """
    if not isinstance(clips_per_class, int) or clips_per_class < 1:
        raise ValueError(
            f"clips_per_class must be a positive integer. Received: clips_per_class={clips_per_class!r}"
        )
    if test_clips_per_class is None:
        test_clips_per_class = max(2, clips_per_class // 4)
    for split_id, (split, count) in enumerate((("train", clips_per_class),
                                               ("test", test_clips_per_class))):
        for class_id, name in enumerate(CLASSES):
            class_dir = os.path.join(out_dir, split, name)
            os.makedirs(class_dir, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng([seed, split_id, class_id, i])
                _write_wav16(os.path.join(class_dir, f"{name}_{i:04d}.wav"), generate_clip(name, rng))
    with open(os.path.join(out_dir, _MARKER), "w") as f:
        json.dump(_params(clips_per_class, seed, test_clips_per_class), f)
    return out_dir


def _params(clips_per_class, seed, test_clips_per_class):
    return {"version": _VERSION, "clips_per_class": clips_per_class, "seed": seed,
            "test_clips_per_class": test_clips_per_class, "classes": list(CLASSES)}


def default_cache_dir():
    """`$KC2F_CACHE_DIR/synthetic`, default `~/.cache/kc2f/synthetic`."""
    return os.path.join(cache_root(), "synthetic")


def ensure_synthetic_dataset(data_dir=None, clips_per_class=DEFAULT_CLIPS_PER_CLASS, seed=0):
    """Returns a directory holding the synthetic dataset, generating it if needed.

    Generation goes to a temporary sibling directory renamed into place at
    the end, so an interrupted run never leaves a half-written dataset.

    Args:
        data_dir: where it lives; `None` means
            `default_cache_dir()/cpc{clips_per_class}-seed{seed}`.
        clips_per_class: training clips per class.
        seed: generation seed.

    Raises:
        ValueError: `data_dir` holds a synthetic dataset made with other
            parameters, or is a non-empty directory that is not one.
    """
    if data_dir is None:
        data_dir = os.path.join(default_cache_dir(), f"cpc{clips_per_class}-seed{seed}")
    data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
    wanted = _params(clips_per_class, seed, max(2, clips_per_class // 4))
    marker = os.path.join(data_dir, _MARKER)
    if os.path.isfile(marker):
        with open(marker) as f:
            found = json.load(f)
        if found != wanted:
            raise ValueError(
                f"{data_dir} holds a synthetic dataset made with {found}, not {wanted}. Use "
                "another data_dir or delete it."
            )
        return data_dir
    if os.path.isdir(data_dir) and os.listdir(data_dir):
        raise ValueError(
            f"{data_dir} is not empty and is not a kc2f synthetic dataset (no {_MARKER}). "
            f"Received: data_dir={data_dir!r}"
        )
    parent = os.path.dirname(data_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".synthetic-", dir=parent)
    try:
        write_synthetic_dataset(tmp, clips_per_class, seed)
        if os.path.isdir(data_dir):
            os.rmdir(data_dir)  # empty, checked above
        try:
            os.rename(tmp, data_dir)
        except OSError:
            # Another process finished the same dataset first: use theirs.
            if not os.path.isfile(marker):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return data_dir
