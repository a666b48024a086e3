"""HTS-AT's token-semantic head: class-wise activation maps over time from the last Swin stage."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class TokenSemanticHead(keras.layers.Layer):
    """Unfolds the last token grid back into time and convolves it into one map per class.

    HTS-AT (https://arxiv.org/abs/2202.00874, §2.3; `forward_features` with
    `enable_tscam` in its `model/htsat.py`): the final `(H, W)` grid holds
    `num_chunks` time chunks stacked along its rows (the fold of the
    spectrogram); it is cut back into `(H / num_chunks, num_chunks · W)`
    (rows within a chunk × time), and a convolution with kernel
    `(H / num_chunks, 3)` and time padding 1 maps it to `num_classes`
    activations per time step. The framewise logits are that map; the clip's
    logits are their mean over time (the reference's average pooling before
    its sigmoid).

    The kernel's shape depends only on the rows per chunk, which kc2f keeps
    fixed across compression factors (`Htsat` folds a coarse spectrogram into
    fewer chunks), so the head carries over between phases unchanged.

    Args:
        num_classes: output classes.
        grid: the last stage's token grid `(H, W)`.
        num_chunks: time chunks stacked along the grid's rows; must divide H.

    Input: `(batch, H·W, D)`. Output: framewise logits
    `(batch, num_chunks · W, num_classes)`, float32.
    """

    def __init__(self, num_classes, grid, num_chunks=4, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer. Received: num_classes={num_classes!r}")
        grid = tuple(grid)
        if len(grid) != 2 or not all(isinstance(v, int) and v > 0 for v in grid):
            raise ValueError(f"grid must be a pair of positive integers. Received: grid={grid}")
        if not isinstance(num_chunks, int) or num_chunks < 1 or grid[0] % num_chunks:
            raise ValueError(
                f"num_chunks must be a positive integer dividing the grid's rows. Received: "
                f"num_chunks={num_chunks!r}, grid={grid}"
            )
        self.num_classes = num_classes
        self.grid = grid
        self.num_chunks = num_chunks
        self.rows = grid[0] // num_chunks
        self.frames = num_chunks * grid[1]

    def build(self, input_shape):
        dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(self.rows, 3, dim, self.num_classes),
            initializer=keras.initializers.HeUniform(),
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_classes,), initializer="zeros")

    def call(self, inputs):
        (h, w), k, dim = self.grid, self.num_chunks, inputs.shape[-1]
        x = ops.reshape(inputs, (-1, k, self.rows, w, dim))
        x = ops.reshape(ops.transpose(x, (0, 2, 1, 3, 4)), (-1, self.rows, k * w, dim))
        x = ops.pad(x, [[0, 0], [0, 0], [1, 1], [0, 0]])
        x = ops.conv(x, ops.cast(self.kernel, x.dtype), padding="valid")  # (batch, 1, frames, classes)
        return ops.cast(x[:, 0], "float32") + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames, self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, grid=self.grid, num_chunks=self.num_chunks)
        return config
