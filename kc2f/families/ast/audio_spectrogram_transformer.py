"""The Audio Spectrogram Transformer classifier with the paper's temporal-compression front-ends."""

import keras
from keras import ops

from kc2f.families.ast.ast_backbone import AstBackbone
from kc2f.families.ast.ast_presets import AST_PRESETS
from kc2f.models.preset_io import is_preset_path, load_preset, save_to_preset

POOLINGS = ("prefix", "patch")  # what the classifier head reads (AudioSpectrogramTransformer's `pooling`)


@keras.saving.register_keras_serializable(package="kc2f")
class AudioSpectrogramTransformer(AstBackbone):
    """AST classifier on raw waveforms, built for one (method, factor) phase.

    `AstBackbone` (waveform → `KaldiFbank` (float32, on the accelerator) →
    compression front-end → `SpecAugment` (training only) → `PatchEmbedding` →
    cls + distillation tokens and positional embedding → pre-norm
    `TransformerBlock`s → LayerNorm) → mean of the two prefix tokens →
    LayerNorm + Dense head (logits, float32). This is AST
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

    # `self.pooling` is the backbone's time-pooling layer.
    config_attributes = {**AstBackbone.config_attributes, "pooling": "pooling_mode"}

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
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
        if not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer. Received: num_classes={num_classes}")
        super().__init__(
            method=method, factor=factor, sample_rate=sample_rate, target_frames=target_frames,
            num_mel_bins=num_mel_bins, frame_length_ms=frame_length_ms, frame_shift_ms=frame_shift_ms,
            fbank_mean=fbank_mean, fbank_std=fbank_std, patch_size=patch_size, patch_stride=patch_stride,
            hidden_dim=hidden_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            dropout_rate=dropout_rate, num_prefix_tokens=num_prefix_tokens, freqm=freqm, timem=timem,
            seed=seed, **kwargs,
        )
        self.num_classes = num_classes
        self.pooling_mode = pooling
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

    def build_task(self):
        self.head_norm.build((None, self.hidden_dim))
        self.head.build((None, self.hidden_dim))

    def call(self, inputs, training=False):
        x = super().call(inputs, training=training)
        if self.pooling_mode == "patch":
            x = ops.mean(x[:, self.num_prefix_tokens:], axis=1)
        elif self.num_prefix_tokens:
            x = ops.mean(x[:, : self.num_prefix_tokens], axis=1)
        else:
            x = ops.mean(x, axis=1)
        return self.head(self.head_norm(x))

    def compute_output_shape(self, input_shape):
        return (None, self.num_classes)
