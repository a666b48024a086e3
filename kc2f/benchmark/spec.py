"""What a benchmark measures: `BenchSpec`, and the AST recipe's clip it defaults to."""

import dataclasses
import math

from kc2f.benchmark.errors import BenchError
from kc2f.benchmark.sizes import ModelSize, model_sizes
from kc2f.families import default_family, get_family

# The AST recipe at 10 s (docs/method.md#recipe-values): 1024 frames, SpecAugment 48 / 192.
RECIPE_FRAMES = 1024
RECIPE_FREQM = 48
RECIPE_TIMEM = 192
# AudioSet's label count and statistics, as the PyTorch reference uses 527 classes.
NUM_CLASSES = 527
FBANK_MEAN, FBANK_STD = -4.2677393, 4.5689974
FRAMES_PER_SECOND = 100  # 10 ms frame shift

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16", "bfloat16")
JIT_MODES = ("auto", "on", "off")


def recipe_frames(seconds, max_factor=4):
    """Full-resolution fbank frames of a clip, padded as the AST recipe pads.

    10 ms frames, rounded up to whole 16-frame patches at the largest factor
    (at least C=4): 10 s → 1024, 5 s → 512, 2.56 s → 256, 1 s → 128, which are
    the recipe's target frames (docs/method.md#recipe-values).
    """
    multiple = 16 * max(4, int(max_factor))
    frames = math.ceil(round(seconds * FRAMES_PER_SECOND, 6) / multiple) * multiple
    return max(multiple, frames)


def spec_augment_widths(target_frames, num_mel_bins=128):
    """The recipe's SpecAugment `(freqm, timem)` scaled to `target_frames`.

    48 / 192 at 1024 frames (AST); the time mask keeps its width in seconds. The
    model divides the time mask by C again in compressed phases.
    """
    freqm = min(RECIPE_FREQM, num_mel_bins)
    timem = (RECIPE_TIMEM * target_frames) // RECIPE_FRAMES
    return freqm, timem


@dataclasses.dataclass(frozen=True)
class BenchSpec:
    """What a benchmark measures: the model rows, the input clip and the timing.

    Validated on construction (a `BenchError`, i.e. a `ValueError`, says what
    is wrong); `sizes`, `methods` and `factors` are stored as tuples.

    Attributes:
        model: the model family (`kc2f.families.family_names()`; None: the default family).
        sizes: `ModelSize`s (see `model_sizes`; None: the family's `base` preset); a named
            size is built as the family's preset.
        methods: compression methods (`maxpool`, `fshift`, ...).
        factors: compression factors C.
        batch: batch size (the first batch tried by `find_max_batch`).
        seconds, sample_rate: the synthetic clip.
        frames: full-resolution fbank frames (default: `recipe_frames(seconds, max(factors))`).
        steps, warmup: timed steps (median reported) and warm-up steps (the first
            one includes compilation).
        precision: `auto` (mixed_bfloat16 on GPU/TPU, float32 on CPU), `float32`,
            `mixed_bfloat16`, `mixed_float16`, `bfloat16`.
        jit: `auto` (XLA on JAX/TensorFlow, Keras' choice on PyTorch), `on`, `off`.
        num_classes: classes of the head.
        seed: seed of the synthetic data and SpecAugment.
        num_mel_bins, fbank_mean, fbank_std: the model's fbank and its normalisation.
        freqm, timem: SpecAugment widths (default: `spec_augment_widths(frames)`).
        multilabel: multi-hot labels (binary cross-entropy) instead of one class.
    """

    model: str = None
    sizes: tuple = None
    methods: tuple = ("maxpool",)
    factors: tuple = (1, 2, 4)
    batch: int = 64
    seconds: float = 10.0
    sample_rate: int = 16000
    frames: int = None
    steps: int = 30
    warmup: int = 5
    precision: str = "auto"
    jit: str = "auto"
    num_classes: int = NUM_CLASSES
    seed: int = 0
    num_mel_bins: int = 128
    fbank_mean: float = FBANK_MEAN
    fbank_std: float = FBANK_STD
    freqm: int = None
    timem: int = None
    multilabel: bool = False

    def __post_init__(self):
        if self.model is None:
            object.__setattr__(self, "model", default_family().name)
        if self.sizes is None:
            object.__setattr__(self, "sizes", model_sizes(model=self.model))
        object.__setattr__(self, "sizes", tuple(self.sizes))
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "factors", tuple(int(f) for f in self.factors))
        if not self.sizes:
            raise BenchError("Give at least one size. Received: sizes=()")
        for size in self.sizes:
            if not isinstance(size, ModelSize):
                raise BenchError(f"sizes must be ModelSize (see model_sizes). Received: size={size!r}")
        if not self.factors:
            raise BenchError("Give at least one factor. Received: factors=()")
        if any(factor < 1 for factor in self.factors):
            raise BenchError(f"factors must be integers >= 1. Received: factors={self.factors}")
        if not self.methods:
            raise BenchError("Give at least one method. Received: methods=()")
        try:
            methods = tuple(get_family(self.model).methods)
        except ValueError as error:
            raise BenchError(str(error)) from None
        for method in self.methods:
            if method not in methods:
                raise BenchError(f"method must be one of {methods} for model '{self.model}'. "
                                 f"Received: method={method!r}")
        self._check_at_least_1("batch", "sample_rate", "num_classes", "num_mel_bins", "frames")
        if self.steps < 1 or self.warmup < 1:
            raise BenchError(f"steps and warmup must be >= 1. Received: steps={self.steps}, warmup={self.warmup}")
        if not self.seconds > 0:
            raise BenchError(f"seconds must be positive. Received: seconds={self.seconds}")
        for factor in self.factors:
            if self.target_frames % factor:
                raise BenchError(
                    "frames must be divisible by every factor. "
                    f"Received: frames={self.target_frames}, factor={factor}"
                )
        if self.precision not in PRECISIONS:
            raise BenchError(f"precision must be one of {PRECISIONS}. Received: precision={self.precision!r}")
        if self.jit not in JIT_MODES:
            raise BenchError(f"jit must be auto, on or off. Received: jit={self.jit!r}")

    def _check_at_least_1(self, *names):
        for name in names:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BenchError(f"{name} must be >= 1. Received: {name}={value}")

    @property
    def target_frames(self):
        """Full-resolution fbank frames of every row: `frames`, or the recipe's for the clip."""
        return self.frames if self.frames is not None else recipe_frames(self.seconds, max(self.factors))

    @property
    def samples(self):
        """Waveform samples of one clip."""
        return int(round(self.seconds * self.sample_rate))

    @property
    def spec_augment(self):
        """`(freqm, timem)`: the given widths, or the recipe's scaled to the frames."""
        default_freqm, default_timem = spec_augment_widths(self.target_frames, self.num_mel_bins)
        return (
            default_freqm if self.freqm is None else self.freqm,
            default_timem if self.timem is None else self.timem,
        )

    def configurations(self):
        """(size, method, factor) in order; C=1 once per size (the same model for every method)."""
        configs = []
        for size in self.sizes:
            for factor in self.factors:
                for method in self.methods if factor != 1 else self.methods[:1]:
                    configs.append((size, method, factor))
        return configs
