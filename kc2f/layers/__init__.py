"""Keras layers of the AST and of the paper's temporal-compression front-ends.

- `KaldiFbank`: Kaldi log-mel fbank on the accelerator (frame shift = `fshift`).
- `TimePooling`: max/avg pooling along time (`maxpool`, `avgpool`).
- `PatchEmbedding`: rectangular patches (`patch-bl`, `patch-pi` use 16 × 16C).
- `PositionEmbedding`, `TransformerBlock`, `SpecAugment`: the ViT around them.
- `ClusterMasking`: SSAST's clustered patch masks for masked patch modelling.
- HTS-AT's: `LogMelSpectrogram` (torchlibrosa's log-mel), `SpectrogramFold`
  (time chunks stacked along frequency), `SwinTransformerBlock`, `PatchMerging`,
  `TokenSemanticHead`.
"""

from kc2f.layers.cluster_masking import ClusterMasking
from kc2f.layers.kaldi_fbank import KaldiFbank
from kc2f.layers.log_mel_spectrogram import LogMelSpectrogram
from kc2f.layers.patch_embedding import PatchEmbedding
from kc2f.layers.patch_merging import PatchMerging
from kc2f.layers.position_embedding import PositionEmbedding
from kc2f.layers.spec_augment import SpecAugment
from kc2f.layers.spectrogram_fold import SpectrogramFold
from kc2f.layers.swin_transformer_block import SwinTransformerBlock
from kc2f.layers.time_pooling import TimePooling
from kc2f.layers.time_stretch import TimeStretch
from kc2f.layers.token_semantic_head import TokenSemanticHead
from kc2f.layers.transformer_block import TransformerBlock

__all__ = [
    "ClusterMasking",
    "KaldiFbank",
    "LogMelSpectrogram",
    "PatchEmbedding",
    "PatchMerging",
    "PositionEmbedding",
    "SpecAugment",
    "SpectrogramFold",
    "SwinTransformerBlock",
    "TimePooling",
    "TimeStretch",
    "TokenSemanticHead",
    "TransformerBlock",
]
