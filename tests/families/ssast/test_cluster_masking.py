"""ClusterMasking: exact masked share at every factor, clustered shapes, a NumPy reference."""

import numpy as np
import pytest
from keras import ops

from kc2f.families.ssast import ClusterMasking
from kc2f.families.ssast import SsastPretrainer


def _reference(scores, grid, num_masked, cluster):
    """Float64 NumPy: max over the centred cluster × cluster window, then the top num_masked."""
    batch = scores.shape[0]
    grid_scores = scores.reshape(batch, *grid).astype(np.float64)
    low, high = (cluster - 1) // 2, cluster // 2
    pooled = np.empty_like(grid_scores)
    for f in range(grid[0]):
        for t in range(grid[1]):
            window = grid_scores[:, max(0, f - low):f + high + 1, max(0, t - low):t + high + 1]
            pooled[:, f, t] = window.max(axis=(1, 2))
    key = pooled.reshape(batch, -1) + 1e-3 * scores
    return np.argsort(-key, axis=1, kind="stable")[:, :num_masked]


@pytest.mark.parametrize("grid,num_masked,cluster", [((8, 16), 100, 3), ((8, 4), 25, 3), ((4, 6), 7, 1)])
def test_select_matches_numpy_reference(grid, num_masked, cluster):
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=(3, grid[0] * grid[1])).astype(np.float32)
    layer = ClusterMasking(grid, num_masked, cluster)
    indices, mask = layer.select(scores)
    indices, mask = ops.convert_to_numpy(indices), ops.convert_to_numpy(mask)
    expected = _reference(scores, grid, num_masked, cluster)
    np.testing.assert_array_equal(np.sort(indices, axis=1), np.sort(expected, axis=1))
    assert mask.shape == (3, grid[0] * grid[1])
    np.testing.assert_array_equal(mask.sum(axis=1), [num_masked] * 3)
    for row, picked in zip(mask, indices):
        assert len(set(picked.tolist())) == num_masked and row[picked].min() == 1


def test_masked_patches_form_whole_clusters():
    """A masked patch scoring above the admission threshold lies in a fully masked cluster × cluster window."""
    grid, cluster = (8, 16), 3
    rng = np.random.default_rng(1)
    scores = rng.uniform(size=(4, 128)).astype(np.float32)
    layer = ClusterMasking(grid, 60, cluster)
    _, mask = layer.select(scores)
    mask = ops.convert_to_numpy(mask).reshape(4, *grid)
    pooled = ops.convert_to_numpy(layer.pooled_scores(scores)).reshape(4, *grid)
    for b in range(4):
        threshold = np.sort(pooled[b].ravel())[::-1][59]
        for f, t in zip(*np.nonzero(mask[b])):
            if pooled[b, f, t] <= threshold:
                continue  # the last, possibly partial, cluster
            window = [(i, j) for i in range(f - 1, f + 2) for j in range(t - 1, t + 2)
                      if 0 <= i < grid[0] and 0 <= j < grid[1]]
            # The draw that gave this patch its score masks its own whole window.
            source = [(i, j) for i, j in window if scores[b].reshape(grid)[i, j] == pooled[b, f, t]]
            assert source, (b, f, t)
            i, j = source[0]
            around = mask[b, max(0, i - 1):i + 2, max(0, j - 1):j + 2]
            assert around.min() == 1, (b, f, t, around)
    # Clustered, unlike independent masking: masked patches have more masked neighbours.
    independent = ClusterMasking(grid, 60, 1)
    _, flat = independent.select(scores)
    flat = ops.convert_to_numpy(flat).reshape(4, *grid)

    def neighbours(m):
        return (m[:, 1:] * m[:, :-1]).sum() + (m[:, :, 1:] * m[:, :, :-1]).sum()

    assert neighbours(mask) > 1.3 * neighbours(flat)


