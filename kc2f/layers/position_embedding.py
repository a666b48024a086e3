"""Prefix tokens and learned positional embedding over the (freq, time) token grid."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class PositionEmbedding(keras.layers.Layer):
    """Prepends learned prefix tokens (cls, distillation) and adds positions.

    As in AST / DeiT (https://arxiv.org/abs/2012.12877), the position embedding
    is one learned vector per token: `num_prefix_tokens` prefix positions, then
    the patch grid flattened frequency-major. Keeping it as a single
    `(1, prefix + freq·time, D)` weight matches the layout of timm and AST
    checkpoints; `kc2f.weights.resample_position_embedding` reshapes the grid
    part to `(freq, time)` when a phase switch changes the time grid.

    Args:
        grid_shape: `(freq_tokens, time_tokens)`.
        num_prefix_tokens: learned tokens in front of the patch tokens (2 in AST:
            cls and distillation; 0 is allowed).

    Input: patch tokens `(batch, freq·time, D)`.
    Output: `(batch, prefix + freq·time, D)`.
    """

    def __init__(self, grid_shape, num_prefix_tokens=2, **kwargs):
        super().__init__(**kwargs)
        grid_shape = tuple(grid_shape)
        if len(grid_shape) != 2 or not all(isinstance(g, int) and g > 0 for g in grid_shape):
            raise ValueError(
                f"grid_shape must be two positive integers. Received: grid_shape={grid_shape}"
            )
        if not isinstance(num_prefix_tokens, int) or num_prefix_tokens < 0:
            raise ValueError(
                "num_prefix_tokens must be a non-negative integer. "
                f"Received: num_prefix_tokens={num_prefix_tokens}"
            )
        self.grid_shape = grid_shape
        self.num_prefix_tokens = num_prefix_tokens

    @property
    def num_tokens(self):
        return self.num_prefix_tokens + self.grid_shape[0] * self.grid_shape[1]

    def build(self, input_shape):
        tokens, dim = input_shape[1], input_shape[2]
        if tokens is not None and tokens != self.grid_shape[0] * self.grid_shape[1]:
            raise ValueError(
                f"Expected {self.grid_shape[0]}×{self.grid_shape[1]} patch tokens. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        # Separate initializer objects: a reused unseeded one repeats its values.
        if self.num_prefix_tokens:
            self.prefix_tokens = self.add_weight(
                name="prefix_tokens",
                shape=(1, self.num_prefix_tokens, dim),
                initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            )
        self.position_embedding = self.add_weight(
            name="position_embedding",
            shape=(1, self.num_tokens, dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )

    def call(self, inputs):
        x = inputs
        if self.num_prefix_tokens:
            prefix = ops.broadcast_to(
                ops.cast(self.prefix_tokens, x.dtype),
                (ops.shape(x)[0], self.num_prefix_tokens, ops.shape(x)[2]),
            )
            x = ops.concatenate([prefix, x], axis=1)
        return x + ops.cast(self.position_embedding, x.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_tokens, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(grid_shape=self.grid_shape, num_prefix_tokens=self.num_prefix_tokens)
        return config
