"""`AstEncoderOptions`: the options of the AST encoder, shared by the families built on it."""

import dataclasses

from kc2f.options import ModelOptions, option


@dataclasses.dataclass(frozen=True)
class AstEncoderOptions(ModelOptions):
    """The AST encoder's options (`kc2f.families.ast.AstBackbone`): size, patches, prefix tokens, dropout.

    The AST classifier (`AstOptions`) and SSAST's pretrainer (`SsastOptions`)
    add their own. A `--preset` fixes the width, depth and heads.
    """

    hidden_dim: int = option(128, "token width (ignored with a preset)", int, at_least=1)
    depth: int = option(4, "transformer blocks (ignored with a preset)", int, at_least=1)
    num_heads: int = option(4, "attention heads (ignored with a preset)", int, at_least=1)
    mlp_ratio: float = option(4.0, "MLP width / token width", float, above=0.0)
    patch_size: tuple = option((16, 16), "full-resolution (freq, time) patch size", "ints")
    patch_stride: tuple = option(None, "full-resolution (freq, time) patch stride (None: the patch size; "
                                 "AST's AudioSet models overlap with 10,10)", "ints", nullable=True)
    num_prefix_tokens: int = option(2, "cls + distillation tokens (AST: 2; ViT: 1)", int, at_least=0)
    dropout_rate: float = option(0.0, "dropout inside the transformer blocks", float, at_least=0.0, below=1.0)
