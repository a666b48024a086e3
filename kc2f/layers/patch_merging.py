"""Swin's patch merging: 2 × 2 neighbouring tokens -> one token of twice the width."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class PatchMerging(keras.layers.Layer):
    """Halves a `(H, W)` token grid along both axes and doubles the width.

    Swin (https://arxiv.org/abs/2103.14030) and HTS-AT (`PatchMerging` in its
    `model/htsat.py`): the four tokens `(2i, 2j)`, `(2i+1, 2j)`, `(2i, 2j+1)`,
    `(2i+1, 2j+1)` are concatenated in that order (so that HTS-AT's weights
    load as they are), layer-normalised and projected from 4·D to 2·D without
    a bias.

    Args:
        hidden_dim: input token width D.
        grid: input token grid `(H, W)`, both even.
        layer_norm_epsilon: LayerNorm epsilon (1e-5, PyTorch's default).

    Input: `(batch, H·W, D)`. Output: `(batch, H/2 · W/2, 2·D)`.
    """

    def __init__(self, hidden_dim, grid, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(hidden_dim, int) or isinstance(hidden_dim, bool) or hidden_dim <= 0:
            raise ValueError(f"hidden_dim must be a positive integer. Received: hidden_dim={hidden_dim!r}")
        grid = tuple(grid)
        if len(grid) != 2 or not all(isinstance(v, int) and v > 0 and v % 2 == 0 for v in grid):
            raise ValueError(f"grid must be a pair of even positive integers. Received: grid={grid}")
        self.hidden_dim = hidden_dim
        self.grid = grid
        self.layer_norm_epsilon = layer_norm_epsilon
        self.norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm",
                                                    dtype=self.dtype_policy)
        self.reduction = keras.layers.Dense(
            2 * hidden_dim, use_bias=False, name="reduction", dtype=self.dtype_policy,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )

    @property
    def output_grid(self):
        return (self.grid[0] // 2, self.grid[1] // 2)

    def build(self, input_shape):
        shape = (None, None, 4 * self.hidden_dim)
        self.norm.build(shape)
        self.reduction.build(shape)

    def call(self, inputs):
        (h, w), d = self.grid, self.hidden_dim
        x = ops.reshape(inputs, (-1, h // 2, 2, w // 2, 2, d))  # (b, i, row parity, j, col parity, d)
        # Column parity outermost, then row parity: x0 (0,0), x1 (1,0), x2 (0,1), x3 (1,1).
        x = ops.transpose(x, (0, 1, 3, 4, 2, 5))
        x = ops.reshape(x, (-1, (h // 2) * (w // 2), 4 * d))
        return self.reduction(self.norm(x))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_grid[0] * self.output_grid[1], 2 * self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, grid=self.grid, layer_norm_epsilon=self.layer_norm_epsilon)
        return config
