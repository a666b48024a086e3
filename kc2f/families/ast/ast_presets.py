"""Size presets of the AST (ViT-Ti/S/B widths, 12 blocks) and a test-sized one.

DeiT (https://arxiv.org/abs/2012.12877) Table 1 gives the tiny/small/base widths
and heads; AST-Base is the `base` preset.
"""

AST_PRESETS = {
    "tiny": {"hidden_dim": 192, "depth": 12, "num_heads": 3},
    "small": {"hidden_dim": 384, "depth": 12, "num_heads": 6},
    "base": {"hidden_dim": 768, "depth": 12, "num_heads": 12},
}
