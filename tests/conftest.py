"""Shared test set-up: deterministic seeds, repository paths, the float32 policy,
and generated data so that no test needs a download or `../shared`:

* `write_wav`: PCM WAV writer (8/16/24/32-bit);
* `fsdd_dir` (session): a small folder in the FSDD layout
  (`recordings/{digit}_{speaker}_{index}.wav`, 8 kHz, 16-bit) of generated
  tone/glide patterns, one pattern per digit;
* `synthetic_dir` (session): the embedded `synthetic` dataset
  (`kc2f.data.synthetic`) with its default parameters, i.e. what
  `--dataset synthetic --data-dir DIR` trains on;
* `TINY_MODEL` / `cli_sets`: the smallest model the subprocess fit tests train.

`FSDD` is the real Free Spoken Digit Dataset of the development checkout; only
tests about the real data's own properties use it (and skip without it).

Tiers (`tools/run_tests.sh`; README, "Set-up on a fresh machine"):

* default (`-m "not slow"`), under TensorFlow and JAX, on two pytest-xdist workers:
  every behaviour, at the smallest shapes that still show it. Its budget is 8 minutes
  per backend on a 2-core machine; `tools/run_tests.sh` prints the slowest 15 tests.
* slow (`-m slow`), under TensorFlow only: what repeats a default-tier check at scale
  or checks a result rather than a code path: the SIGKILL matrix over every write
  point, the demo's accuracy and saving, whole sweeps and cross-validations, several
  processes killed and resumed.

Mark a test `slow` only when it takes more than about 30 s on 2 cores *and* the code
path it exercises is also run by a default-tier test (say which one beside the
marker). Anything cheaper belongs in the default tier: share a trained run through a
module- or session-scoped fixture (see `finished` in
tests/training/test_run_directory_safety.py, `exported` in tests/test_export.py) rather
than training again, and copy it (`shutil.copytree`) before a test changes it.
Session fixtures are per xdist worker, and tests must not depend on each other's order
or share files outside their own `tmp_path`.
"""

import atexit
import os
import pathlib
import shutil
import tempfile
import wave

import numpy as np
import pytest

# The tests never read or write the user's kc2f cache (scan results, compiled programs):
# one fresh cache per test session, inherited by the CLI subprocesses.
os.environ["KC2F_CACHE_DIR"] = tempfile.mkdtemp(prefix="kc2f-test-cache-")
# Removed when this process exits (each xdist worker has its own), so that test runs leave no
# cache folders behind in the temporary directory.
atexit.register(shutil.rmtree, os.environ["KC2F_CACHE_DIR"], ignore_errors=True)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FSDD = SHARED / "data" / "fsdd" / "recordings"

# `--set` values of the smallest model the fit tests train (in a subprocess).
TINY_MODEL = ("hidden_dim=16", "depth=1", "num_heads=1", "warmup_steps=2")


def cli_sets(values):
    """`["--set", v1, "--set", v2, ...]` for `kc2f fit`."""
    return [arg for value in values for arg in ("--set", value)]


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    import keras

    keras.utils.set_random_seed(1234)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def backend():
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def write_run(path, *, config=None, history=None, summary=None, labels=None):
    """Writes the files of a kc2f run directory through `RunDirectory`; returns the path.

    Args:
        path: the run directory (created).
        config, history, summary, labels: written when given (`config.json`,
            `history.json`/`.csv`, `summary.json`, `labels.json`).
    """
    from kc2f.training.run_directory import RunDirectory

    run = RunDirectory(path).create()
    if config is not None:
        run.write_config(config)
    if history is not None:
        run.write_history(history)
    if summary is not None:
        run.write_summary(summary)
    if labels is not None:
        run.write_labels(labels)
    return run.path


def write_wav(path, x, rate, width=2):
    """PCM WAV, `x` float (frames,) or (frames, channels) in [-1, 1]; width 1/2/3/4 bytes."""
    path = str(path)
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


# ---------------------------------------------------------------------------
# A generated stand-in for FSDD: same layout, rate and sample format.

FSDD_RATE = 8000
FSDD_SPEAKERS = ("alice", "bob")
FSDD_INDICES = 8  # per (digit, speaker): 0-4 are the official test split, 5-7 train


def fsdd_clip(digit, speaker, index):
    """One generated "spoken digit" of speaker number `speaker`: float (samples,)
    at 8 kHz, 0.35-1.6 s.

    Each digit has its own pattern: two tone segments (fundamental + 2nd
    harmonic) whose pitch ladder, glide direction and segment split depend on
    the digit, so a classifier can learn the classes; the speaker shifts the
    pitch, and every clip draws its own length, timing, jitter, level and
    background noise. Some clips are longer than FSDD's 1.28 s model clip
    (cropped), most shorter (padded), with leading and trailing silence as in
    real recordings.
    """
    rng = np.random.default_rng([digit, speaker, index])
    n = int(rng.uniform(0.35, 1.6) * FSDD_RATE)
    f0 = 220.0 * 2 ** (digit / 6) * 1.12 ** speaker * rng.uniform(0.98, 1.02)
    glide = 2 ** ((0.5 if digit % 2 else -0.5) * rng.uniform(0.8, 1.2))
    lead = int(rng.uniform(0.05, 0.15) * n)
    voiced = int(rng.uniform(0.6, 0.8) * n)
    split = int(voiced * (0.3 + 0.04 * digit))
    fade = int(0.02 * FSDD_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    x = np.zeros(n)
    for start, length, f_start in ((0, split, f0), (split, voiced - split, f0 * 1.5)):
        t = np.arange(length) / FSDD_RATE
        k = np.log(glide) / t[-1]  # exponential glide from f_start to f_start * glide
        phase = 2 * np.pi * f_start * (np.exp(k * t) - 1) / k
        segment = np.sin(phase) + 0.4 * np.sin(2 * phase)
        segment[:fade] *= ramp
        segment[-fade:] *= ramp[::-1]
        x[lead + start:lead + start + length] = segment
    x += rng.standard_normal(n) * 10 ** (-rng.uniform(20, 35) / 20)
    return x * rng.uniform(0.3, 0.8) / np.abs(x).max()


def write_fsdd_folder(root, speakers=FSDD_SPEAKERS, indices=FSDD_INDICES):
    """Writes `root/recordings/{digit}_{speaker}_{index}.wav` (16-bit, 8 kHz); returns `root`."""
    root = pathlib.Path(root)
    for digit in range(10):
        for number, speaker in enumerate(speakers):
            for index in range(indices):
                write_wav(root / "recordings" / f"{digit}_{speaker}_{index}.wav",
                          fsdd_clip(digit, number, index), FSDD_RATE)
    return root


@pytest.fixture(scope="session")
def fsdd_dir(tmp_path_factory):
    """A generated FSDD-layout data_dir: 10 digits x 2 speakers x 8 clips (60 train, 100 test)."""
    return write_fsdd_folder(tmp_path_factory.mktemp("fsdd"))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """The embedded synthetic dataset with its default parameters (generated once, ~3 s):
    `kc2f fit --dataset synthetic --data-dir` uses it as it is."""
    from kc2f.data import synthetic

    return pathlib.Path(synthetic.ensure_synthetic_dataset(str(tmp_path_factory.mktemp("synthetic") / "data")))
