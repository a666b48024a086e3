"""make_dataset and validate_audio on tiny fixtures (and a few clips in the FSDD layout)."""

import os
import struct
import subprocess
import sys
import wave

import numpy as np
import pytest
import scipy.io.wavfile

from kc2f.data import Example, build_index, get_dataset_spec
from kc2f.data.pipeline import BadAudioError, make_dataset, steps_per_epoch, validate_audio

from ._fixtures import REPO_ROOT, band_limited_signal, write_float_wav, write_wav

SPEC = get_dataset_spec("folder").replace(clip_seconds=0.5, target_frames=48, mixup=0.0)
CLIP = 8000


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x 4 clips, mixed rates/lengths/formats, in the folder layout."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for c, name in enumerate(("a", "b", "c")):
        for i in range(4):
            rate = (16000, 8000, 44100)[(c + i) % 3]
            seconds = (0.3, 0.5, 0.9, 1.2)[i]
            x = band_limited_signal(rate, seconds, seed=10 * c + i) * rng.uniform(0.2, 0.9)
            write_wav(str(root / "train" / name / f"{i}.wav"), x, rate, 2 if i % 2 else 3)
        write_wav(str(root / "test" / name / "0.wav"), band_limited_signal(16000, 0.7, seed=c), 16000)
    return str(root)


def collect(ds):
    return [(f["waveform"].numpy(), f["length"].numpy(), y.numpy()) for f, y in ds]


def test_shapes_padding_and_labels(folder):
    examples, labels = build_index("folder", folder, "train")
    batches = collect(make_dataset(examples, labels, SPEC, batch_size=5, training=False))
    assert [b[0].shape for b in batches] == [(5, CLIP), (5, CLIP), (2, CLIP)]  # remainder kept
    waves = np.concatenate([b[0] for b in batches])
    lengths = np.concatenate([b[1] for b in batches])
    onehot = np.concatenate([b[2] for b in batches])
    assert waves.dtype == np.float32 and lengths.dtype == np.int32
    # Evaluation: file order, one-hot labels, zeros after `length`, start crop.
    np.testing.assert_array_equal(onehot.argmax(1), [labels.index(e.labels[0]) for e in examples])
    np.testing.assert_array_equal(onehot.sum(1), 1.0)
    assert lengths[0] == int(0.3 * 16000) and lengths[2] == CLIP
    for w, n in zip(waves, lengths):
        assert not np.any(w[n:]) and np.any(w[:n])
    from kc2f.data.audio import load_audio

    np.testing.assert_allclose(waves[2], load_audio(examples[2].path, 16000)[:CLIP], atol=1e-6)
    # Training: drop_remainder by default, so every batch has the same shape.
    train = collect(make_dataset(examples, labels, SPEC, batch_size=5, training=True))
    assert len(train) == 2 == steps_per_epoch(12, 5, True)


def test_epoch_reproducible_from_seed_and_epoch(folder):
    examples, labels = build_index("folder", folder, "train")

    def run(epoch, seed=0, **kw):
        return collect(make_dataset(examples, labels, SPEC, batch_size=4, training=True,
                                    seed=seed, epoch=epoch, **kw))

    e3 = run(3)
    for a, b in zip(e3, run(3)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[2], b[2])
    order = lambda batches: np.concatenate([b[2].argmax(1) * 100 + b[1] for b in batches])
    assert not np.array_equal(order(e3), order(run(4)))
    assert not np.array_equal(order(e3), order(run(3, seed=1)))
    # repeat=True yields epochs 3, 4, ... with exactly those orders (exact resume).
    ds = make_dataset(examples, labels, SPEC, batch_size=4, training=True, epoch=3, repeat=True)
    it = iter(ds)
    streamed = [next(it) for _ in range(6)]
    np.testing.assert_array_equal(streamed[3][0]["waveform"].numpy(), run(4)[0][0])


def test_mixup_labels_sum_to_one(folder):
    examples, labels = build_index("folder", folder, "train")
    ds = make_dataset(examples, labels, SPEC, batch_size=6, training=True, mixup=1.0)
    waves, lengths, y = collect(ds)[0]
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)
    mixed = (y > 0).sum(1) >= 1
    assert mixed.all()
    lam = y.max(1)
    assert np.all((lam > 0.2) & (lam <= 1.0))  # Beta(10, 10) concentrates around 0.5
    assert np.mean(lam < 0.999) > 0.5  # most examples got mixed (partners of another class)
    plain = collect(make_dataset(examples, labels, SPEC, batch_size=6, training=True, mixup=0.0))[0]
    assert not np.allclose(plain[0], waves)


