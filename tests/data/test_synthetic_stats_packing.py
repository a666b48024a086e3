"""The synthetic dataset, fbank statistics and packed shards."""

import os

import numpy as np
import pytest

from kc2f.data import build_index, get_dataset_spec, synthetic
from kc2f.data.pipeline import make_dataset
from kc2f.data.stats import compute_stats

from ._fixtures import FSDD_DIR, write_wav


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return synthetic.ensure_synthetic_dataset(str(tmp_path_factory.mktemp("syn") / "d"),
                                              clips_per_class=4, seed=0)


def test_synthetic_layout_and_determinism(synth_dir, tmp_path):
    train, labels = build_index("synthetic", synth_dir, "train", clips_per_class=4)
    test, _ = build_index("synthetic", synth_dir, "test", clips_per_class=4)
    assert labels == sorted(synthetic.CLASSES) and len(labels) == get_dataset_spec("synthetic").num_classes
    assert (len(train), len(test)) == (32, 16)
    again = synthetic.write_synthetic_dataset(str(tmp_path / "again"), clips_per_class=4, seed=0)
    rel = os.path.relpath(train[5].path, synth_dir)
    assert open(train[5].path, "rb").read() == open(os.path.join(again, rel), "rb").read()
    other = synthetic.generate_clip("tone", np.random.default_rng([1, 0, 0, 0]))
    assert not np.allclose(other, synthetic.generate_clip("tone", np.random.default_rng([0, 0, 0, 0])))
    with pytest.raises(ValueError, match="made with"):
        synthetic.ensure_synthetic_dataset(synth_dir, clips_per_class=5, seed=0)


def test_test_clips_per_class_sizes_the_test_split_in_a_directory_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("KC2F_CACHE_DIR", str(tmp_path / "cache"))
    default = synthetic.ensure_synthetic_dataset(clips_per_class=4, seed=0)
    larger = synthetic.ensure_synthetic_dataset(clips_per_class=4, seed=0, test_clips_per_class=5)
    assert os.path.basename(default) == "cpc4-seed0" and os.path.basename(larger) == "cpc4-test5-seed0"
    assert synthetic.ensure_synthetic_dataset(clips_per_class=4, seed=0, test_clips_per_class=2) == default
    train, _ = build_index("synthetic", None, "train", clips_per_class=4, test_clips_per_class=5)
    test, _ = build_index("synthetic", None, "test", clips_per_class=4, test_clips_per_class=5)
    assert (len(train), len(test)) == (32, 40) and all(e.path.startswith(larger) for e in train + test)
    # The training clips are the default set's: only the test split grows.
    default_train, _ = build_index("synthetic", None, "train", clips_per_class=4)
    assert [open(a.path, "rb").read() for a in train] == [open(b.path, "rb").read() for b in default_train]
    with pytest.raises(ValueError, match="made with"):
        synthetic.ensure_synthetic_dataset(default, clips_per_class=4, seed=0, test_clips_per_class=3)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"test_clips_per_class={bad!r}"):
            synthetic.write_synthetic_dataset(str(tmp_path / "bad"), clips_per_class=4, test_clips_per_class=bad)


def test_synthetic_clips_are_distinct_and_sane():
    rng = np.random.default_rng(0)
    for name in synthetic.CLASSES:
        x = synthetic.generate_clip(name, rng)
        assert x.shape == (20480,) and x.dtype == np.float32
        assert 0.05 < np.abs(x).max() <= 0.9 + 1e-6
    # Chirps go the way they say: spectral centroid of the second half vs the first.
    def centroid(x):
        spectrum = np.abs(np.fft.rfft(x))
        return (spectrum * np.arange(len(spectrum))).sum() / spectrum.sum()

    ups = downs = 0
    for seed in range(10):
        rng = np.random.default_rng([seed, 0, 0, 0])
        event = synthetic._event("chirp_up", rng)
        nz = np.flatnonzero(event)
        half = (nz[0] + nz[-1]) // 2
        ups += centroid(event[nz[0]:half]) < centroid(event[half:nz[-1]])
        event = synthetic._event("chirp_down", np.random.default_rng([seed, 0, 0, 1]))
        nz = np.flatnonzero(event)
        half = (nz[0] + nz[-1]) // 2
        downs += centroid(event[nz[0]:half]) > centroid(event[half:nz[-1]])
    assert ups == 10 and downs == 10


