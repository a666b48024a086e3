"""`kc2f.families.htsat.Htsat`: layout and token counts per factor, config and `.keras` round trips, arguments."""

import keras
import numpy as np
import pytest

from kc2f.families.htsat import Htsat
from kc2f.families.htsat.htsat_flops import htsat_training_flops_per_sample

TINY = dict(num_classes=5, sample_rate=8000, target_frames=128, num_mel_bins=64, embed_dim=16,
            depths=(2, 2), num_heads=(1, 2), window_size=4, drop_path_rate=0.1, freqm=8, timem=24, seed=0)


@pytest.mark.parametrize("factor,image,grids,windows", [
    (1, (256, 256), [(64, 64), (32, 32), (16, 16), (8, 8)], [(8, 8), (8, 8), (8, 8), (8, 8)]),
    (2, (128, 256), [(32, 64), (16, 32), (8, 16), (4, 8)], [(8, 8), (8, 8), (8, 8), (4, 8)]),
    (4, (64, 256), [(16, 64), (8, 32), (4, 16), (2, 8)], [(8, 8), (8, 8), (4, 8), (2, 8)]),
])
def test_base_layout_and_tokens_per_stage(factor, image, grids, windows):
    """The docstring's table: HTS-AT-Base on 10 s (1024 frames x 64 mel) at C = 1, 2, 4."""
    model = Htsat.from_preset("base", num_classes=527, factor=factor)
    assert model.image_shape == image
    assert model.stage_grids == grids
    assert model.stage_tokens == tuple(h * w for h, w in grids)
    assert model.stage_tokens[0] == 4096 // factor
    assert [blocks[0].window for blocks in model.blocks] == windows
    assert model.head.frames == 32 // factor
    assert model.mel.hop_length == 320 * factor and model.mel.target_frames == 1024 // factor


@pytest.mark.parametrize("method", ["fshift", "maxpool", "avgpool"])
def test_coarse_phases_are_cheaper_and_run(method):
    wave = np.random.default_rng(0).standard_normal((2, 10240)).astype("float32")
    flops = {}
    for factor in (1, 2, 4):
        model = Htsat(method=method, factor=factor, **TINY)
        logits, frames = model(wave), model.framewise(wave)
        assert tuple(logits.shape) == (2, 5) and tuple(frames.shape) == (2, 16 // factor, 5)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(logits),
                                   keras.ops.convert_to_numpy(frames).mean(axis=1), atol=1e-5)
        assert model.stage_tokens == (512 // factor, 128 // factor)
        flops[factor] = htsat_training_flops_per_sample(model)
    assert flops[4] < 0.3 * flops[1] and flops[2] < 0.55 * flops[1]


def test_config_round_trip_and_keras_file(tmp_path):
    model = Htsat(method="fshift", factor=2, **TINY)
    config = model.get_config()
    clone = Htsat.from_config(config)
    assert clone.get_config() == config
    wave = np.random.default_rng(1).standard_normal((2, 10240)).astype("float32")
    path = tmp_path / "htsat.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Htsat) and loaded.factor == 2
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(wave)), keras.ops.convert_to_numpy(model(wave)))


@pytest.mark.parametrize("change,name", [
    ({"factor": 3}, "factor"), ({"method": "patch-pi"}, "method"), ({"num_classes": 0}, "num_classes"),
    ({"depths": (2,)}, "depths"), ({"target_frames": 100}, "target_frames"), ({"num_chunks": 0}, "num_chunks"),
    ({"patch_size": 0}, "patch_size"),
])
def test_bad_arguments(change, name):
    with pytest.raises(ValueError, match=name):
        Htsat(**{**TINY, **change})
