"""SsastPretrainer: joint loss, config round trip, FLOPs, a training step on both backends."""

import numpy as np
import pytest
from keras import ops

from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.families.ssast import SsastPretrainer
from kc2f.families.ast.ast_flops import forward_flops
from kc2f.families.ssast.ssast_flops import pretraining_flops_per_sample
from kc2f.families.ssast.masked_patch_losses import info_nce, patch_mse

TINY = dict(sample_rate=8000, target_frames=64, num_mel_bins=32, patch_size=(8, 8), hidden_dim=16, depth=1,
            num_heads=2, fbank_mean=-6.0, fbank_std=4.0, seed=0)


def _waves(batch=3, seconds=0.64, rate=8000):
    rng = np.random.default_rng(0)
    samples = int(seconds * rate)
    return {"waveform": rng.normal(scale=0.1, size=(batch, samples)).astype(np.float32),
            "length": np.full((batch,), samples, np.int32)}


def test_outputs_are_the_losses_of_the_masked_patches():
    model = SsastPretrainer(**TINY)
    waves = _waves()
    indices = np.stack([np.arange(model.num_masked) * 2 % model.num_patch_tokens] * 3).astype(np.int32)
    indices[:, :] = np.argsort(np.random.default_rng(1).uniform(size=(3, model.num_patch_tokens)))[:, :model.num_masked]
    discriminative, generative, targets = model.masked_outputs(waves, indices=indices)
    # The targets are the masked patches of the normalised spectrogram.
    spec = ops.convert_to_numpy(model.spectrogram(waves))
    f, t = divmod(int(indices[0, 0]), model.token_grid[1])
    expected = spec[0, 8 * t:8 * t + 8, 8 * f:8 * f + 8].T.ravel()
    np.testing.assert_allclose(ops.convert_to_numpy(targets)[0, 0], expected, rtol=1e-6)
    nce, accuracy = info_nce(discriminative, targets)
    mse = patch_mse(generative, targets)
    y_pred = ops.stack([nce, mse, accuracy], axis=-1)
    loss = float(ops.convert_to_numpy(model.compute_loss(y_pred=y_pred)))
    assert loss == pytest.approx(float(np.mean(ops.convert_to_numpy(nce)) + 10 * np.mean(ops.convert_to_numpy(mse))),
                                 rel=1e-6)


def test_predictions_do_not_see_the_masked_patches():
    """A masked patch enters the encoder only as the mask embedding: changing it changes the targets,
    not the predictions; changing an unmasked patch changes the predictions."""
    model = SsastPretrainer(**TINY)
    rng = np.random.default_rng(3)
    spec = rng.normal(size=(1, 64, 32)).astype(np.float32)
    model.spectrogram = lambda inputs: ops.convert_to_tensor(inputs)  # feed spectrograms directly
    indices = np.array([sorted(rng.choice(model.num_patch_tokens, model.num_masked, replace=False))], np.int32)
    unmasked = sorted(set(range(model.num_patch_tokens)) - set(indices[0].tolist()))

    def outputs(x):
        return [ops.convert_to_numpy(v) for v in model.masked_outputs(x, indices=indices)]

    def changed(token):
        f, t = divmod(token, model.token_grid[1])
        other = spec.copy()
        other[0, 8 * t:8 * t + 8, 8 * f:8 * f + 8] += 5.0
        return other

    base = outputs(spec)
    masked = outputs(changed(int(indices[0, 0])))
    np.testing.assert_allclose(masked[0], base[0], atol=1e-6)
    np.testing.assert_allclose(masked[1], base[1], atol=1e-6)
    assert not np.allclose(masked[2], base[2])
    visible = outputs(changed(unmasked[0]))
    assert not np.allclose(visible[0], base[0], atol=1e-4)


def test_config_round_trip_and_weight_names_shared_with_the_ast():
    model = SsastPretrainer(method="maxpool", factor=2, **TINY)
    config = model.get_config()
    clone = SsastPretrainer.from_config(config)
    assert clone.get_config() == config
    ast = AudioSpectrogramTransformer(num_classes=3, method="maxpool", factor=2, num_prefix_tokens=2,
                                      **{k: v for k, v in TINY.items() if k != "seed"})
    own = {v.path.split("/", 1)[1] for v in model.weights}
    ast_names = {v.path.split("/", 1)[1] for v in ast.weights}
    assert own - ast_names == {"mask_embedding", "discriminative_head_hidden/kernel", "discriminative_head_hidden/bias",
                               "discriminative_head/kernel", "discriminative_head/bias", "generative_head_hidden/kernel",
                               "generative_head_hidden/bias", "generative_head/kernel", "generative_head/bias"}
    assert ast_names - own == {"head_norm/gamma", "head_norm/beta", "head/kernel", "head/bias"}
    with pytest.raises(ValueError, match="patch methods"):
        SsastPretrainer(method="patch-pi", **TINY)
    with pytest.raises(ValueError, match="mask_share"):
        SsastPretrainer(mask_share=1.0, **TINY)


def test_pretraining_flops_count_the_encoder_and_the_heads():
    model = SsastPretrainer(**TINY)
    ast = AudioSpectrogramTransformer(num_classes=1, num_prefix_tokens=2, **{k: v for k, v in TINY.items() if k != "seed"})
    encoder = forward_flops(ast)
    m, d, p = model.num_masked, 16, 64
    heads = 2 * (2 * m * d * d + 2 * m * d + 2 * m * d * p + m * p)
    extra = 3 * model.num_patch_tokens * d + heads + 2 * m * m * p + 5 * m * m + 3 * m * p
    expected = encoder.front_end + 2 * encoder.patch_embedding + 3 * (
        encoder.network - encoder.patch_embedding - encoder.head + extra)
    assert pretraining_flops_per_sample(model) == pytest.approx(expected)
    coarse = SsastPretrainer(method="fshift", factor=4, **TINY)
    assert pretraining_flops_per_sample(coarse) < 0.35 * pretraining_flops_per_sample(model)


def test_a_training_step_lowers_the_loss_on_a_fixed_batch():
    model = SsastPretrainer(**TINY)
    model.compile(optimizer="adam", loss=None)
    waves = _waves(batch=4)
    history = model.fit(waves, np.zeros((4, 1), np.float32), epochs=15, batch_size=4, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert np.mean(history["loss"][-3:]) < history["loss"][0]
