"""The AST classifier, its size presets and its closed-form FLOPs.

- `AudioSpectrogramTransformer`: the AST with the paper's compression front-ends.
- `SsastPretrainer`: the AST encoder with SSAST's masked patch modelling heads.
- `flops`: closed-form training FLOPs of the AST per sample.
- `Htsat`: HTS-AT (Swin stages, token-semantic head) with coarse-to-fine front-ends;
  `htsat_flops`: its closed-form FLOPs.
"""

from kc2f.models.audio_spectrogram_transformer import (
    METHODS,
    AudioSpectrogramTransformer,
    FrontEnd,
    front_end,
)
from kc2f.models.htsat import HTSAT_METHODS, HTSAT_PRESETS, Htsat
from kc2f.models.presets import PRESETS
from kc2f.models.ssast_pretrainer import PRETRAINING_METHODS, SsastPretrainer

__all__ = [
    "HTSAT_METHODS",
    "HTSAT_PRESETS",
    "METHODS",
    "PRESETS",
    "PRETRAINING_METHODS",
    "AudioSpectrogramTransformer",
    "FrontEnd",
    "Htsat",
    "SsastPretrainer",
    "front_end",
]
