"""Weight resampling for phase switches: pure functions, `transfer_weights` (AST) and
`transfer_swin_weights` (HTS-AT); pretrained initialisation."""

from kc2f.weights.resample import (
    linear_resize_matrix,
    resample_position_embedding,
    resize_patch_kernel_bilinear,
    resize_patch_kernel_pi,
    resize_relative_position_bias,
)
from kc2f.weights.swin_transfer import transfer_swin_weights
from kc2f.weights.transfer import TransferReport, transfer_weights
from kc2f.weights.pretrained import initialize_from, is_pretraining_checkpoint  # noqa: E402  (uses transfer)

__all__ = [
    "TransferReport",
    "initialize_from",
    "is_pretraining_checkpoint",
    "linear_resize_matrix",
    "resample_position_embedding",
    "resize_patch_kernel_bilinear",
    "resize_patch_kernel_pi",
    "resize_relative_position_bias",
    "transfer_swin_weights",
    "transfer_weights",
]
