"""kc2f: coarse-to-fine training of Audio Spectrogram Transformers.

Implements *From Coarse to Fine: Efficient Training for Audio Spectrogram
Transformers* (Feng, Erol, Chung, Senocak, ICASSP 2024,
https://arxiv.org/abs/2401.08415) as a Keras 3 multi-backend application.

The package root stays light: importing ``kc2f`` imports neither Keras nor
TensorFlow, so ``kc2f --version`` and ``import kc2f`` are instant and silent.
"""

import os as _os

# TensorFlow's C++ INFO and WARNING lines ("This TensorFlow binary is optimized ...") are noise
# for users (errors still show; Python warnings are untouched). A user's own setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