def test_stats_ignore_padding_and_match_direct_fbank(tmp_path):
    from kc2f.layers.kaldi_fbank import KaldiFbank

    spec = get_dataset_spec("folder").replace(clip_seconds=1.0, target_frames=100, num_mel_bins=32)
    rng = np.random.default_rng(0)
    clips = {}
    for c in ("a", "b"):
        for i, seconds in enumerate((0.3, 0.6)):
            x = rng.standard_normal(int(16000 * seconds)) * 0.1
            clips[write_wav(str(tmp_path / c / f"{i}.wav"), x, 16000)] = x
    examples, labels = build_index("folder", str(tmp_path), "train", valid_percent=0)
    mean, std = compute_stats(examples, spec, batch_size=3)
    fbank = KaldiFbank(sample_rate=16000, num_mel_bins=32)
    frames = np.concatenate([
        np.asarray(fbank(np.round(x * 32768).clip(-32768, 32767)[None].astype("float32") / 32768.0))[0]
        for x in clips.values()
    ])
    assert mean == pytest.approx(frames.mean(), abs=1e-3)
    assert std == pytest.approx(frames.std(), abs=1e-3)


def test_synthetic_registered_stats_agree_with_a_sample(synthetic_dir):
    spec = get_dataset_spec("synthetic")
    examples, labels = build_index(spec, synthetic_dir, "train")
    mean, std = compute_stats(examples[::25], spec, label_names=labels)  # 32 clips, 4 per class
    assert mean == pytest.approx(spec.mean, abs=0.5)
    assert std == pytest.approx(spec.std, abs=0.5)


@pytest.mark.skipif(not os.path.isdir(os.path.join(FSDD_DIR, "recordings")),
                    reason=f"checks the registered fsdd mean/std against the real FSDD; needs it at "
                           f"{FSDD_DIR}/recordings")
def test_fsdd_registered_stats_agree_with_a_sample():
    spec = get_dataset_spec("fsdd")
    examples, labels = build_index(spec, FSDD_DIR, "train")
    mean, std = compute_stats(examples[::90], spec, label_names=labels)  # 30 clips
    assert mean == pytest.approx(spec.mean, abs=0.5)
    assert std == pytest.approx(spec.std, abs=0.5)


def test_packed_shards_round_trip(synth_dir, tmp_path):
    from kc2f.data import packing

    spec = get_dataset_spec("synthetic")
    examples, labels = build_index("synthetic", synth_dir, "test", clips_per_class=4)
    packed = packing.pack_dataset(examples, labels, spec, str(tmp_path / "packed"), num_shards=3,
                                  dtype="float32")
    assert packed.num_examples == 16 and len(packed.files) == 3
    reopened = packing.open_packed(str(tmp_path / "packed"))
    assert reopened == packed
    files = list(make_dataset(examples, labels, spec, batch_size=16, training=False))[0]
    shards = list(make_dataset(reopened, labels, spec, batch_size=16, training=False))[0]
    np.testing.assert_allclose(shards[0]["waveform"].numpy(), files[0]["waveform"].numpy(), atol=1e-7)
    np.testing.assert_array_equal(shards[0]["length"].numpy(), files[0]["length"].numpy())
    np.testing.assert_array_equal(shards[1].numpy(), files[1].numpy())
    one = [y.numpy() for _, y in make_dataset(reopened, labels, spec, batch_size=4, training=True, epoch=1)]
    two = [y.numpy() for _, y in make_dataset(reopened, labels, spec, batch_size=4, training=True, epoch=1)]
    assert len(one) == 4 and all(np.array_equal(a, b) for a, b in zip(one, two))
    with pytest.raises(ValueError, match="already holds packed shards"):
        packing.pack_dataset(examples, labels, spec, str(tmp_path / "packed"))
