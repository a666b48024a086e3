"""Presets in keras-hub's sense: `save_to_preset` / `from_preset` round trips."""

import json

import keras
import numpy as np
import pytest

from kc2f.families.ast import AudioSpectrogramTransformer

TINY = dict(num_classes=4, sample_rate=8000, target_frames=64, num_mel_bins=32, hidden_dim=16, depth=1,
            num_heads=2, mlp_ratio=2.0)


def _logits(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x)))


def test_save_to_preset_and_from_preset_round_trip(tmp_path):
    model = AudioSpectrogramTransformer(**TINY)
    x = np.random.default_rng(0).standard_normal((2, 6400)).astype("float32")
    model.save_to_preset(tmp_path / "preset")
    assert sorted(p.name for p in (tmp_path / "preset").iterdir()) == [
        "config.json", "metadata.json", "model.weights.h5"]
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["class_name"] == "AudioSpectrogramTransformer"
    assert metadata["parameter_count"] == model.count_params()
    loaded = AudioSpectrogramTransformer.from_preset(tmp_path / "preset")
    np.testing.assert_array_equal(_logits(loaded, x), _logits(model, x))
    fresh = AudioSpectrogramTransformer.from_preset(str(tmp_path / "preset"), load_weights=False, factor=2)
    assert fresh.factor == 2 and fresh.hidden_dim == 16
    with pytest.raises(ValueError, match="exists and is not empty"):
        model.save_to_preset(tmp_path / "preset")
    assert not list(tmp_path.glob(".preset.preset-*"))


def test_a_run_directory_or_keras_file_is_a_preset(tmp_path):
    model = AudioSpectrogramTransformer(**TINY)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "model.keras")
    x = np.random.default_rng(1).standard_normal((1, 6400)).astype("float32")
    for preset in (tmp_path / "run", tmp_path / "run" / "model.keras"):
        np.testing.assert_array_equal(_logits(AudioSpectrogramTransformer.from_preset(preset), x), _logits(model, x))
    with pytest.raises(ValueError, match="is not a preset"):
        AudioSpectrogramTransformer.from_preset(tmp_path)
    with pytest.raises(ValueError, match="preset must be one of"):
        AudioSpectrogramTransformer.from_preset("huge")
