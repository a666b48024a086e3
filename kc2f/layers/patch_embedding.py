"""Rectangular patch embedding of a spectrogram."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class PatchEmbedding(keras.layers.Layer):
    """Splits a spectrogram into (freq × time) patches and projects each to a token.

    AST (https://arxiv.org/abs/2104.01778) embeds 16×16 patches of the
    (mel, frame) image with a convolution. The `patch-bl` / `patch-pi` methods of
    *From Coarse to Fine* (https://arxiv.org/abs/2401.08415) use rectangular
    16 × 16C patches in coarse phases. Tokens are ordered frequency-major, as in
    AST: token `f * time_tokens + t`.

    When the stride equals the patch size (the paper's setting) the embedding is
    a reshape and one matmul, which is the fastest form on every backend; an
    overlapping stride uses a strided convolution. Both use the same kernel of
    shape `(patch_freq, patch_time, 1, hidden_dim)`.

    Args:
        hidden_dim: token width D.
        patch_size: `(patch_freq, patch_time)`.
        patch_stride: `(stride_freq, stride_time)`; `None` means `patch_size`.
        kernel_initializer: initializer of the projection kernel.

    Input: `(batch, frames, mel)`. Output: `(batch, freq_tokens * time_tokens, D)`.
    """

    def __init__(
        self,
        hidden_dim,
        patch_size=(16, 16),
        patch_stride=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(hidden_dim, int) or hidden_dim <= 0:
            raise ValueError(f"hidden_dim must be a positive integer. Received: hidden_dim={hidden_dim}")
        patch_size = _pair("patch_size", patch_size)
        patch_stride = patch_size if patch_stride is None else _pair("patch_stride", patch_stride)
        self.hidden_dim = hidden_dim
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def grid_shape(self, frames, mel):
        """Token grid `(freq_tokens, time_tokens)` for a `(frames, mel)` spectrogram."""
        (pf, pt), (sf, st) = self.patch_size, self.patch_stride
        if pf > mel or pt > frames:
            raise ValueError(
                f"patch_size {self.patch_size} (freq, time) is larger than the input "
                f"spectrogram (mel={mel}, frames={frames}). Received: patch_size={self.patch_size}"
            )
        return ((mel - pf) // sf + 1, (frames - pt) // st + 1)

    def build(self, input_shape):
        pf, pt = self.patch_size
        self.grid_shape(input_shape[1], input_shape[2])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(pf, pt, 1, self.hidden_dim),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(name="bias", shape=(self.hidden_dim,), initializer="zeros")

    def call(self, inputs):
        frames, mel = inputs.shape[1], inputs.shape[2]
        gf, gt = self.grid_shape(frames, mel)
        (pf, pt), (sf, st) = self.patch_size, self.patch_stride
        image = ops.transpose(inputs, (0, 2, 1))  # (batch, mel, frames)
        if (sf, st) == (pf, pt):
            x = image[:, : gf * pf, : gt * pt]
            x = ops.reshape(x, (-1, gf, pf, gt, pt))
            x = ops.transpose(x, (0, 1, 3, 2, 4))
            x = ops.reshape(x, (-1, gf * gt, pf * pt))
            x = ops.matmul(x, ops.reshape(self.kernel, (pf * pt, self.hidden_dim)))
        else:
            x = ops.conv(image[..., None], self.kernel, strides=(sf, st), padding="valid")
            x = ops.reshape(x, (-1, gf * gt, self.hidden_dim))
        return x + self.bias

    def compute_output_shape(self, input_shape):
        gf, gt = self.grid_shape(input_shape[1], input_shape[2])
        return (input_shape[0], gf * gt, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            patch_size=self.patch_size,
            patch_stride=self.patch_stride,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def _pair(name, value):
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{name} must be a pair of positive integers. Received: {name}={value}")
    return value
