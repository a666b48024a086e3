"""The `unlabelled` layout (every audio file, for pretraining) and `make_dataset(start_step=...)`."""

import numpy as np
import pytest

from kc2f.data import manifest, pipeline
from kc2f.data.registry import get_dataset_spec
from tests.conftest import write_wav


def test_unlabelled_layout_lists_every_audio_file_once(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(40):
        sub = tmp_path / f"part{i % 3}" / ("deep" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"clip{i}.{'wav' if i % 4 else 'WAV'}"
        write_wav(path, 0.1 * rng.standard_normal(800), 16000)
        paths.append(str(path))
    (tmp_path / "notes.txt").write_text("not audio")
    train, labels = manifest.build_index("unlabelled", tmp_path, "train")
    test, _ = manifest.build_index("unlabelled", tmp_path, "test")
    assert labels == ["unlabelled"]
    assert sorted(e.path for e in train + test) == sorted(paths)
    assert not {e.path for e in train} & {e.path for e in test}
    assert 0 < len(test) < len(train)
    assert all(e.labels == ("unlabelled",) for e in train)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No audio files"):
        manifest.build_index("unlabelled", tmp_path / "empty", "train")


def _batches(dataset, count):
    return [np.asarray(x["waveform"]) for x, _ in dataset.take(count)]


@pytest.mark.parametrize("start_step", [0, 2, 3, 7])
def test_start_step_continues_the_uninterrupted_stream(tmp_path, start_step):
    """5 clips in batches of 2 (2 batches a pass): the stream from step k is the full stream's tail."""
    spec = get_dataset_spec("synthetic").replace(name="tiny", clip_seconds=0.05, num_classes=None)
    rng = np.random.default_rng(1)
    (tmp_path / "a").mkdir()
    for i in range(5):
        write_wav(tmp_path / "a" / f"{i}.wav", 0.1 * rng.standard_normal(1600), 16000)
    examples = [manifest.Example(str(tmp_path / "a" / f"{i}.wav"), ("a",), "test") for i in range(5)]
    kwargs = dict(batch_size=2, training=True, seed=3, repeat=True, drop_remainder=True)
    full = _batches(pipeline.make_dataset(examples, ["a"], spec, **kwargs), start_step + 3)
    resumed = _batches(pipeline.make_dataset(examples, ["a"], spec, start_step=start_step, **kwargs), 3)
    for a, b in zip(full[start_step:], resumed):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="start_step"):
        pipeline.make_dataset(examples, ["a"], spec, batch_size=2, training=True, start_step=1)
