"""`AstBackbone`: the AST encoder of one (method, factor) phase, shared by the AST's task models."""

import keras
from keras import ops

from kc2f.families.ast.front_end import front_end
from kc2f.layers import (
    KaldiFbank,
    PatchEmbedding,
    PositionEmbedding,
    SpecAugment,
    TimePooling,
    TransformerBlock,
)
from kc2f.models.constructor_config import ConstructorConfig


@keras.saving.register_keras_serializable(package="kc2f")
class AstBackbone(ConstructorConfig, keras.Model):
    """The AST encoder: waveform → tokens, for one phase of *From Coarse to Fine*.

    Waveform → `KaldiFbank` (float32, on the accelerator) → the compression
    front end of (method, factor) (`front_end`) → `SpecAugment` (training only)
    → `PatchEmbedding` → prefix tokens and
    position embedding → pre-norm `TransformerBlock`s → LayerNorm. AST (Gong et
    al., https://arxiv.org/abs/2104.01778) with the temporal compression of
    Feng et al. (https://arxiv.org/abs/2401.08415).

    keras-hub splits a model into a backbone and a task the same way. Here the
    tasks subclass the backbone (`AudioSpectrogramTransformer` adds the
    classifier head, `SsastPretrainer` the mask embedding and prediction heads)
    instead of holding it as a sub-model, so that the encoder's weights keep
    their top-level names (`patch_embedding`, `position_embedding`,
    `block_{i}`, `norm`) in every task: the phase switch and checkpoint
    conversion match weights by those names, an SSAST-pretrained encoder hands
    over to an AST classifier by them, and run directories written before the
    split still load and resume.

    Args:
        method: `fshift`, `maxpool`, `avgpool`, `patch-bl` or `patch-pi`.
        factor: temporal compression factor C of this phase (1 = full resolution).
        sample_rate: waveform sampling rate, Hz.
        target_frames: fbank frames of a full-resolution clip (1024 for 10 s).
        num_mel_bins: mel filters.
        frame_length_ms, frame_shift_ms: full-resolution fbank framing.
        fbank_mean, fbank_std: normalisation statistics (`None`: none).
        patch_size, patch_stride: full-resolution `(freq, time)` patch and
            stride (`None`: the patch size, no overlap).
        hidden_dim, depth, num_heads, mlp_ratio: transformer size.
        dropout_rate: dropout inside the blocks.
        num_prefix_tokens: 2 (cls + distillation) as AST, or 1, or 0.
        freqm, timem: SpecAugment maximum widths (full resolution).
        spec_augment: whether the backbone has a SpecAugment layer at all
            (SSAST pretrains without one).
        seed: seed of SpecAugment's generator.

    Input: waveforms `(batch, samples)` or `{"waveform": (batch, samples),
    "length": (batch,)}`. Output (`call`): the encoded tokens `(batch,
    num_prefix_tokens + patches, hidden_dim)`, prefix tokens first.
    """

    config_attributes = {"spec_augment": "spec_augment_on"}  # `self.spec_augment` is the layer

    def __init__(
        self,
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
        freqm=0,
        timem=0,
        spec_augment=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
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
        self.freqm = freqm
        self.timem = timem
        self.spec_augment_on = spec_augment
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
        if spec_augment:
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
        if type(self) is AstBackbone:
            # A task builds once its own layers exist (its `__init__` ends with `self.build()`).
            self.build()

    @property
    def num_patch_tokens(self):
        return self.token_grid[0] * self.token_grid[1]

    def build(self, input_shape=None):
        if self.built:
            return
        self.patch_embedding.build((None, self.front_end.frames, self.num_mel_bins))
        self.build_patch_stage()
        self.position_embedding.build((None, self.num_patch_tokens, self.hidden_dim))
        tokens = (None, self.position_embedding.num_tokens, self.hidden_dim)
        for block in self.blocks:
            block.build(tokens)
        self.norm.build(tokens)
        self.build_task()
        self.built = True

    def build_patch_stage(self):
        """Creates a task's weights that act on the patch tokens, after the patch embedding's
        (the creation order fixes what a seeded initialiser draws); none here."""

    def build_task(self):
        """Builds a task's layers after the encoder's; none here."""

    def spectrogram(self, inputs, training=False):
        """The (compressed, augmented) spectrogram `(batch, frames, mel)` the patch embedding sees."""
        x = self.pooling(self.fbank(inputs))
        if not self.spec_augment_on:
            return x
        return self.spec_augment(x, training=training)

    def patch_tokens(self, spectrogram):
        """Patch tokens `(batch, patches, hidden_dim)` of a spectrogram, in the compute dtype."""
        return self.patch_embedding(ops.cast(spectrogram, self.compute_dtype))

    def encode(self, patch_tokens, training=False):
        """Prefix tokens and positions, the blocks and the final LayerNorm: `(batch, tokens, hidden_dim)`."""
        x = self.position_embedding(patch_tokens)
        for block in self.blocks:
            x = block(x, training=training)
        return self.norm(x)

    def call(self, inputs, training=False):
        return self.encode(self.patch_tokens(self.spectrogram(inputs, training=training)), training=training)

    def compute_output_shape(self, input_shape):
        return (None, self.position_embedding.num_tokens, self.hidden_dim)
