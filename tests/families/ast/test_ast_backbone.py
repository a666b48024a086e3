"""`AstBackbone`: the encoder the AST classifier and the SSAST pretrainer share, and the hand-off
from a pretrained SSAST encoder to an AST classifier by the backbone's weight names."""

import inspect

import keras
import numpy as np
import pytest

from kc2f.families.ast import AstBackbone, AudioSpectrogramTransformer, initialize_from
from kc2f.families.htsat import Htsat
from kc2f.families.ssast import SsastPretrainer

SIZE = dict(sample_rate=8000, target_frames=128, num_mel_bins=32, hidden_dim=32, depth=2, num_heads=2,
            fbank_mean=-4.0, fbank_std=4.0)


def _waves(batch=2, seconds=1.28, rate=8000):
    return np.random.default_rng(0).standard_normal((batch, int(seconds * rate))).astype("float32")


def _backbone_paths(model):
    return {w.path.split("/", 1)[1] for w in model.weights}


def test_backbone_encodes_tokens_and_round_trips():
    backbone = AstBackbone(method="maxpool", factor=2, **SIZE)
    tokens = keras.ops.convert_to_numpy(backbone(_waves()))
    # 32 mel / 16 = 2 freq patches; 128 frames / C=2 / 16 = 4 time patches; + 2 prefix tokens.
    assert tokens.shape == (2, 2 * 4 + 2, 32)
    assert backbone.compute_output_shape((2, 10240)) == (None, 10, 32)
    again = AstBackbone.from_config(backbone.get_config())
    assert again.get_config() == backbone.get_config()


@pytest.mark.parametrize("cls, kwargs", [
    (AstBackbone, {}),
    (AudioSpectrogramTransformer, {"num_classes": 3}),
    (SsastPretrainer, {"method": "fshift"}),
])
def test_both_tasks_are_the_backbone_plus_their_own_weights(cls, kwargs):
    model = cls(**{**SIZE, **kwargs})
    encoder = _backbone_paths(AstBackbone(**SIZE))
    own = _backbone_paths(model) - encoder
    assert encoder <= _backbone_paths(model)
    assert len(encoder) == 4 + 12 * 2 + 2  # patch embedding and positions, 2 blocks, final norm
    if cls is AudioSpectrogramTransformer:
        assert own == {"head_norm/gamma", "head_norm/beta", "head/kernel", "head/bias"}
    elif cls is SsastPretrainer:
        assert "mask_embedding" in own
        assert all(path.startswith(("mask_embedding", "discriminative_head", "generative_head")) for path in own)
        assert not hasattr(model, "spec_augment")  # SSAST pretrains without SpecAugment
    else:
        assert own == set()


def test_classifier_reads_the_backbone_output():
    model = AudioSpectrogramTransformer(num_classes=3, pooling="patch", **SIZE)
    x = _waves()
    tokens = AstBackbone.call(model, x)
    features = keras.ops.mean(tokens[:, model.num_prefix_tokens:], axis=1)
    expected = model.head(model.head_norm(features))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(expected),
                               rtol=1e-5, atol=1e-6)


def test_pretrained_ssast_encoder_hands_over_to_the_classifier(tmp_path):
    """After `initialize_from`, the classifier's backbone computes what the SSAST encoder computes."""
    keras.utils.set_random_seed(0)
    ssast = SsastPretrainer(method="fshift", factor=1, **SIZE)
    path = tmp_path / "ssast.keras"
    ssast.save(path)
    keras.utils.set_random_seed(1)
    ast = AudioSpectrogramTransformer(num_classes=4, method="fshift", factor=1, **SIZE)
    report = initialize_from(ast, path)
    encoder = _backbone_paths(AstBackbone(**SIZE))
    assert encoder <= {path for path in report.paths("copied")}
    x = _waves()
    pretrained = ssast.encode(ssast.patch_tokens(ssast.spectrogram(x)))
    handed = AstBackbone.call(ast, x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(handed), keras.ops.convert_to_numpy(pretrained),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", [
    lambda: AstBackbone(**SIZE),
    lambda: AudioSpectrogramTransformer(num_classes=3, pooling="patch", **SIZE),
    lambda: SsastPretrainer(method="maxpool", cluster=2, **SIZE),
    lambda: Htsat.from_preset("tiny", num_classes=4),
])
def test_get_config_is_exactly_the_constructor_arguments(model):
    model = model()
    config = model.get_config()
    arguments = [name for name in inspect.signature(type(model).__init__).parameters
                 if name not in ("self", "kwargs")]
    assert list(config) == ["name", "trainable", "dtype", *arguments]
    assert type(model).from_config(config).get_config() == config
