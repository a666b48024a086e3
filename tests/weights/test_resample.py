"""Weight resampling is checked by the properties it guarantees."""

import numpy as np
import pytest

from kc2f.weights import (
    linear_resize_matrix,
    resample_position_embedding,
    resize_patch_kernel_bilinear,
    resize_patch_kernel_pi,
)


def _centres(size):
    # Token t covers [t, t+1) / size of the clip: its centre in clip coordinates.
    return (np.arange(size) + 0.5) / size


@pytest.mark.parametrize("old,new", [(4, 4), (8, 4), (4, 8), (64, 32), (16, 64), (1, 5)])
def test_resize_matrix_rows_sum_to_one(old, new):
    matrix = linear_resize_matrix(old, new)
    assert matrix.shape == (new, old)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)


def test_same_grid_is_identity_and_same_object():
    embedding = np.random.randn(1, 2 + 8 * 16, 6).astype(np.float32)
    assert resample_position_embedding(embedding, (8, 16), (8, 16), 2) is embedding
    kernel = np.random.randn(16, 16, 1, 4).astype(np.float32)
    assert resize_patch_kernel_pi(kernel, (16, 16)) is kernel
    assert resize_patch_kernel_bilinear(kernel, (16, 16)) is kernel


@pytest.mark.parametrize("old_t,new_t", [(32, 64), (64, 32), (16, 64), (64, 16), (3, 7)])
def test_constant_and_linear_ramp_along_time_are_exact(old_t, new_t):
    freq, dim, prefix = 3, 5, 2
    offsets = np.random.randn(freq, 1, dim)
    slopes = np.random.randn(freq, 1, dim)

    def ramp(t_size):
        return offsets + slopes * _centres(t_size)[None, :, None]

    prefix_tokens = np.random.randn(1, prefix, dim)
    for grid in (lambda t: np.broadcast_to(offsets, (freq, t, dim)), ramp):
        old = np.concatenate([prefix_tokens, grid(old_t).reshape(1, -1, dim)], axis=1)
        new = resample_position_embedding(old.astype(np.float32), (freq, old_t), (freq, new_t), prefix)
        assert new.shape == (1, prefix + freq * new_t, dim)
        assert new.dtype == np.float32
        np.testing.assert_allclose(new[:, :prefix], prefix_tokens, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(new[0, prefix:], grid(new_t).reshape(-1, dim), atol=1e-5)


def test_position_embedding_resample_interpolates_not_crops():
    # A coarse grid's last token must influence the fine grid's last tokens:
    # cropping (the AST reference's behaviour) would drop it.
    old = np.zeros((1, 2 + 1 * 4, 1), np.float32)
    old[0, -1, 0] = 1.0
    new = resample_position_embedding(old, (1, 4), (1, 8), 2)
    assert new[0, -1, 0] > 0.5 and new[0, -2, 0] > 0.5
    assert np.all(new[0, 2:-3, 0] == 0.0)


def test_position_embedding_bad_shape_names_the_shape():
    with pytest.raises(ValueError, match="shape=\\(1, 10, 4\\)"):
        resample_position_embedding(np.zeros((1, 10, 4)), (2, 8), (2, 4), 2)


def _full_resize_operator(old_patch, new_patch):
    # B acting on row-major flattened (freq, time) patches, built column by column
    # by resizing unit patches with the bilinear kernel resize.
    size = old_patch[0] * old_patch[1]
    columns = []
    for i in range(size):
        unit = np.zeros(size)
        unit[i] = 1.0
        resized = resize_patch_kernel_bilinear(unit.reshape(*old_patch, 1, 1), new_patch)
        columns.append(resized.reshape(-1))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("old,new", [((4, 4), (4, 8)), ((4, 4), (8, 12)), ((16, 16), (16, 32))])
def test_pi_resize_preserves_token_when_upsampling(old, new):
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((*old, 1, 7)).astype(np.float32)
    patches = rng.standard_normal((20, *old)).astype(np.float32)
    operator = _full_resize_operator(old, new)
    resized_patches = patches.reshape(20, -1) @ operator.T
    pi = resize_patch_kernel_pi(kernel, new)
    assert pi.shape == (*new, 1, 7)
    original = patches.reshape(20, -1) @ kernel.reshape(-1, 7)
    after = resized_patches @ pi.reshape(-1, 7)
    np.testing.assert_allclose(after, original, rtol=1e-4, atol=1e-4 * np.abs(original).max())


@pytest.mark.parametrize("old,new", [((16, 32), (16, 16)), ((16, 64), (16, 16)), ((4, 8), (2, 4))])
def test_pi_resize_is_least_squares_when_downsampling(old, new):
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((*old, 1, 3))
    operator = _full_resize_operator(old, new)
    expected, *_ = np.linalg.lstsq(operator.T, kernel.reshape(-1, 3), rcond=None)
    pi = resize_patch_kernel_pi(kernel.astype(np.float32), new)
    np.testing.assert_allclose(pi.reshape(-1, 3), expected, rtol=1e-4, atol=1e-5)


def test_pi_keeps_the_token_scale_where_bilinear_shrinks_it():
    # A 2× wider patch sums twice the inputs; after the switch, bilinear keeps
    # per-tap weights (token halves on a constant patch), PI keeps the token.
    kernel = np.ones((4, 8, 1, 1), np.float32)
    constant_old, constant_new = np.ones((4, 8)), np.ones((4, 4))
    bl = resize_patch_kernel_bilinear(kernel, (4, 4))
    pi = resize_patch_kernel_pi(kernel, (4, 4))
    assert not np.allclose(bl, pi)
    original = np.sum(constant_old * kernel[..., 0, 0])
    assert np.isclose(np.sum(constant_new * pi[..., 0, 0]), original, rtol=1e-5)
    assert np.isclose(np.sum(constant_new * bl[..., 0, 0]), original / 2, rtol=1e-5)


def test_bilinear_and_pi_differ_on_random_kernels():
    kernel = np.random.default_rng(2).standard_normal((16, 32, 1, 4)).astype(np.float32)
    bl = resize_patch_kernel_bilinear(kernel, (16, 16))
    pi = resize_patch_kernel_pi(kernel, (16, 16))
    assert bl.shape == pi.shape == (16, 16, 1, 4)
    assert np.abs(bl - pi).max() > 1e-2