@pytest.mark.parametrize("fill_batch", [3, 256])
def test_cache_gives_identical_batches(folder, monkeypatch, fill_batch):
    # The cache is filled in ragged batches of clips of different lengths, one or several.
    from kc2f.data import pipeline

    monkeypatch.setattr(pipeline, "_CACHE_FILL_BATCH", fill_batch)
    examples, labels = build_index("folder", folder, "train")
    for training in (False, True):
        a = collect(make_dataset(examples, labels, SPEC, batch_size=4, training=training, epoch=2))
        b = collect(make_dataset(examples, labels, SPEC, batch_size=4, training=training, epoch=2,
                                 cache=True))
        for x, z in zip(a, b):
            np.testing.assert_allclose(x[0], z[0], atol=1e-6)
            np.testing.assert_array_equal(x[1], z[1])


def test_a_cache_store_decodes_the_clips_once_for_every_phase(folder, monkeypatch):
    # The trainer builds each phase's training pipeline anew; with a store the files are decoded once.
    from kc2f.data import pipeline

    examples, labels = build_index("folder", folder, "train")
    calls = []
    real = pipeline.decode_resample_fn
    monkeypatch.setattr(pipeline, "decode_resample_fn", lambda *a, **k: calls.append(k) or real(*a, **k))
    store = {}
    first = collect(make_dataset(examples, labels, SPEC, batch_size=4, training=True, epoch=1, cache=True,
                                 cache_store=store))
    again = collect(make_dataset(examples, labels, SPEC, batch_size=4, training=True, epoch=1, cache=True,
                                 cache_store=store))
    assert len(calls) == 1 and store["lengths"].size == len(examples)
    for x, z in zip(first, again):
        np.testing.assert_array_equal(x[0], z[0])
        np.testing.assert_array_equal(x[1], z[1])
    # Other clips are decoded anew, not read from the store.
    collect(make_dataset(examples[:-1], labels, SPEC, batch_size=4, training=True, cache=True, cache_store=store))
    assert len(calls) == 2 and store["lengths"].size == len(examples) - 1


def test_cache_fill_reads_plain_wavs_with_numpy_as_the_graph_decoder_does(folder, monkeypatch):
    # Mono WAVs at the pipeline's rate are read by NumPy, the rest (8 and 44.1 kHz here) by the
    # graph decoder and resampler; forcing every clip through the graph gives the same cache.
    from kc2f.data import pipeline

    examples, labels = build_index("folder", folder, "train")
    real, read = pipeline.read_mono_wav, []
    monkeypatch.setattr(pipeline, "read_mono_wav", lambda path: read.append(real(path)) or read[-1])
    mixed = {}
    make_dataset(examples, labels, SPEC, batch_size=4, training=True, cache=True, cache_store=mixed)
    assert sum(r is not None for r in read) == 4  # the 16 kHz files (2- and 3-byte PCM)
    monkeypatch.setattr(pipeline, "read_mono_wav", lambda path: None)
    graph = {}
    make_dataset(examples, labels, SPEC, batch_size=4, training=True, cache=True, cache_store=graph)
    np.testing.assert_array_equal(mixed["lengths"], graph["lengths"])
    np.testing.assert_array_equal(mixed["flat"], graph["flat"])


