"""`SsastOptions`: SSAST pretraining's options (`kc2f pretrain`, `--model ssast`)."""

import dataclasses

from kc2f.families.ast.ast_encoder_options import AstEncoderOptions
from kc2f.options import option


@dataclasses.dataclass(frozen=True)
class SsastOptions(AstEncoderOptions):
    """The encoder's options (`AstEncoderOptions`) and SSAST's masking (https://arxiv.org/abs/2110.09784)."""

    mask_share: float = option(400 / 512, "share of the patches masked per clip at every factor "
                               "(SSAST: 400 of 512)", float, above=0.0, below=1.0)
    mask_cluster: int = option(None, "side of the square mask clusters (None: SSAST's per variant: plain "
                               "random frames for frame patches, e.g. 128x2; for square patches a side of 3..5 "
                               "drawn per clip)", int, nullable=True, at_least=1)

    def __post_init__(self):
        super().__post_init__()
        if self.patch_stride is not None and self.patch_stride != self.patch_size:
            raise ValueError(
                "SSAST pretrains without patch overlap: patch_stride must equal patch_size "
                f"{list(self.patch_size)}. Received: patch_stride={list(self.patch_stride)}"
            )
