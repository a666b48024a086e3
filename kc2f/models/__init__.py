"""The AST classifier and its size presets."""

from kc2f.models.audio_spectrogram_transformer import (
    METHODS,
    AudioSpectrogramTransformer,
    FrontEnd,
    front_end,
)
from kc2f.models.presets import PRESETS

__all__ = ["METHODS", "PRESETS", "AudioSpectrogramTransformer", "FrontEnd", "front_end"]
