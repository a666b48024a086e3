"""SSAST: the AST pretrained without labels by masked spectrogram patch modelling."""

import keras
from keras import ops

from kc2f.families.ast.ast_backbone import AstBackbone
from kc2f.families.ssast.cluster_masking import ClusterMasking
from kc2f.families.ssast.masked_patch_losses import (
    GENERATIVE_WEIGHT,
    info_nce,
    patch_mse,
    spectrogram_patches,
)

PRETRAINING_METHODS = ("fshift", "maxpool", "avgpool")
SSAST_MASK_SHARE = 400 / 512  # SSAST-Base-Patch-400: 400 of the 512 patches of a 10 s clip
SSAST_CLUSTER_SIDES = (3, 5)  # gen_maskid_patch: randrange(3) + 3 per clip
OUTPUTS = ("nce", "mse", "masked_accuracy")


@keras.saving.register_keras_serializable(package="kc2f")
class SsastPretrainer(AstBackbone):
    """The AST encoder (`AstBackbone`) with SSAST's mask embedding and two prediction heads, for one phase.

    SSAST (Gong et al., https://arxiv.org/abs/2110.09784): waveform →
    `KaldiFbank` → the compression front-end of *From Coarse to Fine*
    (https://arxiv.org/abs/2401.08415; `fshift`, `maxpool` or `avgpool`, which
    keep the patch size, so the patches to predict have the same size at every
    factor) → `PatchEmbedding`; a `ClusterMasking` share of the patch tokens
    is replaced by a learned mask embedding; prefix tokens and positions →
    pre-norm `TransformerBlock`s → LayerNorm; at the masked positions two
    heads (Linear D→D, ReLU, Linear D→patch pixels) predict the patch: one for
    InfoNCE against the clip's other masked patches, one for MSE
    reconstruction. The encoder's weights have the AST's names
    (`patch_embedding`, `position_embedding`, `block_{i}`, `norm`), so the
    phase switch (`kc2f.families.ast.transfer_weights`) and fine-tuning
    (`kc2f.families.ast.initialize_from` into an `AudioSpectrogramTransformer`)
    read them as an AST's; `mask_embedding`, `discriminative_head_*` and
    `generative_head_*` are the pretraining-only weights.

    One forward pass and one mask serve both objectives (SSAST's reference
    code runs the encoder twice per step, once per objective, each with its
    own mask).

    Args:
        method: `fshift`, `maxpool` or `avgpool`.
        factor: temporal compression factor C of this phase.
        sample_rate, target_frames, num_mel_bins, frame_length_ms,
            frame_shift_ms, fbank_mean, fbank_std: the fbank, as the AST's.
        patch_size: `(freq, time)` patch; no overlap (SSAST pretrains with
            stride = patch size).
        hidden_dim, depth, num_heads, mlp_ratio, dropout_rate,
            num_prefix_tokens: the encoder, as the AST's.
        mask_share: share of the patches masked per clip at every factor
            (SSAST: 400/512); `round(mask_share · patches)` are masked.
        cluster: side of the mask clusters; `None` (default) follows SSAST per
            variant: frame patches (spanning every mel bin, a 1 × T grid) are
            masked as plain random frames, square patches in clusters whose
            side each clip draws from 3..5 (`ClusterMasking`).
        generative_weight: λ of `nce + λ · mse` (SSAST: 10).
        seed: seed of the mask generator.

    Input: waveforms `(batch, samples)` or `{"waveform", "length"}` as the
    AST's. Output: `(batch, 3)` float32, per clip `[nce, mse,
    masked_accuracy]`; `compute_loss` turns it into the joint loss (labels
    are ignored).
    """

    def __init__(
        self,
        method="fshift",
        factor=1,
        sample_rate=16000,
        target_frames=1024,
        num_mel_bins=128,
        frame_length_ms=25.0,
        frame_shift_ms=10.0,
        fbank_mean=None,
        fbank_std=None,
        patch_size=(16, 16),
        hidden_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        dropout_rate=0.0,
        num_prefix_tokens=2,
        mask_share=SSAST_MASK_SHARE,
        cluster=None,
        generative_weight=GENERATIVE_WEIGHT,
        seed=None,
        **kwargs,
    ):
        if method not in PRETRAINING_METHODS:
            raise ValueError(
                f"method must be one of {PRETRAINING_METHODS} for masked patch pretraining (the patch "
                f"methods change the patch size, i.e. the prediction targets). Received: method={method!r}"
            )
        if not 0.0 < mask_share < 1.0:
            raise ValueError(f"mask_share must be in (0, 1). Received: mask_share={mask_share}")
        if generative_weight < 0:
            raise ValueError(f"generative_weight must be >= 0. Received: generative_weight={generative_weight}")
        # SSAST pretrains with stride = patch size and without SpecAugment.
        super().__init__(
            method=method, factor=factor, sample_rate=sample_rate, target_frames=target_frames,
            num_mel_bins=num_mel_bins, frame_length_ms=frame_length_ms, frame_shift_ms=frame_shift_ms,
            fbank_mean=fbank_mean, fbank_std=fbank_std, patch_size=patch_size, patch_stride=patch_size,
            hidden_dim=hidden_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            dropout_rate=dropout_rate, num_prefix_tokens=num_prefix_tokens, spec_augment=False, seed=seed,
            **kwargs,
        )
        self.mask_share = float(mask_share)
        self.cluster = cluster
        self.generative_weight = float(generative_weight)
        self.num_masked = max(1, min(self.num_patch_tokens - 1, round(self.mask_share * self.num_patch_tokens)))
        if cluster is not None:
            sides = dict(cluster=cluster)
        elif self.token_grid[0] == 1:
            sides = dict(cluster=1)
        else:
            sides = dict(cluster=SSAST_CLUSTER_SIDES[0], max_cluster=SSAST_CLUSTER_SIDES[1])
        self.masking = ClusterMasking(self.token_grid, self.num_masked, **sides, seed=seed, name="masking")
        pixels = self.patch_size[0] * self.patch_size[1]
        self.discriminative_head_hidden = keras.layers.Dense(hidden_dim, activation="relu",
                                                             name="discriminative_head_hidden")
        self.discriminative_head = keras.layers.Dense(pixels, name="discriminative_head", dtype="float32")
        self.generative_head_hidden = keras.layers.Dense(hidden_dim, activation="relu", name="generative_head_hidden")
        self.generative_head = keras.layers.Dense(pixels, name="generative_head", dtype="float32")
        self.build()

    def build_patch_stage(self):
        # SSAST: a learned mask embedding, Xavier-normal initialised (following BEiT).
        self.mask_embedding = self.add_weight(name="mask_embedding", shape=(1, 1, self.hidden_dim),
                                              initializer="glorot_normal")

    def build_task(self):
        masked = (None, self.num_masked, self.hidden_dim)
        for hidden, head in ((self.discriminative_head_hidden, self.discriminative_head),
                             (self.generative_head_hidden, self.generative_head)):
            hidden.build(masked)
            head.build(masked)

    def masked_outputs(self, inputs, indices=None, training=False):
        """`(discriminative, generative, targets)` predictions and true patches at the masked positions.

        Args:
            inputs: waveforms, as `call`.
            indices: `(batch, num_masked)` masked patches; `None` draws them
                with the layer's generator.
            training: dropout.

        Returns:
            three `(batch, num_masked, patch_freq · patch_time)` float32 tensors.
        """
        spec = self.spectrogram(inputs)
        targets = ops.stop_gradient(spectrogram_patches(spec, self.patch_size))
        x = self.patch_tokens(spec)
        if indices is None:
            indices, mask = self.masking(x)
        else:
            indices = ops.cast(indices, "int32")
            mask = ops.sum(ops.one_hot(indices, self.num_patch_tokens, dtype="float32"), axis=1)
        mask = ops.cast(mask[:, :, None], x.dtype)
        x = x * (1 - mask) + mask * ops.cast(self.mask_embedding, x.dtype)
        x = self.encode(x, training=training)[:, self.num_prefix_tokens:]
        picked = ops.take_along_axis(x, indices[:, :, None], axis=1)
        targets = ops.take_along_axis(targets, indices[:, :, None], axis=1)
        discriminative = self.discriminative_head(self.discriminative_head_hidden(picked))
        generative = self.generative_head(self.generative_head_hidden(picked))
        return discriminative, generative, targets

    def call(self, inputs, training=False):
        discriminative, generative, targets = self.masked_outputs(inputs, training=training)
        nce, accuracy = info_nce(discriminative, targets)
        mse = patch_mse(generative, targets)
        return ops.stack([nce, mse, accuracy], axis=-1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """SSAST's joint loss `mean(nce) + λ · mean(mse)`; the labels `y` are ignored."""
        del x, y, sample_weight, training
        return ops.mean(y_pred[:, 0]) + self.generative_weight * ops.mean(y_pred[:, 1])

    def compute_output_shape(self, input_shape):
        return (None, len(OUTPUTS))
