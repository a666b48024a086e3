"""The Audio Spectrogram Transformer with the paper's temporal-compression front-ends."""

import dataclasses

import keras
from keras import ops

from kc2f.families.ast.ast_presets import AST_PRESETS
from kc2f.layers import (
    KaldiFbank,
    PatchEmbedding,
    PositionEmbedding,
    SpecAugment,
    TimePooling,
    TransformerBlock,
)
from kc2f.models.preset_io import is_preset_path, load_preset, save_to_preset

AST_METHODS = ("fshift", "maxpool", "avgpool", "patch-bl", "patch-pi")
POOLINGS = ("prefix", "patch")  # what the classifier head reads (AudioSpectrogramTransformer's `pooling`)


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """What a (method, factor) pair does before the transformer.

    Attributes:
        frame_shift_ms: fbank frame shift.
        fbank_frames: frames the fbank is padded/cropped to.
        pool_factor: time-pooling factor applied to the fbank (1 = none).
        pool_mode: `"max"` or `"avg"`.
        patch_size, patch_stride: `(freq, time)` of the patch embedding.
        frames: frames of the spectrogram that reaches the patch embedding.
    """

    frame_shift_ms: float
    fbank_frames: int
    pool_factor: int
    pool_mode: str
    patch_size: tuple
    patch_stride: tuple
    frames: int


