"""`transfer_weights`: copies, resizes grid-shaped weights, and names what it cannot map."""

import keras
import numpy as np
import pytest

from kc2f.families.ast import AST_METHODS, AudioSpectrogramTransformer
from kc2f.families.ast import transfer_weights

SMALL = dict(num_classes=4, hidden_dim=16, depth=1, num_heads=2, target_frames=64,
             num_mel_bins=32, sample_rate=8000)


def _waveforms(n=2, seconds=0.7):
    return np.random.default_rng(0).standard_normal((n, int(8000 * seconds))).astype("float32") * 0.1


def _out(model, x):
    return keras.ops.convert_to_numpy(model(x))


@pytest.mark.parametrize("method", AST_METHODS)
def test_same_factor_transfer_gives_identical_outputs(method):
    src = AudioSpectrogramTransformer(method=method, factor=2, **SMALL)
    dst = AudioSpectrogramTransformer(method=method, factor=2, **SMALL)
    x = _waveforms()
    assert not np.allclose(_out(src, x), _out(dst, x))
    report = transfer_weights(src, dst)
    assert report.paths("resized") == []
    np.testing.assert_array_equal(_out(src, x), _out(dst, x))


@pytest.mark.parametrize("method", AST_METHODS)
def test_phase_switch_resizes_grid_weights_and_copies_the_rest(method):
    src = AudioSpectrogramTransformer(method=method, factor=4, **SMALL)
    dst = AudioSpectrogramTransformer(method=method, factor=1, **SMALL)
    report = transfer_weights(src, dst)
    expected = {"position_embedding/position_embedding"}
    if method.startswith("patch"):
        expected.add("patch_embedding/kernel")
    assert set(report.paths("resized")) == expected
    src_weights = {v.path.split("/", 1)[1]: v.numpy() for v in src.weights}
    for variable in dst.weights:
        path = variable.path.split("/", 1)[1]
        if path not in expected:
            np.testing.assert_array_equal(variable.numpy(), src_weights[path])
    position = dst.position_embedding.position_embedding.numpy()
    assert position.shape == (1, 2 + 2 * 4, 16)
    # The prefix tokens' positions are kept, not resampled.
    np.testing.assert_array_equal(position[:, :2], src_weights["position_embedding/position_embedding"][:, :2])


def test_patch_methods_resize_kernel_by_their_own_rule():
    kernels = {}
    for method in ("patch-bl", "patch-pi"):
        src = AudioSpectrogramTransformer(method=method, factor=2, seed=1, **SMALL)
        src.patch_embedding.kernel.assign(np.random.default_rng(3).standard_normal((16, 32, 1, 16)))
        dst = AudioSpectrogramTransformer(method=method, factor=1, **SMALL)
        transfer_weights(src, dst)
        kernels[method] = dst.patch_embedding.kernel.numpy()
    assert kernels["patch-bl"].shape == kernels["patch-pi"].shape == (16, 16, 1, 16)
    assert np.abs(kernels["patch-bl"] - kernels["patch-pi"]).max() > 1e-2


def test_unmappable_weight_is_named_and_skip_leaves_it():
    src = AudioSpectrogramTransformer(method="maxpool", factor=1, **SMALL)
    other = dict(SMALL, num_classes=7)
    dst = AudioSpectrogramTransformer(method="maxpool", factor=1, **other)
    with pytest.raises(ValueError, match="head/kernel"):
        transfer_weights(src, dst)
    before = dst.head.kernel.numpy()
    report = transfer_weights(src, dst, skip=("head/kernel", "head/bias"))
    assert set(report.paths("skipped")) == {"head/kernel", "head/bias"}
    np.testing.assert_array_equal(dst.head.kernel.numpy(), before)


def test_depth_mismatch_is_an_error_listing_the_weights():
    src = AudioSpectrogramTransformer(method="maxpool", factor=1, **SMALL)
    dst = AudioSpectrogramTransformer(method="maxpool", factor=1, **dict(SMALL, depth=2))
    with pytest.raises(ValueError, match="block_1"):
        transfer_weights(src, dst)
