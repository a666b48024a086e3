"""The embedded default dataset: procedurally generated sound events, no download.

Eight classes of 1.28 s, 16 kHz clips. Each class is a sound *shape* in its own
frequency band; the bands are 0.8 octave wide and their centres 0.55 octave
apart (250 Hz · 2^(0.55 k) for the k-th class below), so neighbouring classes
overlap in frequency and must also be told apart by their shape in the
spectrogram, while a small AST learns the task in a few epochs (what
`kc2f demo` needs to show the method working in minutes on a CPU). Pitch,
timing, duration, level and background noise are drawn at random per clip; the
signal-to-noise ratio is 5-30 dB.

| class | band centre | what it is |
|---|---|---|
| `tone` | 250 Hz | one steady sine in the band, 0.3-1.0 s |
| `chirp_up` | 366 Hz | sine sweeping up from the band's bottom (exponential) |
| `chirp_down` | 536 Hz | the same sweeping down |
| `noise_burst` | 785 Hz | noise filling the band, 0.2-0.8 s |
| `click_train` | 1149 Hz | short tone pips at a regular 6-20 Hz rate |
| `am_tone` | 1682 Hz | sine amplitude-modulated at 4-10 Hz, depth 0.8-1 |
| `two_tone` | 2462 Hz | two successive tones (a musical interval of 4-12 semitones) |
| `harmonic` | 3604 Hz | a harmonic complex with f0 at half a frequency in the band, 1/k roll-off |

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
# Class k's band: centre LOWEST_CENTRE_HZ * 2**(BAND_STEP_OCTAVES * k), BAND_WIDTH_OCTAVES wide.
LOWEST_CENTRE_HZ = 250.0
BAND_STEP_OCTAVES = 0.55
BAND_WIDTH_OCTAVES = 0.8
SNR_DB = (5.0, 30.0)
_MARKER = "kc2f_synthetic.json"
_VERSION = 2  # bump when the generator changes, so cached copies are regenerated


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


def band(name):
    """`(low, high)` Hz of class `name`'s frequency band."""
    centre = LOWEST_CENTRE_HZ * 2 ** (BAND_STEP_OCTAVES * CLASSES.index(name))
    return centre / 2 ** (BAND_WIDTH_OCTAVES / 2), centre * 2 ** (BAND_WIDTH_OCTAVES / 2)


def _event(name, rng):
    """The foreground event of class `name`, as a full-length clip (peak ~1)."""
    if name not in CLASSES:
        raise ValueError(f"Unknown synthetic class. Received: name={name!r}")
    low, high = band(name)
    clip = np.zeros(CLIP_SAMPLES)
    phase = rng.uniform(0, 2 * np.pi)

    def in_band():
        return np.exp(rng.uniform(np.log(low), np.log(high)))

    if name == "tone":
        start, n = _event_span(rng, 0.3, 1.0)
        x = np.sin(2 * np.pi * in_band() * np.arange(n) / SAMPLE_RATE + phase)
    elif name in ("chirp_up", "chirp_down"):
        start, n = _event_span(rng, 0.3, 1.0)
        bottom, top = low * rng.uniform(0.8, 1.0), high * rng.uniform(1.0, 1.6)
        x = _sweep(bottom, top, n) if name == "chirp_up" else _sweep(top, bottom, n)
    elif name == "noise_burst":
        start, n = _event_span(rng, 0.2, 0.8)
        x = _band_noise(rng, n, low, high)
    elif name == "click_train":
        start, n = _event_span(rng, 0.5, 1.2)
        rate = rng.uniform(6, 20)
        x = np.zeros(n)
        length = int(rng.integers(16, 48))
        pip = np.hanning(length) * np.sin(2 * np.pi * in_band() * np.arange(length) / SAMPLE_RATE)
        for onset in np.arange(rng.uniform(0, 1 / rate), n / SAMPLE_RATE, 1 / rate):
            i = int(onset * SAMPLE_RATE)
            x[i:i + length] += pip[: n - i]
    elif name == "am_tone":
        start, n = _event_span(rng, 0.5, 1.2)
        t = np.arange(n) / SAMPLE_RATE
        depth = rng.uniform(0.8, 1.0)
        modulator = 1 - depth * 0.5 * (1 + np.cos(2 * np.pi * rng.uniform(4, 10) * t + phase))
        x = modulator * np.sin(2 * np.pi * in_band() * t)
    elif name == "two_tone":
        start, n = _event_span(rng, 0.4, 1.1)
        f1 = in_band()
        f2 = f1 * 2 ** (rng.choice([-1, 1]) * rng.integers(4, 13) / 12)
        split = int(n * rng.uniform(0.35, 0.65))
        t = np.arange(n) / SAMPLE_RATE
        x = np.where(np.arange(n) < split, np.sin(2 * np.pi * f1 * t), np.sin(2 * np.pi * f2 * t))
        x[:split] *= _envelope(split, rng)
        x[split:] *= _envelope(n - split, rng)
    else:  # harmonic
        start, n = _event_span(rng, 0.3, 1.0)
        f0 = in_band() / 2
        t = np.arange(n) / SAMPLE_RATE
        x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
                for k in range(1, 7) if k * f0 < 7500)
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
    snr_db = rng.uniform(*SNR_DB)
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
    test_clips_per_class = _test_count(clips_per_class, test_clips_per_class)
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


def _test_count(clips_per_class, test_clips_per_class):
    if test_clips_per_class is None:
        return max(2, clips_per_class // 4)
    if isinstance(test_clips_per_class, bool) or not isinstance(test_clips_per_class, int) \
            or test_clips_per_class < 1:
        raise ValueError("test_clips_per_class must be a positive integer. "
                         f"Received: test_clips_per_class={test_clips_per_class!r}")
    return test_clips_per_class


def _params(clips_per_class, seed, test_clips_per_class):
    return {"version": _VERSION, "clips_per_class": clips_per_class, "seed": seed,
            "test_clips_per_class": test_clips_per_class, "classes": list(CLASSES)}


def default_cache_dir():
    """`$KC2F_CACHE_DIR/synthetic`, default `~/.cache/kc2f/synthetic`."""
    return os.path.join(cache_root(), "synthetic")


def ensure_synthetic_dataset(data_dir=None, clips_per_class=DEFAULT_CLIPS_PER_CLASS, seed=0,
                             test_clips_per_class=None):
    """Returns a directory holding the synthetic dataset, generating it if needed.

    Generation goes to a temporary sibling directory renamed into place at
    the end, so an interrupted run never leaves a half-written dataset.

    Args:
        data_dir: where it lives; `None` means
            `default_cache_dir()/cpc{clips_per_class}-seed{seed}`, or
            `cpc{clips_per_class}-test{test_clips_per_class}-seed{seed}` with
            a test count other than the default.
        clips_per_class: training clips per class.
        seed: generation seed.
        test_clips_per_class: test clips per class (`None`:
            `max(2, clips_per_class // 4)`).

    Raises:
        ValueError: `data_dir` holds a synthetic dataset made with other
            parameters, or is a non-empty directory that is not one.
    """
    test_count = _test_count(clips_per_class, test_clips_per_class)
    if data_dir is None:
        test_part = "" if test_count == _test_count(clips_per_class, None) else f"-test{test_count}"
        data_dir = os.path.join(default_cache_dir(), f"cpc{clips_per_class}{test_part}-seed{seed}")
    data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
    wanted = _params(clips_per_class, seed, test_count)
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
        write_synthetic_dataset(tmp, clips_per_class, seed, test_count)
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
