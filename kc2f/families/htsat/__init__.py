"""`--model htsat`: HTS-AT (https://arxiv.org/abs/2202.00874), Swin stages over a folded
log-mel spectrogram and a token-semantic head, with coarse-to-fine front ends.

- `Htsat`, `HTSAT_METHODS`, `HTSAT_PRESETS`: the model, its front ends and its sizes.
- `HtsatOptions`: its options (`model_options`).
- `SpectrogramFold`, `TokenSemanticHead`: its own layers.
- `htsat_flops`: its closed-form FLOPs; `transfer_swin_weights`: its phase-switch transfer;
  `htsat_checkpoint`: the reference HTS-AT checkpoints.
- `HtsatFamily`: the family object.
"""

from kc2f.families.htsat.htsat import HTSAT_METHODS, HTSAT_PRESETS, Htsat
from kc2f.families.htsat.htsat_family import HtsatFamily
from kc2f.families.htsat.htsat_options import HtsatOptions
from kc2f.families.htsat.htsat_transfer import transfer_swin_weights
from kc2f.families.htsat.spectrogram_fold import SpectrogramFold
from kc2f.families.htsat.token_semantic_head import TokenSemanticHead

__all__ = ["HTSAT_METHODS", "HTSAT_PRESETS", "Htsat", "HtsatFamily", "HtsatOptions", "SpectrogramFold",
           "TokenSemanticHead", "transfer_swin_weights"]
