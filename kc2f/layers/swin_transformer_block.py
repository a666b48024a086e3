"""Swin transformer block: (shifted) window attention with a relative-position bias."""

import keras
import numpy as np
from keras import ops


def effective_window(grid, window_size, shifted):
    """Window and shift `(wh, ww), (sh, sw)` actually used on a `(H, W)` token grid.

    Swin (https://arxiv.org/abs/2103.14030, and HTS-AT's `SwinTransformerBlock`)
    takes the whole grid as one window, unshifted, when it is not larger than
    the window. kc2f applies that rule per axis, so the coarse phases' flat
    grids (few rows, as many columns) keep full windows along time; on a square
    grid this is the reference's rule.
    """
    window, shift = [], []
    for size, win in zip(grid, window_size):
        if size <= win:
            window.append(size)
            shift.append(0)
        else:
            window.append(win)
            shift.append(win // 2 if shifted else 0)
    return tuple(window), tuple(shift)


def relative_position_index(window, table_window=None):
    """`(N, N)` index into the `(2th−1)·(2tw−1)` bias table of a `(th, tw)` table window, for a
    `(wh, ww)` window no larger than it (N = wh·ww; `table_window` `None`: the window itself).

    Entry `[i, j]` is `(dy + th − 1)·(2tw − 1) + (dx + tw − 1)` with `(dy, dx)`
    the offset of token `i` from token `j`, as Swin's `relative_position_index`;
    a smaller window reads the centre of the larger table, the entries of the
    offsets it has.
    """
    wh, ww = window
    th, tw = table_window or window
    coords = np.stack(np.meshgrid(np.arange(wh), np.arange(ww), indexing="ij")).reshape(2, -1)
    rel = coords[:, :, None] - coords[:, None, :]
    return ((rel[0] + th - 1) * (2 * tw - 1) + rel[1] + tw - 1).astype("int32")


def shifted_window_mask(grid, window, shift):
    """`(windows, N, N)` additive mask (0 or −100, as Swin) keeping a shifted window to one region.

    After the cyclic shift a window may hold tokens from opposite edges of the
    grid; tokens of different regions must not attend to each other.
    """
    labels = np.zeros(grid, dtype=np.int64)
    region_slices = []
    for win, sh in zip(window, shift):
        if sh:
            region_slices.append((slice(0, -win), slice(-win, -sh), slice(-sh, None)))
        else:
            region_slices.append((slice(None),))
    count = 0
    for rows in region_slices[0]:
        for cols in region_slices[1]:
            labels[rows, cols] = count
            count += 1
    (h, w), (wh, ww) = grid, window
    windows = labels.reshape(h // wh, wh, w // ww, ww).transpose(0, 2, 1, 3).reshape(-1, wh * ww)
    return np.where(windows[:, None, :] != windows[:, :, None], -100.0, 0.0).astype("float32")


@keras.saving.register_keras_serializable(package="kc2f")
class SwinTransformerBlock(keras.layers.Layer):
    """Swin block on a `(H, W)` token grid: W-MSA or SW-MSA with relative-position bias, then an MLP.

    Swin (Liu et al., https://arxiv.org/abs/2103.14030) as HTS-AT (Chen et al.,
    https://arxiv.org/abs/2202.00874, `model/htsat.py`) uses it:
    `x + Attn(LN(x))`, `x + MLP(LN(x))`, where attention runs inside
    non-overlapping `window × window` windows, cyclically shifted by half a
    window in every other block (`shifted=True`) with a mask between the
    regions the shift brings together, and each head adds a learnt bias indexed
    by the relative offset of the two tokens (a `(2wh−1)·(2ww−1) × heads`
    table). Stochastic depth drops a sample's residual branch with
    probability `drop_path_rate` in training.

    Args:
        hidden_dim: token width D.
        num_heads: attention heads; must divide D.
        grid: token grid `(H, W)` (rows = frequency × chunks, columns = time).
        window_size: int or `(wh, ww)`; an axis not larger than it becomes one
            unshifted window (`effective_window`).
        shifted: shift the windows by half a window (odd blocks of a stage).
        mlp_ratio: MLP width / D.
        drop_path_rate: stochastic-depth rate.
        layer_norm_epsilon: LayerNorm epsilon (1e-5, PyTorch's default).
        seed: seed of the stochastic-depth generator.

    Input and output: `(batch, H·W, D)`, tokens row-major.
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        grid,
        window_size=8,
        shifted=False,
        mlp_ratio=4.0,
        drop_path_rate=0.0,
        layer_norm_epsilon=1e-5,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("hidden_dim", hidden_dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim must be divisible by num_heads. Received: hidden_dim={hidden_dim}, "
                f"num_heads={num_heads}"
            )
        grid = _pair("grid", grid)
        window_size = _pair("window_size", window_size)
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive. Received: mlp_ratio={mlp_ratio}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1). Received: drop_path_rate={drop_path_rate}")
        window, shift = effective_window(grid, window_size, shifted)
        if grid[0] % window[0] or grid[1] % window[1]:
            raise ValueError(
                f"The token grid must be divisible by the window. Received: grid={grid}, "
                f"window_size={window_size}"
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.grid = grid
        self.window_size = window_size
        self.shifted = bool(shifted)
        self.mlp_ratio = mlp_ratio
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.seed = seed
        self.window = window
        self.shift = shift
        self.head_dim = hidden_dim // num_heads
        self.mlp_dim = int(hidden_dim * mlp_ratio)
        # The table covers the configured window's offsets even where the grid cuts the window
        # (coarse phases): a phase switch then copies it whole, and going back to C = 1 finds
        # every offset it had (issue 31: a cropped table lost the far offsets for good).
        self._index = relative_position_index(window, window_size).reshape(-1)
        self._mask = shifted_window_mask(grid, window, shift) if any(shift) else None
        self.seed_generator = keras.random.SeedGenerator(seed) if drop_path_rate else None

        def dense(units, name):
            return keras.layers.Dense(
                units,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                dtype=self.dtype_policy,
                name=name,
            )

        self.norm1 = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm1",
                                                     dtype=self.dtype_policy)
        self.qkv = dense(3 * hidden_dim, "qkv")
        self.proj = dense(hidden_dim, "proj")
        self.norm2 = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm2",
                                                     dtype=self.dtype_policy)
        self.fc1 = dense(self.mlp_dim, "fc1")
        self.fc2 = dense(hidden_dim, "fc2")

    @property
    def table_window(self):
        """The window whose offsets the bias table holds: the configured `window_size`, whatever
        the grid cuts of it (`window`)."""
        return self.window_size

    @property
    def table_shape(self):
        """`(2wh − 1, 2ww − 1)` of the relative-position bias table, `(wh, ww)` the `table_window`."""
        return (2 * self.table_window[0] - 1, 2 * self.table_window[1] - 1)

    def build(self, input_shape):
        rows, cols = self.table_shape
        self.relative_position_bias_table = self.add_weight(
            name="relative_position_bias_table",
            shape=(rows * cols, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self.norm1.build(input_shape)
        self.qkv.build(input_shape)
        self.proj.build(input_shape)
        self.norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.mlp_dim,))

    def _windows(self, x):
        (h, w), (wh, ww) = self.grid, self.window
        x = ops.reshape(x, (-1, h // wh, wh, w // ww, ww, self.hidden_dim))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, wh * ww, self.hidden_dim))

    def _unwindows(self, x):
        (h, w), (wh, ww) = self.grid, self.window
        x = ops.reshape(x, (-1, h // wh, w // ww, wh, ww, self.hidden_dim))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h, w, self.hidden_dim))

    def _drop_path(self, x, training):
        if not training or not self.drop_path_rate:
            return x
        keep = 1.0 - self.drop_path_rate
        noise = keras.random.uniform((ops.shape(x)[0], 1, 1), seed=self.seed_generator, dtype=x.dtype)
        return x * ops.floor(keep + noise) / keep

    def call(self, inputs, training=False):
        (h, w), (sh, sw) = self.grid, self.shift
        n = self.window[0] * self.window[1]
        x = ops.reshape(self.norm1(inputs), (-1, h, w, self.hidden_dim))
        if sh or sw:
            x = ops.roll(ops.roll(x, -sh, axis=1), -sw, axis=2)
        x = self.qkv(self._windows(x))
        x = ops.transpose(ops.reshape(x, (-1, n, 3, self.num_heads, self.head_dim)), (2, 0, 3, 1, 4))
        q, k, v = ops.unstack(x, 3, axis=0)  # (batch·windows, heads, N, head_dim); see TransformerBlock
        scores = ops.matmul(q * (self.head_dim ** -0.5), ops.transpose(k, (0, 1, 3, 2)))
        bias = ops.take(self.relative_position_bias_table, self._index, axis=0)
        scores = scores + ops.cast(ops.transpose(ops.reshape(bias, (n, n, self.num_heads)), (2, 0, 1)),
                                   scores.dtype)
        if self._mask is not None:
            windows = self._mask.shape[0]
            scores = ops.reshape(scores, (-1, windows, self.num_heads, n, n))
            scores = scores + ops.cast(self._mask[None, :, None], scores.dtype)
            scores = ops.reshape(scores, (-1, self.num_heads, n, n))
        attended = ops.matmul(ops.softmax(scores, axis=-1), v)
        attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (-1, n, self.hidden_dim))
        x = self._unwindows(self.proj(attended))
        if sh or sw:
            x = ops.roll(ops.roll(x, sh, axis=1), sw, axis=2)
        x = inputs + self._drop_path(ops.reshape(x, (-1, h * w, self.hidden_dim)), training)
        hidden = ops.gelu(self.fc1(self.norm2(x)), approximate=False)
        return x + self._drop_path(self.fc2(hidden), training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            grid=self.grid,
            window_size=self.window_size,
            shifted=self.shifted,
            mlp_ratio=self.mlp_ratio,
            drop_path_rate=self.drop_path_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
            seed=self.seed,
        )
        return config


def _pair(name, value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError(f"{name} must be a positive integer or a pair of them. Received: {name}={value}")
    return value
