"""`kc2f pretrain` (`model: ssast`): SSAST's masked patch modelling (https://arxiv.org/abs/2110.09784)
on the AST encoder.

- `SsastPretrainer`, `PRETRAINING_METHODS`: the AST encoder with SSAST's prediction heads.
- `ClusterMasking`: its clustered patch masks; `masked_patch_losses`: InfoNCE and MSE.
- `ssast_flops`: its closed-form FLOPs per sample.
- `SsastOptions`: its options (`model_options`: the encoder's and the masking).
- `SsastFamily`: the family object.
"""

from kc2f.families.ssast.cluster_masking import ClusterMasking
from kc2f.families.ssast.ssast_family import SsastFamily
from kc2f.families.ssast.ssast_options import SsastOptions
from kc2f.families.ssast.ssast_pretrainer import PRETRAINING_METHODS, SsastPretrainer

__all__ = ["PRETRAINING_METHODS", "ClusterMasking", "SsastFamily", "SsastOptions", "SsastPretrainer"]
