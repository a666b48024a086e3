"""Cluster masking of spectrogram patches for masked patch modelling (SSAST)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class ClusterMasking(keras.layers.Layer):
    """Chooses `num_masked` of a clip's patches to mask, in square clusters.

    SSAST (Gong et al., https://arxiv.org/abs/2110.09784, §2.2) masks 400 of
    the 512 patches of a 10 s clip and masks them in clusters rather than one
    by one, so that a masked patch cannot be guessed from its unmasked
    neighbours (its reference code grows random `c × c` squares,
    `c ∈ {3, 4, 5}`, until enough are masked). Here every patch draws a
    uniform score, each patch takes the largest score in the `cluster ×
    cluster` window around it (a max-pool with stride 1), and the
    `num_masked` patches of highest pooled score are masked: a high draw
    masks its whole window, the count is exact, and the selection is one
    fixed-shape graph on every backend. The caller keeps the *share* of
    masked patches constant across compression factors (SSAST's 400/512 at
    every token grid).

    Args:
        grid_shape: `(freq_tokens, time_tokens)` of the patch grid.
        num_masked: patches masked per clip, `1 <= num_masked < freq·time`.
        cluster: side of the square clusters (1: independent patches).
        seed: seed of the layer's random generator.

    Call: `layer(tokens)` draws the scores of a batch of patch tokens
    `(batch, freq·time, D)`; `layer.select(scores)` masks given scores
    `(batch, freq·time)`. Both return `(indices, mask)`:
    `indices (batch, num_masked)` int32, the masked patches in token order
    (frequency-major, `f * time_tokens + t`) sorted by score; `mask
    (batch, freq·time)` float32, 1 where masked.
    """

    def __init__(self, grid_shape, num_masked, cluster=3, seed=None, **kwargs):
        super().__init__(**kwargs)
        grid_shape = tuple(grid_shape)
        if len(grid_shape) != 2 or not all(isinstance(g, int) and g > 0 for g in grid_shape):
            raise ValueError(f"grid_shape must be two positive integers. Received: grid_shape={grid_shape}")
        num_patches = grid_shape[0] * grid_shape[1]
        if not isinstance(num_masked, int) or not 1 <= num_masked < num_patches:
            raise ValueError(
                f"num_masked must be an integer in [1, {num_patches}) for a {grid_shape} grid. "
                f"Received: num_masked={num_masked}"
            )
        if not isinstance(cluster, int) or cluster < 1:
            raise ValueError(f"cluster must be a positive integer. Received: cluster={cluster}")
        self.grid_shape = grid_shape
        self.num_masked = num_masked
        self.cluster = cluster
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def num_patches(self):
        return self.grid_shape[0] * self.grid_shape[1]

    def pooled_scores(self, scores):
        """Each patch's score: the largest draw in the `cluster × cluster` window around it."""
        if self.cluster == 1:
            return scores
        grid = ops.reshape(scores, (-1, self.grid_shape[0], self.grid_shape[1], 1))
        pooled = ops.max_pool(grid, pool_size=self.cluster, strides=1, padding="same")
        return ops.reshape(pooled, (-1, self.num_patches))

    def select(self, scores):
        """`(indices, mask)` for draws `scores (batch, freq·time)` in [0, 1)."""
        scores = ops.cast(scores, "float32")
        # A small share of the patch's own draw breaks the ties inside a window, so
        # that a partly masked window (the last one admitted) keeps its best draws.
        pooled = self.pooled_scores(scores) + 1e-3 * scores
        _, indices = ops.top_k(pooled, self.num_masked, sorted=True)
        indices = ops.cast(indices, "int32")
        mask = ops.sum(ops.one_hot(indices, self.num_patches, dtype="float32"), axis=1)
        return indices, mask

    def call(self, tokens):
        scores = keras.random.uniform((ops.shape(tokens)[0], self.num_patches), seed=self.seed_generator)
        return self.select(scores)

    def get_config(self):
        config = super().get_config()
        config.update(grid_shape=self.grid_shape, num_masked=self.num_masked, cluster=self.cluster,
                      seed=self.seed)
        return config
