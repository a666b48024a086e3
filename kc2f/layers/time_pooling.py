"""Max/average pooling of a spectrogram along time: the paper's pooling front-ends."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class TimePooling(keras.layers.Layer):
    """Compresses a spectrogram C times along time with max or average pooling.

    The `maxpool` / `avgpool` methods of *From Coarse to Fine*
    (https://arxiv.org/abs/2401.08415, §2): the full-resolution fbank is pooled
    with kernel = stride = `factor` over frames, so a coarse phase sees
    `frames / factor` frames that still span the whole clip. Trailing frames
    that do not fill a window are dropped.

    Args:
        factor: compression factor C (>= 1); 1 is the identity.
        mode: `"max"` or `"avg"`.

    Input: `(batch, frames, mel)`. Output: `(batch, frames // factor, mel)`.
    """

    def __init__(self, factor=2, mode="max", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be an integer >= 1. Received: factor={factor}")
        if mode not in ("max", "avg"):
            raise ValueError(f"mode must be 'max' or 'avg'. Received: mode={mode!r}")
        self.factor = factor
        self.mode = mode

    def call(self, inputs):
        if self.factor == 1:
            return inputs
        frames = inputs.shape[1] // self.factor
        mel = inputs.shape[2]
        x = ops.reshape(inputs[:, : frames * self.factor], (-1, frames, self.factor, mel))
        return ops.max(x, axis=2) if self.mode == "max" else ops.mean(x, axis=2)

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else input_shape[1] // self.factor
        return (input_shape[0], frames, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, mode=self.mode)
        return config
