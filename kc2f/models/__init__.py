"""The AST classifier, its size presets and its closed-form FLOPs.

- `AudioSpectrogramTransformer`: the AST with the paper's compression front-ends.
- `flops`: closed-form training FLOPs of the AST per sample.
"""

from kc2f.models.audio_spectrogram_transformer import (
    METHODS,
    AudioSpectrogramTransformer,
    FrontEnd,
    front_end,
)
from kc2f.models.presets import PRESETS

__all__ = ["METHODS", "PRESETS", "AudioSpectrogramTransformer", "FrontEnd", "front_end"]
