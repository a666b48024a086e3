"""`SwinTransformerBlock`, `PatchMerging`, `TokenSemanticHead` against float64 NumPy transcriptions of
HTS-AT's PyTorch code (model/htsat.py: WindowAttention, SwinTransformerBlock, PatchMerging, the
tscam branch of forward_features), written loop by loop from it and sharing no code with the layers."""

import math

import keras
import numpy as np
import pytest

from kc2f.layers import PatchMerging, SwinTransformerBlock
from kc2f.families.htsat import TokenSemanticHead
from kc2f.layers.swin_transformer_block import effective_window


def _np(v):
    return np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)


def _layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def reference_block(block, x):
    """HTS-AT's SwinTransformerBlock.forward (torch semantics) with the block's weights, float64."""
    w = {v.path.split("/", 1)[1]: _np(v) for v in block.weights}
    (h, wd), (wh, ww), (sh, sw) = block.grid, block.window, block.shift
    heads, d = block.num_heads, block.hidden_dim
    b = x.shape[0]
    y = _layer_norm(x, w["norm1/gamma"], w["norm1/beta"]).reshape(b, h, wd, d)
    y = np.roll(y, (-sh, -sw), axis=(1, 2))
    # Region labels of the shifted image, as img_mask with its h_slices / w_slices.
    label = np.zeros((h, wd))
    for r in range(h):
        for c in range(wd):
            rr = 0 if (not sh or r < h - wh) else (1 if r < h - sh else 2)
            cc = 0 if (not sw or c < wd - ww) else (1 if c < wd - sw else 2)
            label[r, c] = rr * 3 + cc
    # HTS-AT builds the table of the window it uses (cut to the grid); kc2f keeps the configured
    # window's table, whose centre holds those offsets: the reference gets that centre.
    th, tw = block.window_size
    table = w["relative_position_bias_table"].reshape(2 * th - 1, 2 * tw - 1, heads)
    table = table[th - wh:th + wh - 1, tw - ww:tw + ww - 1].reshape(-1, heads)
    out = np.zeros_like(y)
    for bi in range(b):
        for r0 in range(0, h, wh):
            for c0 in range(0, wd, ww):
                cells = [(r0 + i, c0 + j) for i in range(wh) for j in range(ww)]
                tokens = np.stack([y[bi, r, c] for r, c in cells])
                qkv = tokens @ w["qkv/kernel"] + w["qkv/bias"]
                q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(-1, heads, d // heads) for i in range(3))
                result = np.zeros((len(cells), d))
                for hd in range(heads):
                    scores = (q[:, hd] * (d // heads) ** -0.5) @ k[:, hd].T
                    for i, (ri, ci) in enumerate(cells):
                        for j, (rj, cj) in enumerate(cells):
                            index = (ri - rj + wh - 1) * (2 * ww - 1) + (ci - cj + ww - 1)
                            scores[i, j] += table[index, hd]
                            if (sh or sw) and label[ri, ci] != label[rj, cj]:
                                scores[i, j] -= 100.0
                    scores = np.exp(scores - scores.max(-1, keepdims=True))
                    result[:, hd * (d // heads):(hd + 1) * (d // heads)] = (scores / scores.sum(-1, keepdims=True)) @ v[:, hd]
                result = result @ w["proj/kernel"] + w["proj/bias"]
                for (r, c), value in zip(cells, result):
                    out[bi, r, c] = value
    out = np.roll(out, (sh, sw), axis=(1, 2)).reshape(b, h * wd, d)
    x = x + out
    hidden = _gelu(_layer_norm(x, w["norm2/gamma"], w["norm2/beta"]) @ w["fc1/kernel"] + w["fc1/bias"])
    return x + hidden @ w["fc2/kernel"] + w["fc2/bias"]


@pytest.mark.parametrize("grid,window,shifted", [((4, 8), 4, False), ((4, 8), 4, True), ((2, 8), 4, True),
                                                 ((6, 4), (2, 2), True)])
def test_block_matches_reference(grid, window, shifted):
    block = SwinTransformerBlock(8, 2, grid, window_size=window, shifted=shifted)
    x = np.random.default_rng(0).standard_normal((2, grid[0] * grid[1], 8)).astype("float32")
    block.build(x.shape)
    table = block.relative_position_bias_table
    table.assign(np.random.default_rng(1).standard_normal(tuple(table.shape)).astype("float32"))
    ours = keras.ops.convert_to_numpy(block(x))
    np.testing.assert_allclose(ours, reference_block(block, x.astype(np.float64)), atol=2e-4)


def test_effective_window_per_axis():
    assert effective_window((64, 64), (8, 8), True) == ((8, 8), (4, 4))
    assert effective_window((8, 16), (8, 8), True) == ((8, 8), (0, 4))
    assert effective_window((2, 8), (8, 8), True) == ((2, 8), (0, 0))
    assert effective_window((4, 16), (8, 8), False) == ((4, 8), (0, 0))


def test_patch_merging_matches_reference():
    layer = PatchMerging(3, (4, 6))
    x = np.random.default_rng(0).standard_normal((2, 24, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(layer(x))
    w = {v.path.split("/", 1)[1]: _np(v) for v in layer.weights}
    grid = x.astype(np.float64).reshape(2, 4, 6, 3)
    cat = np.concatenate([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], -1)
    ref = _layer_norm(cat.reshape(2, 6, 12), w["norm/gamma"], w["norm/beta"]) @ w["reduction/kernel"]
    assert ours.shape == (2, 6, 6)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_token_semantic_head_matches_reference():
    chunks, rows, cols, dim, classes = 2, 2, 3, 4, 5
    head = TokenSemanticHead(classes, (chunks * rows, cols), num_chunks=chunks)
    x = np.random.default_rng(0).standard_normal((1, chunks * rows * cols, dim)).astype("float32")
    ours = keras.ops.convert_to_numpy(head(x))
    kernel, bias = _np(head.kernel), _np(head.bias)
    # torch: (B, C, F, T) -> reshape (B, C, chunks, rows, T) -> permute -> (B, C, rows, chunks·T); Conv2d (rows, 3), pad (0, 1).
    grid = x[0].astype(np.float64).reshape(chunks * rows, cols, dim)
    unfolded = np.zeros((rows, chunks * cols, dim))
    for k in range(chunks):
        for r in range(rows):
            unfolded[r, k * cols:(k + 1) * cols] = grid[k * rows + r]
    padded = np.pad(unfolded, ((0, 0), (1, 1), (0, 0)))
    ref = np.zeros((chunks * cols, classes))
    for t in range(chunks * cols):
        ref[t] = np.einsum("rkd,rkdc->c", padded[:, t:t + 3], kernel) + bias
    assert ours.shape == (1, chunks * cols, classes)
    np.testing.assert_allclose(ours[0], ref, atol=1e-5)


@pytest.mark.parametrize("layer", [
    lambda: SwinTransformerBlock(8, 2, (4, 8), window_size=4, shifted=True, drop_path_rate=0.1, seed=3),
    lambda: PatchMerging(8, (4, 8)),
    lambda: TokenSemanticHead(5, (4, 2), num_chunks=2),
])
def test_config_round_trip(layer):
    layer = layer()
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


@pytest.mark.parametrize("make,name", [
    (lambda: SwinTransformerBlock(8, 3, (4, 4)), "hidden_dim"),
    (lambda: SwinTransformerBlock(8, 2, (6, 8), window_size=4), "grid"),
    (lambda: SwinTransformerBlock(8, 2, (4, 4), drop_path_rate=1.0), "drop_path_rate"),
    (lambda: SwinTransformerBlock(8, 2, (4, 4), window_size=0), "window_size"),
    (lambda: PatchMerging(8, (3, 4)), "grid"),
    (lambda: TokenSemanticHead(5, (3, 2), num_chunks=2), "num_chunks"),
    (lambda: TokenSemanticHead(0, (4, 2)), "num_classes"),
])
def test_bad_arguments(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_drop_path_only_in_training():
    block = SwinTransformerBlock(8, 2, (4, 4), window_size=4, drop_path_rate=0.5, seed=0)
    x = np.random.default_rng(0).standard_normal((16, 16, 8)).astype("float32")
    inference = keras.ops.convert_to_numpy(block(x))
    np.testing.assert_allclose(inference, keras.ops.convert_to_numpy(block(x, training=False)))
    trained = keras.ops.convert_to_numpy(block(x, training=True))
    assert not np.allclose(trained, inference, atol=1e-4)