@pytest.mark.parametrize("method", ["fshift", "maxpool"])
def test_same_masked_share_at_every_factor(method):
    """SSAST's 400 of 512 patches at every token grid (the share, not the count, is kept)."""
    shares = []
    for factor in (1, 2, 4):
        model = SsastPretrainer(method=method, factor=factor, target_frames=1024, num_mel_bins=128,
                                hidden_dim=16, depth=1, num_heads=1)
        assert model.token_grid == (8, 64 // factor)
        assert model.num_masked == round(400 / 512 * model.num_patch_tokens)
        indices, mask = model.masking(ops.zeros((2, model.num_patch_tokens, 16)))
        assert tuple(indices.shape) == (2, model.num_masked)
        np.testing.assert_array_equal(ops.convert_to_numpy(mask).sum(axis=1), [model.num_masked] * 2)
        shares.append(model.num_masked / model.num_patch_tokens)
    assert shares == [400 / 512] * 3


def test_config_round_trip_and_validation():
    layer = ClusterMasking((4, 8), 20, cluster=2, seed=3)
    config = layer.get_config()
    clone = ClusterMasking.from_config(config)
    assert clone.get_config() == config
    with pytest.raises(ValueError, match="num_masked"):
        ClusterMasking((4, 8), 32)
    with pytest.raises(ValueError, match="cluster"):
        ClusterMasking((4, 8), 3, cluster=0)
    with pytest.raises(ValueError, match="max_cluster"):
        ClusterMasking((4, 8), 3, cluster=3, max_cluster=2)
    ranged = ClusterMasking((4, 8), 20, cluster=3, max_cluster=5, seed=1)
    assert ClusterMasking.from_config(ranged.get_config()).get_config() == ranged.get_config()


def _unmasked_runs(mask_rows):
    """Per clip: the number of runs of unmasked tokens in token order (gaps between masked stretches)."""
    unmasked = 1 - np.asarray(mask_rows, np.int64)
    starts = np.diff(np.pad(unmasked, ((0, 0), (1, 0))), axis=1) == 1
    return starts.sum(axis=1)


def test_frame_patches_are_masked_as_plain_random_frames_as_ssast_does():
    # SSAST-Frame: 128 x 2 patches of a 1024-frame clip, a 1 x 512 grid, 400 masked (gen_maskid_frame).
    model = SsastPretrainer(target_frames=1024, patch_size=(128, 2), hidden_dim=8, depth=1, num_heads=1, seed=0)
    assert model.token_grid == (1, 512) and model.masking.sides == (1,)
    _, mask = model.masking(np.zeros((200, 512, 8), "float32"))
    runs = _unmasked_runs(ops.convert_to_numpy(mask))
    rng = np.random.default_rng(0)  # the reference: random.sample(range(512), 400) per clip
    reference = np.zeros((2000, 512), np.int64)
    for row in reference:
        row[rng.choice(512, 400, replace=False)] = 1
    expected = _unmasked_runs(reference).mean()  # about 88 gaps of 1.27 frames
    assert abs(runs.mean() - expected) < 0.03 * expected
    # Clustering (a fixed 3-wide window) would leave about half as many, longer gaps.
    clustered = ClusterMasking((1, 512), 400, cluster=3, seed=0)(np.zeros((200, 512, 8), "float32"))[1]
    assert _unmasked_runs(ops.convert_to_numpy(clustered)).mean() < 0.6 * expected


def test_square_patches_draw_a_cluster_side_from_3_to_5_per_clip():
    model = SsastPretrainer(target_frames=1024, patch_size=(16, 16), hidden_dim=8, depth=1, num_heads=1, seed=0)
    assert model.token_grid == (8, 64) and model.masking.sides == (3, 4, 5)
    rng = np.random.default_rng(1)
    scores = rng.uniform(size=(6, 512)).astype(np.float32)
    sides = np.array([3, 4, 5, 5, 4, 3], np.int32)
    indices = ops.convert_to_numpy(model.masking.select(scores, sides)[0])
    for row, side in zip(range(6), sides):  # each clip masked as a fixed layer of its own side would
        expected = _reference(scores[row:row + 1], (8, 64), model.num_masked, int(side))
        np.testing.assert_array_equal(np.sort(indices[row]), np.sort(expected[0]))
    # Drawn in call: the gap count lies between those of the fixed sides 3 and 5.
    tokens = np.zeros((300, 512, 8), "float32")
    drawn = _unmasked_runs(ops.convert_to_numpy(model.masking(tokens)[1])).mean()
    fixed = [_unmasked_runs(ops.convert_to_numpy(ClusterMasking((8, 64), 400, cluster=c, seed=0)(tokens)[1])).mean()
             for c in (3, 5)]
    assert min(fixed) < drawn < max(fixed)
