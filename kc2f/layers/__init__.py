"""Keras layers the model families build from: the paper's front-ends and the transformer parts.

- `KaldiFbank`: Kaldi log-mel fbank on the accelerator (frame shift = `fshift`).
- `LogMelSpectrogram`: torchlibrosa's log-mel (HTS-AT's front end).
- `TimePooling`: max/avg pooling along time (`maxpool`, `avgpool`); `TimeStretch`.
- `PatchEmbedding`: rectangular patches (`patch-bl`, `patch-pi` use 16 × 16C).
- `PositionEmbedding`, `TransformerBlock`, `SpecAugment`: the ViT around them.
- `SwinTransformerBlock`, `PatchMerging`: Swin's windowed attention and downsampling.

Layers that only one family uses live in its folder (`kc2f.families.htsat`'s
`SpectrogramFold` and `TokenSemanticHead`, `kc2f.families.ssast`'s `ClusterMasking`).
"""

from kc2f.layers.kaldi_fbank import KaldiFbank
from kc2f.layers.log_mel_spectrogram import LogMelSpectrogram
from kc2f.layers.patch_embedding import PatchEmbedding
from kc2f.layers.patch_merging import PatchMerging
from kc2f.layers.position_embedding import PositionEmbedding
from kc2f.layers.spec_augment import SpecAugment
from kc2f.layers.swin_transformer_block import SwinTransformerBlock
from kc2f.layers.time_pooling import TimePooling
from kc2f.layers.time_stretch import TimeStretch
from kc2f.layers.transformer_block import TransformerBlock

__all__ = [
    "KaldiFbank",
    "LogMelSpectrogram",
    "PatchEmbedding",
    "PatchMerging",
    "PositionEmbedding",
    "SpecAugment",
    "SwinTransformerBlock",
    "TimePooling",
    "TimeStretch",
    "TransformerBlock",
]
