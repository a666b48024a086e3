"""The AST model: token grids per method, config round-trips, saving, bad arguments."""

import keras
import numpy as np
import pytest

from kc2f.layers import KaldiFbank, PatchEmbedding, PositionEmbedding, SpecAugment, TimePooling, TransformerBlock
from kc2f.families.ast import AST_METHODS, AST_PRESETS, AudioSpectrogramTransformer

SMALL = dict(num_classes=3, hidden_dim=16, depth=2, num_heads=2, target_frames=64,
             num_mel_bins=32, sample_rate=8000)


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("method", AST_METHODS)
def test_ten_second_clip_token_counts(method):
    waveform = np.random.default_rng(0).standard_normal((1, 160000)).astype("float32") * 0.1
    for factor, expected in ((1, 512), (2, 256), (4, 128)):
        model = AudioSpectrogramTransformer(
            num_classes=2, method=method, factor=factor, hidden_dim=8, depth=1, num_heads=1
        )
        tokens = model.patch_embedding(model.spectrogram(waveform))
        assert tokens.shape == (1, expected, 8), (method, factor)
        assert model.token_grid == (8, 64 // factor)


def test_front_ends_compute_what_the_paper_says():
    waveform = np.random.default_rng(1).standard_normal((2, 16000)).astype("float32") * 0.1
    base = dict(num_classes=2, hidden_dim=8, depth=1, num_heads=1, target_frames=128)
    full = _np(AudioSpectrogramTransformer(method="maxpool", factor=1, **base).spectrogram(waveform))
    pooled = _np(AudioSpectrogramTransformer(method="maxpool", factor=2, **base).spectrogram(waveform))
    np.testing.assert_allclose(pooled, full.reshape(2, 64, 2, 128).max(axis=2), atol=1e-6)
    averaged = _np(AudioSpectrogramTransformer(method="avgpool", factor=4, **base).spectrogram(waveform))
    np.testing.assert_allclose(averaged, full.reshape(2, 32, 4, 128).mean(axis=2), atol=1e-5)
    shifted = AudioSpectrogramTransformer(method="fshift", factor=2, **base)
    reference = KaldiFbank(frame_shift_ms=20.0, target_frames=64)(waveform)
    np.testing.assert_allclose(_np(shifted.spectrogram(waveform)), _np(reference), atol=1e-6)
    wide = AudioSpectrogramTransformer(method="patch-pi", factor=4, **base)
    assert wide.patch_embedding.patch_size == (16, 64)
    np.testing.assert_allclose(_np(wide.spectrogram(waveform)), full, atol=1e-6)


def test_presets_and_forward_shape():
    model = AudioSpectrogramTransformer.from_preset("tiny", num_classes=5, depth=1, target_frames=64)
    assert model.hidden_dim == AST_PRESETS["tiny"]["hidden_dim"] == 192
    assert model.num_heads == 3
    out = model(np.zeros((3, 8000), "float32"))
    assert out.shape == (3, 5)
    with pytest.raises(ValueError, match="preset=.huge."):
        AudioSpectrogramTransformer.from_preset("huge", num_classes=2)


def test_length_input_ignores_padding():
    model = AudioSpectrogramTransformer(method="maxpool", factor=2, **SMALL)
    clip = np.random.default_rng(2).standard_normal((1, 4000)).astype("float32") * 0.1
    padded = np.concatenate([clip, np.random.default_rng(3).standard_normal((1, 2000)).astype("float32")], 1)
    alone = _np(model(clip))
    masked = _np(model({"waveform": padded, "length": np.array([4000], "int32")}))
    np.testing.assert_allclose(masked, alone, atol=1e-5)


def test_spec_augment_only_in_training():
    model = AudioSpectrogramTransformer(method="maxpool", factor=1, freqm=8, timem=16, **SMALL)
    x = np.random.default_rng(4).standard_normal((4, 8000)).astype("float32")
    np.testing.assert_array_equal(_np(model.spectrogram(x)), _np(model.spectrogram(x)))
    masked = _np(model.spectrogram(x, training=True))
    clean = _np(model.spectrogram(x))
    assert np.mean(masked == 0.0) > np.mean(clean == 0.0)
    # The time mask keeps its width in seconds: 16 frames at C=1 become 4 at C=4.
    assert AudioSpectrogramTransformer(method="avgpool", factor=4, timem=16, **SMALL).spec_augment.time_mask == 4
    assert AudioSpectrogramTransformer(method="patch-bl", factor=4, timem=16, **SMALL).spec_augment.time_mask == 16


def test_mixed_precision_keeps_fbank_and_logits_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = AudioSpectrogramTransformer(method="fshift", factor=2, **SMALL)
    x = np.random.default_rng(5).standard_normal((2, 8000)).astype("float32")
    assert model.fbank.compute_dtype == "float32"
    assert model.spectrogram(x).dtype == "float32"
    assert model.blocks[0].compute_dtype == "bfloat16"
    assert model(x).dtype == "float32"


@pytest.mark.parametrize("method", AST_METHODS)
def test_model_config_round_trip_and_keras_file(method, tmp_path):
    model = AudioSpectrogramTransformer(method=method, factor=2, freqm=4, timem=8, fbank_mean=-4.0,
                                        fbank_std=4.5, seed=3, **SMALL)
    config = model.get_config()
    clone = AudioSpectrogramTransformer.from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(6).standard_normal((2, 6000)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, AudioSpectrogramTransformer)
    assert loaded.get_config() == config
    np.testing.assert_array_equal(_np(loaded(x)), _np(model(x)))


LAYERS = [
    KaldiFbank(sample_rate=8000, num_mel_bins=32, target_frames=40, mean=-5.0, std=4.0),
    TimePooling(factor=4, mode="avg"),
    PatchEmbedding(16, patch_size=(8, 16), patch_stride=(8, 8)),
    PositionEmbedding((4, 5), num_prefix_tokens=1),
    TransformerBlock(16, 4, 32, dropout_rate=0.1),
    SpecAugment(freq_mask=4, time_mask=6, seed=2),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def test_patch_embedding_matmul_and_conv_paths_agree():
    spectrogram = np.random.default_rng(7).standard_normal((2, 48, 32)).astype("float32")
    fast = PatchEmbedding(8, patch_size=(16, 16))
    slow = PatchEmbedding(8, patch_size=(16, 16), patch_stride=(16, 16))
    fast.build(spectrogram.shape)
    slow.build(spectrogram.shape)
    slow.kernel.assign(fast.kernel.numpy())
    conv = keras.ops.conv(np.transpose(spectrogram, (0, 2, 1))[..., None], fast.kernel, strides=(16, 16))
    np.testing.assert_allclose(_np(fast(spectrogram)), _np(conv).reshape(2, -1, 8), atol=1e-5)
    overlap = PatchEmbedding(8, patch_size=(16, 16), patch_stride=(16, 8))
    assert overlap.compute_output_shape((2, 48, 32)) == (2, 2 * 5, 8)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(factor=0), "factor=0"),
        (dict(factor=3), "factor=3"),
        (dict(method="bogus"), "method='bogus'"),
        (dict(patch_size=(16, 128)), "patch_size=\\(16, 128\\)"),
        (dict(method="patch-pi", factor=8, target_frames=64), "patch_size=\\(16, 128\\)"),
        (dict(num_classes=0), "num_classes=0"),
        (dict(num_heads=3), "num_heads=3"),
        (dict(num_prefix_tokens=5), "num_prefix_tokens=5"),
    ],
)
def test_bad_arguments_name_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AudioSpectrogramTransformer(**{**SMALL, **kwargs})


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: TimePooling(factor=0), "factor=0"),
        (lambda: TimePooling(mode="median"), "mode='median'"),
        (lambda: PatchEmbedding(0), "hidden_dim=0"),
        (lambda: PatchEmbedding(8, patch_size=(16, 0)), "patch_size"),
        (lambda: PositionEmbedding((0, 4)), "grid_shape"),
        (lambda: TransformerBlock(10, 3, 20), "num_heads=3"),
        (lambda: SpecAugment(freq_mask=-1), "freq_mask=-1"),
    ],
)
def test_bad_layer_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_weights_are_initialised_independently():
    # A shared unseeded initializer would give fc1/fc2 (and qkv/proj) the same draws.
    model = AudioSpectrogramTransformer(method="maxpool", factor=1, **SMALL)
    block = model.blocks[0]
    fc1, fc2 = block.fc1.kernel.numpy().ravel(), block.fc2.kernel.numpy().ravel()
    assert not np.allclose(fc1[:64], fc2[:64])
    qkv, proj = block.qkv.kernel.numpy().ravel(), block.proj.kernel.numpy().ravel()
    assert not np.allclose(qkv[: proj.size], proj)
    prefix = model.position_embedding.prefix_tokens.numpy().ravel()
    position = model.position_embedding.position_embedding.numpy().ravel()
    assert not np.allclose(prefix, position[: prefix.size])
