"""HTS-AT, the hierarchical token-semantic audio transformer, with coarse-to-fine front-ends."""

import keras
from keras import ops

from kc2f.families.htsat.spectrogram_fold import SpectrogramFold
from kc2f.families.htsat.token_semantic_head import TokenSemanticHead
from kc2f.layers import (
    LogMelSpectrogram,
    PatchEmbedding,
    PatchMerging,
    SpecAugment,
    SwinTransformerBlock,
    TimePooling,
    TimeStretch,
)
from kc2f.models.constructor_config import ConstructorConfig

HTSAT_METHODS = ("fshift", "maxpool", "avgpool")

# HTS-AT-Base (its config.py: htsat_dim 96, htsat_depth [2,2,6,2], htsat_num_head [4,8,16,32],
# htsat_window_size 8, htsat_patch_size 4) and a CPU-sized one for 1.28 s clips.
HTSAT_PRESETS = {
    "base": {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (4, 8, 16, 32), "window_size": 8,
             "num_mel_bins": 64},
    "tiny": {"embed_dim": 32, "depths": (2, 2), "num_heads": (2, 4), "window_size": 4, "num_mel_bins": 64},
}


@keras.saving.register_keras_serializable(package="kc2f")
class Htsat(ConstructorConfig, keras.Model):
    """HTS-AT classifier on raw waveforms, built for one (method, factor) phase.

    HTS-AT (Chen et al., ICASSP 2022, https://arxiv.org/abs/2202.00874) with the
    temporal compression of *From Coarse to Fine* (Feng et al.,
    https://arxiv.org/abs/2401.08415, Table 6): waveform → `LogMelSpectrogram`
    (torchlibrosa's, float32) → compression (`fshift`: hop × C; `maxpool` /
    `avgpool`: `TimePooling` C×) → BatchNorm over mel bins (HTS-AT's `bn0`) →
    `SpecAugment` (training) → `SpectrogramFold` into `num_chunks / C` time
    chunks stacked along frequency → 4 × 4 `PatchEmbedding` + LayerNorm →
    Swin stages (`SwinTransformerBlock`s, shifted every other block,
    `PatchMerging` between stages) → LayerNorm → `TokenSemanticHead`
    (framewise logits; their time mean is the clip's logits).

    Layout: a clip of T frames × F mel bins becomes an image of
    `(num_chunks / C) · F` rows × `T / num_chunks` columns: the coarse phases see
    C× fewer frames (never interpolated back up, unlike the reference, which
    stretches short inputs to 1024 frames) folded into C× fewer chunks, so the
    width of a chunk, the windows along time and the head's kernel keep their
    shapes and only the rows shrink. HTS-AT-Base on 10 s (T = 1024, F = 64,
    `num_chunks` 4, patch 4, window 8), token grid (rows × columns) and windows
    per stage:

    | C | image     | stage 1         | stage 2        | stage 3        | stage 4       |
    |---|-----------|-----------------|----------------|----------------|---------------|
    | 1 | 256 × 256 | 64 × 64 = 4096  | 32 × 32 = 1024 | 16 × 16 = 256  | 8 × 8 = 64    |
    | 2 | 128 × 256 | 32 × 64 = 2048  | 16 × 32 = 512  | 8 × 16 = 128   | 4 × 8 = 32    |
    | 4 | 64 × 256  | 16 × 64 = 1024  | 8 × 32 = 256   | 4 × 16 = 64    | 2 × 8 = 16    |

    Windows are 8 × 8 except where the grid has no more than 8 rows (then all
    rows, unshifted along rows: 8 × 8 at C = 2 stage 3 and C = 4 stage 2,
    4 × 8 at C = 2 stage 4 and C = 4 stage 3, 2 × 8 at C = 4 stage 4) or
    columns (stage 4: one unshifted window along time); the relative-position
    tables keep the 8 × 8 window's offsets in every phase, a cut window reading
    their centre, so a phase switch copies them whole.
    The head sees `num_chunks / C` chunks of 2 rows × 8 columns: 32 / C
    framewise steps.

    Args:
        num_classes: output classes.
        method: `fshift`, `maxpool` or `avgpool`.
        factor: temporal compression C; must divide `num_chunks`.
        sample_rate: waveform rate, Hz (32000 in HTS-AT).
        target_frames: spectrogram frames of a full-resolution clip (1024).
        num_mel_bins: mel bins F (64).
        fft_length: window and FFT length, samples (`None`: 32 ms, 1024 at 32 kHz).
        hop_length: full-resolution hop, samples (`None`: 10 ms, 320 at 32 kHz).
        low_freq, high_freq: mel range, Hz (50, 14000; `high_freq=None`:
            min(14000, Nyquist)).
        num_chunks: time chunks of the full-resolution fold (4: 1024 × 64 → 256 × 256).
        patch_size: square patch and stride (4).
        embed_dim: width of the first stage (96; doubled by every merging).
        depths: blocks per stage (2, 2, 6, 2).
        num_heads: heads per stage (4, 8, 16, 32).
        window_size: attention window (8).
        mlp_ratio: MLP width / token width (4).
        drop_path_rate: stochastic depth, rising linearly to this over the
            blocks (0.1).
        freqm, timem: SpecAugment maximum widths (mel bins; full-resolution frames).
        stretch_frames: `None` (default): a clip shorter than `target_frames`
            frames is zero-padded. An integer: the clip's own frames at full
            resolution (1001 for 10 s at HTS-AT's hop), computed and then
            stretched bicubically to `target_frames` (`/ C` at fshift), as the
            reference's `reshape_wav2img` does, so that the official weights
            see the time scale they were trained on (`TimeStretch`).
        seed: seed of SpecAugment and stochastic depth.

    Input: waveforms `(batch, samples)` or `{"waveform": ..., "length": ...}`.
    Output: clip logits `(batch, num_classes)`, float32; `framewise(inputs)`
    gives the framewise logits `(batch, framewise_steps, num_classes)`.
    """

    def __init__(
        self,
        num_classes,
        method="fshift",
        factor=1,
        sample_rate=32000,
        target_frames=1024,
        num_mel_bins=64,
        fft_length=None,
        hop_length=None,
        low_freq=50.0,
        high_freq=None,
        num_chunks=4,
        patch_size=4,
        embed_dim=96,
        depths=(2, 2, 6, 2),
        num_heads=(4, 8, 16, 32),
        window_size=8,
        mlp_ratio=4.0,
        drop_path_rate=0.1,
        freqm=0,
        timem=0,
        stretch_frames=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer. Received: num_classes={num_classes!r}")
        if method not in HTSAT_METHODS:
            raise ValueError(f"method must be one of {HTSAT_METHODS}. Received: method={method!r}")
        if not isinstance(num_chunks, int) or isinstance(num_chunks, bool) or num_chunks < 1:
            raise ValueError(f"num_chunks must be a positive integer. Received: num_chunks={num_chunks!r}")
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1 or num_chunks % factor:
            raise ValueError(
                f"factor must be a positive integer dividing num_chunks={num_chunks} (a coarse "
                f"spectrogram folds into num_chunks / factor chunks). Received: factor={factor!r}"
            )
        depths, num_heads = tuple(depths), tuple(num_heads)
        if not depths or len(depths) != len(num_heads):
            raise ValueError(
                f"depths and num_heads must be non-empty and of equal length. Received: depths={depths}, "
                f"num_heads={num_heads}"
            )
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size must be a positive integer. Received: patch_size={patch_size!r}")
        if not isinstance(target_frames, int) or target_frames < 1:
            raise ValueError(f"target_frames must be a positive integer. Received: target_frames={target_frames!r}")
        reduction = patch_size * 2 ** (len(depths) - 1)
        multiple = self.frames_multiple(depths, num_chunks, patch_size)
        if target_frames % multiple or num_mel_bins % reduction:
            raise ValueError(
                f"target_frames must be divisible by num_chunks · patch_size · 2^(stages − 1) = "
                f"{multiple} and num_mel_bins by {reduction}. Received: "
                f"target_frames={target_frames}, num_mel_bins={num_mel_bins}"
            )
        if stretch_frames is not None and (not isinstance(stretch_frames, int) or isinstance(stretch_frames, bool)
                                           or not 1 < stretch_frames <= target_frames):
            raise ValueError(f"stretch_frames must be an integer in (1, target_frames={target_frames}] or None. "
                             f"Received: stretch_frames={stretch_frames!r}")
        self.num_classes = num_classes
        self.method = method
        self.factor = factor
        self.sample_rate = sample_rate
        self.target_frames = target_frames
        self.stretch_frames = stretch_frames
        self.num_mel_bins = num_mel_bins
        self.fft_length = fft_length
        self.hop_length = hop_length
        self.low_freq = low_freq
        self.high_freq = high_freq
        self.num_chunks = num_chunks
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depths = depths
        self.num_heads = num_heads
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        self.drop_path_rate = drop_path_rate
        self.freqm = freqm
        self.timem = timem
        self.seed = seed

        fft = fft_length or round(0.032 * sample_rate)
        hop = hop_length or self.default_hop(sample_rate)
        high = min(14000.0, sample_rate / 2.0) if high_freq is None else high_freq
        fshift = method == "fshift"
        self.frames = target_frames // factor
        self.chunks = num_chunks // factor
        # The frames the mel layer computes, and those the model's image needs.
        computed, wanted = (self.frames, self.frames) if fshift else (target_frames, target_frames)
        if stretch_frames is not None:  # the clip's own frames, stretched (HTS-AT's reshape_wav2img)
            computed = -(-stretch_frames // factor) if fshift else stretch_frames
        self.mel = LogMelSpectrogram(
            sample_rate=sample_rate,
            fft_length=fft,
            hop_length=hop * factor if fshift else hop,
            num_mel_bins=num_mel_bins,
            low_freq=low_freq,
            high_freq=high,
            target_frames=computed,
            name="mel",
        )
        self.stretch = TimeStretch(computed, wanted, name="stretch", dtype="float32") if computed != wanted else None
        self.pooling = TimePooling(1 if fshift else factor, method[:3] if not fshift else "max",
                                   name="time_pooling", dtype="float32")
        # HTS-AT's bn0 normalises each mel bin (BatchNorm2d over the transposed spectrogram).
        self.bn0 = keras.layers.BatchNormalization(axis=-1, momentum=0.9, epsilon=1e-5, name="bn0",
                                                   dtype="float32")
        # The time mask keeps its width in seconds: C× fewer frames per mask in coarse phases.
        # HTS-AT's SpecAugmentation masks two stripes per axis (time_stripes_num=2, freq_stripes_num=2).
        self.spec_augment = SpecAugment(freq_mask=freqm, time_mask=(timem * self.frames) // target_frames,
                                        stripes=2, seed=seed, name="spec_augment", dtype="float32")
        self.fold = SpectrogramFold(self.chunks, name="fold", dtype="float32")
        self.patch_embedding = PatchEmbedding(embed_dim, (patch_size, patch_size), name="patch_embedding")
        self.patch_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="patch_norm")
        grid = (self.chunks * num_mel_bins // patch_size, target_frames // num_chunks // patch_size)
        rates = [drop_path_rate * i / max(sum(depths) - 1, 1) for i in range(sum(depths))]
        self.stage_grids, self.stage_dims = [], []
        self.blocks, self.mergings = [], []
        dim, index = embed_dim, 0
        for stage, (depth, heads) in enumerate(zip(depths, num_heads)):
            self.stage_grids.append(grid)
            self.stage_dims.append(dim)
            blocks = []
            for i in range(depth):
                blocks.append(SwinTransformerBlock(
                    dim, heads, grid, window_size=window_size, shifted=bool(i % 2), mlp_ratio=mlp_ratio,
                    drop_path_rate=rates[index], seed=None if seed is None else seed + 1 + index,
                    name=f"stage_{stage}_block_{i}",
                ))
                index += 1
            self.blocks.append(blocks)
            if stage < len(depths) - 1:
                merging = PatchMerging(dim, grid, name=f"stage_{stage}_merging")
                self.mergings.append(merging)
                grid, dim = merging.output_grid, 2 * dim
        self.num_features = dim
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")
        self.head = TokenSemanticHead(num_classes, grid, self.chunks, name="head")
        self.build()

    @staticmethod
    def frames_multiple(depths, num_chunks=4, patch_size=4):
        """What `target_frames` must be a multiple of: `num_chunks` chunks of whole patches that every
        stage's patch merging halves, `num_chunks · patch_size · 2^(stages − 1)`."""
        return num_chunks * patch_size * 2 ** (len(depths) - 1)

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """A preset size (`base`: HTS-AT's; `tiny`: for CPU tests), with overrides."""
        if preset not in HTSAT_PRESETS:
            raise ValueError(f"preset must be one of {sorted(HTSAT_PRESETS)}. Received: preset={preset!r}")
        return cls(**{**HTSAT_PRESETS[preset], **kwargs})

    @property
    def stage_tokens(self):
        """Tokens per Swin stage."""
        return tuple(h * w for h, w in self.stage_grids)

    @property
    def token_grid(self):
        """First-stage token grid `(rows, columns)` (export metadata, as the AST's)."""
        return self.stage_grids[0]

    @property
    def num_patch_tokens(self):
        """Tokens of the first stage (what the patch embedding makes)."""
        return self.stage_tokens[0]

    @staticmethod
    def default_hop(sample_rate):
        """The hop, in samples, when `hop_length` is `None`: 10 ms (HTS-AT: 320 at 32 kHz)."""
        return round(0.010 * sample_rate)

    @property
    def frame_shift_ms(self):
        """Full-resolution hop, ms (what inference and export size their windows by)."""
        return 1000.0 * (self.hop_length or self.default_hop(self.sample_rate)) / self.sample_rate

    @property
    def frame_length_ms(self):
        """Analysis window, ms."""
        return 1000.0 * (self.fft_length or round(0.032 * self.sample_rate)) / self.sample_rate

    @property
    def image_shape(self):
        """`(rows, columns)` of the folded spectrogram image."""
        return (self.chunks * self.num_mel_bins, self.target_frames // self.num_chunks)

    def build(self, input_shape=None):
        if self.built:
            return
        self.bn0.build((None, self.frames, self.num_mel_bins))
        self.patch_embedding.build((None, self.image_shape[1], self.image_shape[0]))
        self.patch_norm.build((None, None, self.embed_dim))
        for stage, blocks in enumerate(self.blocks):
            (h, w), dim = self.stage_grids[stage], self.stage_dims[stage]
            for block in blocks:
                block.build((None, h * w, dim))
            if stage < len(self.mergings):
                self.mergings[stage].build((None, h * w, dim))
        self.norm.build((None, None, self.num_features))
        self.head.build((None, None, self.num_features))
        self.built = True

    def spectrogram(self, inputs, training=False):
        """The compressed, normalised, augmented log-mel spectrogram `(batch, T / C, F)`."""
        x = self.mel(inputs)
        if self.stretch is not None:
            # Before bn0 here, after it in the reference: a per-bin affine map commutes with a
            # resize whose weights sum to 1 (bn0's batch statistics in training differ slightly).
            x = self.stretch(x)
        x = self.bn0(self.pooling(x), training=training)
        return self.spec_augment(x, training=training)

    def framewise(self, inputs, training=False):
        """Framewise logits `(batch, steps, num_classes)` (sigmoid them for detection)."""
        x = self.fold(self.spectrogram(inputs, training=training))
        x = ops.cast(x, self.compute_dtype)
        x = self.patch_norm(self.patch_embedding(x))
        for stage, blocks in enumerate(self.blocks):
            for block in blocks:
                x = block(x, training=training)
            if stage < len(self.mergings):
                x = self.mergings[stage](x)
        return self.head(self.norm(x))

    def call(self, inputs, training=False):
        return ops.mean(self.framewise(inputs, training=training), axis=1)

    def compute_output_shape(self, input_shape):
        return (None, self.num_classes)
