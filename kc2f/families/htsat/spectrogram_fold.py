"""HTS-AT's time -> frequency fold of a long spectrogram into a squarer image."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class SpectrogramFold(keras.layers.Layer):
    """Cuts the spectrogram into `num_chunks` consecutive time chunks and stacks them along frequency.

    HTS-AT (https://arxiv.org/abs/2202.00874, `reshape_wav2img` in its
    `model/htsat.py`) turns 1024 frames × 64 mel bins into a 256 × 256 image
    for its Swin transformer: chunk `k` holds frames `[k·T/K, (k+1)·T/K)` and
    becomes rows `k·F … k·F + F − 1` of the image. Here the image keeps kc2f's
    `(batch, time, frequency)` order, so the output is `(batch, T/K, K·F)`
    with `out[b, t, k·F + f] = in[b, k·T/K + t, f]`; `unfold` is the inverse.

    Args:
        num_chunks: K (4 in HTS-AT; 1 is the identity).

    Input: `(batch, T, F)`, T divisible by K. Output: `(batch, T / K, K·F)`.
    """

    def __init__(self, num_chunks=4, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_chunks, int) or isinstance(num_chunks, bool) or num_chunks < 1:
            raise ValueError(f"num_chunks must be a positive integer. Received: num_chunks={num_chunks!r}")
        self.num_chunks = num_chunks

    def _check(self, frames):
        if frames is not None and frames % self.num_chunks:
            raise ValueError(
                f"The frames must be divisible by num_chunks. Received: frames={frames}, "
                f"num_chunks={self.num_chunks}"
            )

    def call(self, inputs):
        frames, mel = inputs.shape[1], inputs.shape[2]
        self._check(frames)
        if self.num_chunks == 1:
            return inputs
        chunk = frames // self.num_chunks
        x = ops.reshape(inputs, (-1, self.num_chunks, chunk, mel))
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, chunk, self.num_chunks * mel))

    def unfold(self, image):
        """The inverse: `(batch, T/K, K·F)` back to `(batch, T, F)`."""
        chunk, stacked = image.shape[1], image.shape[2]
        if stacked % self.num_chunks:
            raise ValueError(
                f"The stacked frequency axis must be divisible by num_chunks. Received: "
                f"bins={stacked}, num_chunks={self.num_chunks}"
            )
        if self.num_chunks == 1:
            return image
        mel = stacked // self.num_chunks
        x = ops.reshape(image, (-1, chunk, self.num_chunks, mel))
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, self.num_chunks * chunk, mel))

    def compute_output_shape(self, input_shape):
        self._check(input_shape[1])
        frames = None if input_shape[1] is None else input_shape[1] // self.num_chunks
        mel = None if input_shape[2] is None else input_shape[2] * self.num_chunks
        return (input_shape[0], frames, mel)

    def get_config(self):
        config = super().get_config()
        config.update(num_chunks=self.num_chunks)
        return config
