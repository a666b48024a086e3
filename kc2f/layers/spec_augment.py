"""SpecAugment frequency and time masking, active only in training."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class SpecAugment(keras.layers.Layer):
    """Masks `stripes` random frequency bands and time spans per example (one each by default).

    SpecAugment (Park et al., 2019, https://arxiv.org/abs/1904.08779) as AST
    applies it with torchaudio's `FrequencyMasking(freqm)` / `TimeMasking(timem)`:
    a width `w ~ U[0, max_width)` and a start `s ~ U[0, size - w)`. Masked values
    are set to 0, which after normalisation is the dataset mean (AST masks before
    normalising, so its masks are ≈ +0.47, like its padding). HTS-AT
    (torchlibrosa's `SpecAugmentation(time_stripes_num=2, freq_stripes_num=2)`,
    each stripe `DropStripes`: the same width and start draws, zeros on the
    normalised input) masks two of each: `stripes=2`.

    Args:
        freq_mask: maximum frequency-mask width in mel bins (0 disables).
        time_mask: maximum time-mask width in frames of *this* input (0
            disables). The AST model scales the recipe's width by
            `frames / target_frames`, i.e. 1/C in compressed phases.
        stripes: masks per axis and example, each drawn independently.
        seed: seed of the layer's random generator.

    Input and output: `(batch, frames, mel)`.
    """

    def __init__(self, freq_mask=0, time_mask=0, stripes=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("freq_mask", freq_mask), ("time_mask", time_mask)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value}")
        if not isinstance(stripes, int) or stripes < 1:
            raise ValueError(f"stripes must be a positive integer. Received: stripes={stripes}")
        self.freq_mask = freq_mask
        self.time_mask = time_mask
        self.stripes = stripes
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, batch, size, max_width, dtype):
        width = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * max_width)
        start = ops.floor(
            keras.random.uniform((batch, 1), seed=self.seed_generator) * (size - width)
        )
        index = ops.cast(ops.arange(size), "float32")[None, :]
        keep = ops.logical_or(index < start, index >= start + width)
        return ops.cast(keep, dtype)

    def call(self, inputs, training=None):
        if not training or (self.freq_mask == 0 and self.time_mask == 0):
            return inputs
        batch = ops.shape(inputs)[0]
        frames, mel = inputs.shape[1], inputs.shape[2]
        x = inputs
        for _ in range(self.stripes):
            if self.freq_mask:
                x = x * self._mask(batch, mel, min(self.freq_mask, mel), x.dtype)[:, None, :]
            if self.time_mask:
                x = x * self._mask(batch, frames, min(self.time_mask, frames), x.dtype)[:, :, None]
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(freq_mask=self.freq_mask, time_mask=self.time_mask, stripes=self.stripes, seed=self.seed)
        return config
