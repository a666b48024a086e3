"""A user's own model family in a few lines: a frame-energy classifier trained coarse-to-fine.

Used by the README's example and by `test_model_family.py`: it shows that a
family plugs into kc2f's trainer, phase switch, FLOPs accounting, checkpoints
and finished-model export without touching any of them.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from kc2f.families import ModelFamily, register_family
from kc2f.options import ModelOptions, option
from kc2f.weights import linear_resize_matrix

SAMPLE_RATE = 16000  # the synthetic set's, which the toy is trained on


@dataclasses.dataclass
class ToyReport:
    entries: list

    def paths(self, action):
        return [path for path, act in self.entries if act == action]

    def __str__(self):
        return "\n".join(f"{action} {path}" for path, action in self.entries)


@keras.saving.register_keras_serializable(package="kc2f_toy")
class FrameEnergyClassifier(keras.Model):
    """Log energy of `frames / factor` time cells (max-pooled C×), a learned per-cell offset, a Dense head."""

    def __init__(self, num_classes, factor=1, clip_samples=10240, frames=64, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.factor, self.clip_samples, self.frames = num_classes, factor, clip_samples, frames
        self.cells = frames // factor
        self.offset = self.add_weight(shape=(self.cells,), initializer="zeros", name="offset")
        self.head = keras.layers.Dense(num_classes, name="head")
        self.head.build((None, self.cells))
        self.built = True

    def call(self, inputs, training=False):
        wave = inputs["waveform"] if isinstance(inputs, dict) else inputs
        hop = self.clip_samples // self.frames
        frames = ops.reshape(wave[:, : hop * self.frames], (-1, self.frames, hop))
        energy = ops.log(ops.mean(ops.square(frames), axis=-1) + 1e-6)
        pooled = ops.max(ops.reshape(energy, (-1, self.cells, self.factor)), axis=-1)
        return self.head(pooled + self.offset)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "factor": self.factor,
                "clip_samples": self.clip_samples, "frames": self.frames}


@dataclasses.dataclass(frozen=True)
class ToyOptions(ModelOptions):
    """The family's own options: `--set frames=32`, `model_options: {frames: 32}`, `kc2f models` lists them."""

    frames: int = option(64, "energy frames per clip at full resolution", int, at_least=2)


class ToyFamily(ModelFamily):
    name = "toy-energy"
    methods = ("maxpool",)
    model_classes = (FrameEnergyClassifier,)
    options_class = ToyOptions

    def build(self, config, spec, num_classes, factor):
        return FrameEnergyClassifier(num_classes, factor=factor, clip_samples=spec.clip_samples,
                                     frames=config.model_options.frames)

    def transfer(self, source, target):
        entries = []
        pairs = [("offset", source.offset, target.offset)]
        pairs += [(f"head/{a.name}", a, b) for a, b in zip(source.head.weights, target.head.weights)]
        for path, src, dst in pairs:
            value = np.asarray(src.numpy())
            if value.shape != tuple(dst.shape):  # grid-shaped: resample along the cells
                value = linear_resize_matrix(value.shape[0], dst.shape[0]) @ value
                entries.append((path, "resized"))
            else:
                entries.append((path, "copied"))
            dst.assign(value.astype("float32"))
        return ToyReport(entries)

    def tokens(self, model):
        return model.cells

    def serving_info(self, model):
        # The model knows its clip in samples, not its rate: the synthetic set's 16 kHz.
        hop_ms = 1000.0 * model.clip_samples / SAMPLE_RATE / model.frames
        return dict(sample_rate=SAMPLE_RATE, target_frames=model.frames, frame_shift_ms=hop_ms,
                    frame_length_ms=hop_ms, method="maxpool", factor=model.factor, num_classes=model.num_classes,
                    token_grid=[1, model.cells])

    def training_flops_per_sample(self, model):
        hop = model.clip_samples // model.frames
        front = 3 * model.frames * hop + model.frames * model.factor  # square, mean, pool
        head = 2 * model.cells * model.num_classes
        return float(front + 3 * head)


TOY = register_family(ToyFamily())
