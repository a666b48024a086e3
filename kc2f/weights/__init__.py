"""Weight handling every model family shares: pure resampling functions, checkpoint readers and
`TransferReport`. Each family's own transfer and checkpoint conversion live in its folder
(`kc2f.families.ast.ast_transfer`, `kc2f.families.htsat.htsat_transfer`, ...)."""

from kc2f.weights.resample import (
    linear_resize_matrix,
    resample_position_embedding,
    resize_patch_kernel_bilinear,
    resize_patch_kernel_pi,
    resize_relative_position_bias,
)
from kc2f.weights.transfer_report import TransferReport

__all__ = [
    "TransferReport",
    "linear_resize_matrix",
    "resample_position_embedding",
    "resize_patch_kernel_bilinear",
    "resize_patch_kernel_pi",
    "resize_relative_position_bias",
]
