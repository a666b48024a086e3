"""`HtsatOptions`: HTS-AT's options (`--model htsat`)."""

import dataclasses

from kc2f.options import ModelOptions, option


@dataclasses.dataclass(frozen=True)
class HtsatOptions(ModelOptions):
    """HTS-AT's size without a preset (Swin stages of two blocks, heads doubling per stage; window 8,
    patch 4, 64 mel bins) and the stretch of a short clip to the model's frames."""

    hidden_dim: int = option(128, "width of the first Swin stage, doubled per stage (ignored with a preset)",
                             int, at_least=1)
    depth: int = option(4, "Swin stages of two blocks each (ignored with a preset)", int, at_least=1)
    num_heads: int = option(4, "attention heads of the first stage, doubled per stage (ignored with a preset)",
                            int, at_least=1)
    mlp_ratio: float = option(4.0, "MLP width / token width", float, above=0.0)
    stretch_frames: int = option(None, "the clip's own frames, computed and then stretched (bicubic) to the "
                                 "model's, as HTS-AT's reshape_wav2img (None: zero-padded; set automatically to "
                                 "the clip's frames, e.g. 1001 of 1024, when --init is HTS-AT's own checkpoint; "
                                 "the model's frames: no stretch)", int, nullable=True, at_least=2)