def front_end(method, factor, target_frames, frame_shift_ms, patch_size, patch_stride):
    """Resolves the paper's compression method at factor C into a `FrontEnd`.

    *From Coarse to Fine* (https://arxiv.org/abs/2401.08415), §2: `fshift`
    multiplies the frame shift by C and targets `target_frames / C` frames;
    `maxpool` / `avgpool` pool the full-resolution fbank C× along time;
    `patch-bl` / `patch-pi` keep the fbank and use patches (and strides) C× wider
    in time. All span the same clip, so a 10 s clip gives 8 × 64/C tokens with
    16×16 patches and 128 mel bins.
    """
    if method not in AST_METHODS:
        raise ValueError(f"method must be one of {AST_METHODS}. Received: method={method!r}")
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"factor must be an integer >= 1. Received: factor={factor}")
    if target_frames % factor:
        raise ValueError(
            "target_frames must be divisible by factor. Received: "
            f"target_frames={target_frames}, factor={factor}"
        )
    (pf, pt), (sf, st) = patch_size, patch_stride
    if method == "fshift":
        return FrontEnd(frame_shift_ms * factor, target_frames // factor, 1, "max",
                        (pf, pt), (sf, st), target_frames // factor)
    if method in ("maxpool", "avgpool"):
        return FrontEnd(frame_shift_ms, target_frames, factor, method[:3],
                        (pf, pt), (sf, st), target_frames // factor)
    return FrontEnd(frame_shift_ms, target_frames, 1, "max",
                    (pf, pt * factor), (sf, st * factor), target_frames)


@keras.saving.register_keras_serializable(package="kc2f")
class AudioSpectrogramTransformer(keras.Model):
    """AST classifier on raw waveforms, built for one (method, factor) phase.

    Waveform → `KaldiFbank` (float32, on the accelerator) → compression front-end
    → `SpecAugment` (training only) → `PatchEmbedding` → cls + distillation tokens
    and positional embedding → pre-norm `TransformerBlock`s → LayerNorm → mean of
    the two prefix tokens → LayerNorm + Dense head (logits, float32). This is AST
    (Gong et al., https://arxiv.org/abs/2104.01778) with the temporal compression
    of *From Coarse to Fine* (Feng et al., https://arxiv.org/abs/2401.08415).

    A phase switch is "same config, other factor": build the next phase's model
    with `factor` changed and call `kc2f.families.ast.transfer_weights`.

    Args:
        num_classes: output classes.
        method: one of `fshift`, `maxpool`, `avgpool`, `patch-bl`, `patch-pi`.
        factor: temporal compression factor C of this phase (1 = full resolution).
        sample_rate: waveform sampling rate, Hz.
        target_frames: fbank frames of a full-resolution clip (1024 for 10 s).
        num_mel_bins: mel filters.
        frame_length_ms, frame_shift_ms: full-resolution fbank framing.
        fbank_mean, fbank_std: normalisation statistics (`None`: none).
        patch_size, patch_stride: full-resolution `(freq, time)` patch and stride.
        hidden_dim, depth, num_heads, mlp_ratio: transformer size.
        dropout_rate: dropout inside the blocks.
        num_prefix_tokens: 2 (cls + distillation) as AST, or 1, or 0.
        pooling: what the head reads: `"prefix"` (AST: the mean of the prefix
            tokens; of every token without any) or `"patch"` (SSAST's
            `ft_avgtok`: the mean of the patch tokens, the prefix tokens
            staying in the sequence).
        freqm, timem: SpecAugment maximum widths of the recipe (full resolution).
        seed: seed of SpecAugment's generator.

    Input: waveforms `(batch, samples)` or `{"waveform": (batch, samples),
    "length": (batch,)}`. Output: logits `(batch, num_classes)`, float32.

    Example:
        >>> model = AudioSpectrogramTransformer.from_preset(
        ...     "tiny", num_classes=10, method="maxpool", factor=2)
        >>> model.token_grid
        (8, 32)
    """

    def __init__(
        self,
        num_classes,
        method="maxpool",
        factor=1,
        sample_rate=16000,
        target_frames=1024,
        num_mel_bins=128,
        frame_length_ms=25.0,
        frame_shift_ms=10.0,
        fbank_mean=None,
        fbank_std=None,
        patch_size=(16, 16),
        patch_stride=None,
        hidden_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        dropout_rate=0.0,
        num_prefix_tokens=2,
        pooling="prefix",
        freqm=0,
        timem=0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
        if not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer. Received: num_classes={num_classes}")
        if not isinstance(target_frames, int) or target_frames <= 0:
            raise ValueError(
                f"target_frames must be a positive integer. Received: target_frames={target_frames}"
            )
        if not isinstance(depth, int) or depth <= 0:
            raise ValueError(f"depth must be a positive integer. Received: depth={depth}")
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive. Received: mlp_ratio={mlp_ratio}")
        if num_prefix_tokens not in (0, 1, 2):
            raise ValueError(
                f"num_prefix_tokens must be 0, 1 or 2. Received: num_prefix_tokens={num_prefix_tokens}"
            )
        patch_size = tuple(patch_size)
        patch_stride = patch_size if patch_stride is None else tuple(patch_stride)
        self.num_classes = num_classes
        self.method = method
        self.factor = factor
        self.sample_rate = sample_rate
        self.target_frames = target_frames
        self.num_mel_bins = num_mel_bins
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        self.fbank_mean = fbank_mean
        self.fbank_std = fbank_std
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        self.hidden_dim = hidden_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.dropout_rate = dropout_rate
        self.num_prefix_tokens = num_prefix_tokens
        self.pooling_mode = pooling
        self.freqm = freqm
        self.timem = timem
        self.seed = seed

        plan = front_end(method, factor, target_frames, frame_shift_ms, patch_size, patch_stride)
        self.front_end = plan
        self.fbank = KaldiFbank(
            sample_rate=sample_rate,
            num_mel_bins=num_mel_bins,
            frame_length_ms=frame_length_ms,
            frame_shift_ms=plan.frame_shift_ms,
            target_frames=plan.fbank_frames,
            mean=fbank_mean,
            std=fbank_std,
            name="fbank",
        )
        # The front-end stays float32 under a mixed policy; tokens go bf16 at the patch embedding.
        self.pooling = TimePooling(
            plan.pool_factor, plan.pool_mode, name="time_pooling", dtype="float32"
        )
        # SpecAugment's time mask keeps its width in seconds: frames shrink C× in
        # fshift/pool phases, and stay put for the wide-patch methods.
        self.spec_augment = SpecAugment(
            freq_mask=freqm,
            time_mask=(timem * plan.frames) // target_frames,
            seed=seed,
            name="spec_augment",
            dtype="float32",
        )
        self.patch_embedding = PatchEmbedding(
            hidden_dim, plan.patch_size, plan.patch_stride, name="patch_embedding"
        )
        self.token_grid = self.patch_embedding.grid_shape(plan.frames, num_mel_bins)
        self.position_embedding = PositionEmbedding(
            self.token_grid, num_prefix_tokens, name="position_embedding"
        )
        self.blocks = [
            TransformerBlock(
                hidden_dim, num_heads, int(hidden_dim * mlp_ratio), dropout_rate, name=f"block_{i}"
            )
            for i in range(depth)
        ]
        self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")
        self.head_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="head_norm")
        self.head = keras.layers.Dense(num_classes, name="head", dtype="float32")
        self.build()

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A preset size (`tiny`, `small`, `base`; ViT-Ti/S/B), or a saved model, with overrides.

        Args:
            preset: a size name, or a path: a `save_to_preset` directory, a kc2f
                run directory or export, or a `.keras` file (keras-hub's
                `from_preset` for local presets; see `kc2f.models.preset_io`).
            load_weights: for a saved model, load its weights.
            **kwargs: constructor arguments replacing the preset's.
        """
        if isinstance(preset, str) and preset in AST_PRESETS:
            return cls(**{**AST_PRESETS[preset], **kwargs})
        if not is_preset_path(preset):
            raise ValueError(
                f"preset must be one of {sorted(AST_PRESETS)} or a preset directory. Received: preset={preset!r}"
            )
        model = load_preset(preset, load_weights=load_weights, **kwargs)
        if not isinstance(model, cls):
            raise ValueError(f"{preset} holds a {type(model).__name__}, not a {cls.__name__}.")
        return model

    def save_to_preset(self, preset_dir):
        """Writes this model as a preset directory (`kc2f.models.preset_io.save_to_preset`)."""
        save_to_preset(self, preset_dir)

    @property
    def num_patch_tokens(self):
        return self.token_grid[0] * self.token_grid[1]

    def build(self, input_shape=None):
        if self.built:
            return
        spec = (None, self.front_end.frames, self.num_mel_bins)
        self.patch_embedding.build(spec)
        tokens = (None, self.num_patch_tokens, self.hidden_dim)
        self.position_embedding.build(tokens)
        tokens = (None, self.position_embedding.num_tokens, self.hidden_dim)
        for block in self.blocks:
            block.build(tokens)
        self.norm.build(tokens)
        self.head_norm.build((None, self.hidden_dim))
        self.head.build((None, self.hidden_dim))
        self.built = True

    def spectrogram(self, inputs, training=False):
        """The (compressed, augmented) spectrogram the patch embedding sees."""
        x = self.pooling(self.fbank(inputs))
        return self.spec_augment(x, training=training)

    def call(self, inputs, training=False):
        x = self.spectrogram(inputs, training=training)
        x = ops.cast(x, self.compute_dtype)
        x = self.position_embedding(self.patch_embedding(x))
        for block in self.blocks:
            x = block(x, training=training)
        x = self.norm(x)
        if self.pooling_mode == "patch":
            x = ops.mean(x[:, self.num_prefix_tokens:], axis=1)
        elif self.num_prefix_tokens:
            x = ops.mean(x[:, : self.num_prefix_tokens], axis=1)
        else:
            x = ops.mean(x, axis=1)
        return self.head(self.head_norm(x))

    def compute_output_shape(self, input_shape):
        return (None, self.num_classes)

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
        config.update(
            num_classes=self.num_classes,
            method=self.method,
            factor=self.factor,
            sample_rate=self.sample_rate,
            target_frames=self.target_frames,
            num_mel_bins=self.num_mel_bins,
            frame_length_ms=self.frame_length_ms,
            frame_shift_ms=self.frame_shift_ms,
            fbank_mean=self.fbank_mean,
            fbank_std=self.fbank_std,
            patch_size=self.patch_size,
            patch_stride=self.patch_stride,
            hidden_dim=self.hidden_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            dropout_rate=self.dropout_rate,
            num_prefix_tokens=self.num_prefix_tokens,
            pooling=self.pooling_mode,
            freqm=self.freqm,
            timem=self.timem,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