def write_bad_files(root):
    """One file per kind of problem, plus two good ones; returns examples and expected reasons."""
    os.makedirs(root, exist_ok=True)
    p = lambda name: os.path.join(root, name)
    good = band_limited_signal(16000, 0.3)
    write_wav(p("good1.wav"), good, 16000)
    write_wav(p("good2.wav"), good[::-1], 16000)
    open(p("empty.wav"), "wb").close()
    with open(p("text.wav"), "wb") as f:
        f.write(b"this is a text file, not audio\n" * 4)
    with open(p("header.wav"), "wb") as f:
        f.write(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage")
    data = open(p("good1.wav"), "rb").read()
    with open(p("truncated.wav"), "wb") as f:
        f.write(data[: len(data) // 2])
    write_float_wav(p("nan.wav"), np.where(np.arange(4000) == 100, np.nan, 0.1), 16000)
    write_wav(p("silent.wav"), np.zeros(4000), 16000)
    write_wav(p("nosamples.wav"), np.zeros(0), 16000)
    # 11 minutes claimed by a streaming-style header (data size 0xFFFFFFFF = "to end of file").
    long = np.zeros((11 * 60 * 100,), "<i2")  # 11 min at 100 Hz: tiny file, absurd duration
    long[::7] = 1000
    fmt = struct.pack("<HHIIHH", 1, 1, 100, 200, 2, 16)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF) + long.tobytes()
    with open(p("long.wav"), "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    expected = {
        "missing.wav": "missing", "empty.wav": "empty", "text.wav": "not_audio",
        "header.wav": "corrupt", "truncated.wav": "truncated", "nan.wav": "nan_inf",
        "silent.wav": "silent", "nosamples.wav": "no_samples", "long.wav": "too_long",
    }
    names = ["good1.wav"] + sorted(expected) + ["good2.wav"]
    examples = [Example(p(n), ("x" if n.startswith("good") else "y",), f"list.csv:{i + 2}")
                for i, n in enumerate(names)]
    return examples, expected


def test_bad_audio_error_lists_every_file(tmp_path):
    examples, expected = write_bad_files(str(tmp_path))
    report = validate_audio(examples, SPEC)
    found = {os.path.basename(b.path): b.reason for b in report.bad}
    assert found == expected
    assert report.counts == {r: 1 for r in expected.values()}
    assert report.num_good == 2
    with pytest.raises(BadAudioError) as info:
        make_dataset(examples, ["x", "y"], SPEC, batch_size=2, training=False, audio_report=report)
    message = str(info.value)
    assert "9 of 11 audio files cannot be used" in message
    for name in expected:
        assert name in message
    assert "list.csv:" in message and "on_bad_audio='skip'" in message


def test_bad_audio_skip_counts(tmp_path):
    examples, expected = write_bad_files(str(tmp_path))
    ds = make_dataset(examples, ["x", "y"], SPEC, batch_size=4, training=False, on_bad_audio="skip")
    batches = collect(ds)
    assert sum(len(b[0]) for b in batches) == 2
    assert ds.kc2f_audio_report.counts == {r: 1 for r in expected.values()}
    assert "2 ok, 9 bad" in ds.kc2f_audio_report.summary()


def test_argument_validation(folder):
    examples, labels = build_index("folder", folder, "train")
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        make_dataset(examples, labels, SPEC, batch_size=0, training=True)
    with pytest.raises(ValueError, match="Received: on_bad_audio='ignore'"):
        make_dataset(examples, labels, SPEC, batch_size=2, training=True, on_bad_audio="ignore")
    with pytest.raises(ValueError, match="Received: examples=\\[\\]"):
        make_dataset([], labels, SPEC, batch_size=2, training=True)


def test_fsdd_batch(fsdd_dir):
    examples, labels = build_index("fsdd", fsdd_dir, "test")
    examples = examples[::20]  # 5 clips, digits 0, 2, 4, 6, 8; 8 kHz, 0.35-1.6 s
    spec = get_dataset_spec("fsdd")
    (features, y), = list(make_dataset(examples, labels, spec, batch_size=8, training=False))
    assert features["waveform"].shape == (5, 10240) and y.shape == (5, 10)
    np.testing.assert_array_equal(np.argmax(y.numpy(), axis=1), [int(e.labels[0]) for e in examples])
    # Evaluation crops at the start: the length is the file's, capped at the 1.28 s clip.
    frames = []
    for example in examples:
        with wave.open(example.path) as f:
            frames.append(f.getnframes())
    assert max(frames) > 10240 > min(frames) > 2000  # one clip cropped, others padded
    np.testing.assert_array_equal(features["length"].numpy(), np.minimum(frames, 10240))
    for row, (example, n) in enumerate(zip(examples, frames)):
        n = min(n, 10240)
        _, data = scipy.io.wavfile.read(example.path)
        np.testing.assert_allclose(features["waveform"].numpy()[row, :n], data[:n] / 32768.0, atol=1e-6)
        assert not np.any(features["waveform"].numpy()[row, n:])


def test_imports_under_jax_backend():
    code = ("import kc2f.data, kc2f.data.pipeline, kc2f.data.stats, kc2f.data.packing, "
            "kc2f.data.synthetic; import keras; assert keras.backend.backend() == 'jax'")
    env = dict(os.environ, KERAS_BACKEND="jax")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
