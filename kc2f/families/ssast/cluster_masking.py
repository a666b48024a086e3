"""Cluster masking of spectrogram patches for masked patch modelling (SSAST)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class ClusterMasking(keras.layers.Layer):
    """Chooses `num_masked` of a clip's patches to mask, in square clusters.

    SSAST (Gong et al., https://arxiv.org/abs/2110.09784, §2.2) masks 400 of
    the 512 patches of a 10 s clip and masks them in clusters rather than one
    by one, so that a masked patch cannot be guessed from its unmasked
    neighbours (its reference code, `gen_maskid_patch`, draws one side
    `c ∈ {3, 4, 5}` per clip and grows random `c × c` squares until enough are
    masked; for frame patches, `gen_maskid_frame`, it masks plain random
    frames: "cluster for frame masking hurts the performance"). Here every patch draws a
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
        max_cluster: with it, each clip draws its side uniformly from
            `cluster..max_cluster` (SSAST: 3..5); `None`: always `cluster`.
        seed: seed of the layer's random generator.

    Call: `layer(tokens)` draws the scores of a batch of patch tokens
    `(batch, freq·time, D)` (and each clip's side); `layer.select(scores,
    sides)` masks given scores `(batch, freq·time)` with given sides
    `(batch,)` int32 (`None`: `cluster`). Both return `(indices, mask)`:
    `indices (batch, num_masked)` int32, the masked patches in token order
    (frequency-major, `f * time_tokens + t`) sorted by score; `mask
    (batch, freq·time)` float32, 1 where masked.
    """

    def __init__(self, grid_shape, num_masked, cluster=3, max_cluster=None, seed=None, **kwargs):
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
        if max_cluster is not None and (not isinstance(max_cluster, int) or max_cluster < cluster):
            raise ValueError(f"max_cluster must be an integer >= cluster ({cluster}) or None. "
                             f"Received: max_cluster={max_cluster}")
        self.grid_shape = grid_shape
        self.num_masked = num_masked
        self.cluster = cluster
        self.max_cluster = max_cluster
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def num_patches(self):
        return self.grid_shape[0] * self.grid_shape[1]

    @property
    def sides(self):
        """The cluster sides a clip can draw."""
        return tuple(range(self.cluster, (self.max_cluster or self.cluster) + 1))

    def pooled_scores(self, scores, side=None):
        """Each patch's score: the largest draw in the `side × side` window around it (default `cluster`)."""
        side = side or self.cluster
        if side == 1:
            return scores
        grid = ops.reshape(scores, (-1, self.grid_shape[0], self.grid_shape[1], 1))
        pooled = ops.max_pool(grid, pool_size=side, strides=1, padding="same")
        return ops.reshape(pooled, (-1, self.num_patches))

    def select(self, scores, sides=None):
        """`(indices, mask)` for draws `scores (batch, freq·time)` in [0, 1) and sides `(batch,)` (or None)."""
        scores = ops.cast(scores, "float32")
        if sides is None or len(self.sides) == 1:
            pooled = self.pooled_scores(scores)
        else:  # every side's pooling, each clip taking its own: one fixed-shape graph
            sides = ops.expand_dims(ops.cast(sides, "int32"), 1)
            pooled = self.pooled_scores(scores, self.sides[0])
            for side in self.sides[1:]:
                pooled = ops.where(sides == side, self.pooled_scores(scores, side), pooled)
        # A small share of the patch's own draw breaks the ties inside a window, so
        # that a partly masked window (the last one admitted) keeps its best draws.
        pooled = pooled + 1e-3 * scores
        _, indices = ops.top_k(pooled, self.num_masked, sorted=True)
        indices = ops.cast(indices, "int32")
        mask = ops.sum(ops.one_hot(indices, self.num_patches, dtype="float32"), axis=1)
        return indices, mask

    def call(self, tokens):
        batch = ops.shape(tokens)[0]
        scores = keras.random.uniform((batch, self.num_patches), seed=self.seed_generator)
        sides = None
        if len(self.sides) > 1:
            sides = keras.random.randint((batch,), self.cluster, self.max_cluster + 1, seed=self.seed_generator)
        return self.select(scores, sides)

    def get_config(self):
        config = super().get_config()
        config.update(grid_shape=self.grid_shape, num_masked=self.num_masked, cluster=self.cluster,
                      max_cluster=self.max_cluster, seed=self.seed)
        return config
