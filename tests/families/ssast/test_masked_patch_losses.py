"""SSAST's pretext losses against float64 NumPy references, and the patch layout against PatchEmbedding."""

import numpy as np
from keras import ops

from kc2f.layers import PatchEmbedding
from kc2f.families.ssast.masked_patch_losses import info_nce, patch_mse, spectrogram_patches


def _nce_reference(predictions, targets):
    """SSAST's mpc for each clip: total = targets @ predictions.T, −mean(diag(log_softmax(total, -1))),
    accuracy = mean(argmax(total, axis=0) == arange)."""
    nce, accuracy = [], []
    for p, t in zip(predictions.astype(np.float64), targets.astype(np.float64)):
        total = t @ p.T
        shifted = total - total.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        nce.append(-np.mean(np.diag(log_softmax)))
        accuracy.append(np.mean(np.argmax(total, axis=0) == np.arange(len(t))))
    return np.array(nce), np.array(accuracy)


def test_info_nce_and_accuracy_match_numpy():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(3, 7, 5)).astype(np.float32)
    # Predictions near the targets for some patches, so that the accuracy is neither 0 nor 1.
    predictions = (0.6 * targets + rng.normal(size=targets.shape)).astype(np.float32)
    nce, accuracy = info_nce(predictions, targets)
    expected_nce, expected_accuracy = _nce_reference(predictions, targets)
    np.testing.assert_allclose(ops.convert_to_numpy(nce), expected_nce, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(accuracy), expected_accuracy)
    assert 0 < expected_accuracy.mean() < 1


def test_patch_mse_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 4, 6, 9)).astype(np.float32)
    expected = ((a.astype(np.float64) - b) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(ops.convert_to_numpy(patch_mse(a, b)), expected, rtol=1e-6)


def test_patches_are_in_patch_embedding_token_order():
    """Patch i's pixels, projected by the embedding's kernel, give token i (so targets and tokens agree)."""
    rng = np.random.default_rng(2)
    spectrogram = rng.normal(size=(2, 24, 12)).astype(np.float32)  # (batch, frames, mel)
    embedding = PatchEmbedding(5, (4, 6))
    tokens = ops.convert_to_numpy(embedding(spectrogram))
    patches = ops.convert_to_numpy(spectrogram_patches(spectrogram, (4, 6)))
    kernel = ops.convert_to_numpy(embedding.kernel).reshape(24, 5)
    np.testing.assert_allclose(patches @ kernel + ops.convert_to_numpy(embedding.bias), tokens, atol=1e-5)
    # Token f * time_tokens + t holds mel rows 4f..4f+3 and frames 6t..6t+5, frequency-major.
    f, t = 1, 2
    expected = spectrogram[0, 6 * t:6 * t + 6, 4 * f:4 * f + 4].T.ravel()
    np.testing.assert_array_equal(patches[0, f * 4 + t], expected)
