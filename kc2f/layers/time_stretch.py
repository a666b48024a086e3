"""Bicubic stretching of a spectrogram along time, as HTS-AT's `reshape_wav2img` does."""

import keras
import numpy as np
from keras import ops

# PyTorch's bicubic convolution coefficient (`F.interpolate(mode="bicubic")`; Keys' −0.5 is another).
_CUBIC_A = -0.75


def bicubic_resize_matrix(in_size, out_size):
    """`(out_size, in_size)` float64 matrix of PyTorch's 1-D bicubic resize with `align_corners=True`.

    Output sample `i` sits at input position `i · (in − 1) / (out − 1)` (float32); it
    mixes the four inputs around it with the cubic convolution kernel
    (`a = −0.75`), indices beyond the edges clamped to them, as
    `torch.nn.functional.interpolate(..., mode="bicubic", align_corners=True)`.
    Every row sums to 1; `in_size == out_size` gives the identity.
    """
    for name, value in (("in_size", in_size), ("out_size", out_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    matrix = np.zeros((out_size, in_size))
    # In float32, as PyTorch computes the source positions of a float32 input (its scale and
    # `scale * i`): at 1001 -> 1024 that moves the weights by up to 1e-4 from exact arithmetic.
    scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
    for i in range(out_size):
        position = np.float32(scale * np.float32(i))
        base = int(np.floor(position))
        t = float(np.float32(position - np.float32(base)))
        for offset, distance in zip((-1, 0, 1, 2), (1 + t, t, 1 - t, 2 - t)):
            if distance <= 1:
                weight = ((_CUBIC_A + 2) * distance - (_CUBIC_A + 3)) * distance * distance + 1
            else:
                weight = ((_CUBIC_A * distance - 5 * _CUBIC_A) * distance + 8 * _CUBIC_A) * distance - 4 * _CUBIC_A
            matrix[i, min(max(base + offset, 0), in_size - 1)] += weight
    return matrix


@keras.saving.register_keras_serializable(package="kc2f")
class TimeStretch(keras.layers.Layer):
    """Stretches `(batch, in_frames, bins)` to `(batch, out_frames, bins)` along time, bicubically.

    HTS-AT (https://arxiv.org/abs/2202.00874; `reshape_wav2img` in
    https://github.com/RetroCirce/HTS-Audio-Transformer `model/htsat.py`)
    stretches a 10 s clip's 1001 frames to the 1024 its image needs with
    `F.interpolate(mode="bicubic", align_corners=True)`; this is that resize
    along time (the bins axis is left as it is, which the reference's 2-D
    resize does to an axis of unchanged size), one matrix product.

    Args:
        in_frames: frames of the input.
        out_frames: frames of the output.
    """

    def __init__(self, in_frames, out_frames, **kwargs):
        super().__init__(**kwargs)
        self._matrix = bicubic_resize_matrix(in_frames, out_frames).astype("float32")
        self.in_frames, self.out_frames = int(in_frames), int(out_frames)

    def call(self, inputs):
        return ops.einsum("ot,btf->bof", ops.cast(self._matrix, inputs.dtype), inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.out_frames, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(in_frames=self.in_frames, out_frames=self.out_frames)
        return config
