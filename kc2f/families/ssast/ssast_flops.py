"""Closed-form FLOPs of SSAST's masked patch modelling per sample (https://arxiv.org/abs/2110.09784)."""

import dataclasses

from kc2f.families.ast.ast_flops import encoder_flops
from kc2f.models.flops_breakdown import SOFTMAX_FLOPS


def pretraining_flops_per_sample(model):
    """FLOPs of one masked-patch-modelling training sample of a `SsastPretrainer` (forward + backward).

    The encoder as `forward_flops` counts it (no classifier head), plus what
    SSAST adds (https://arxiv.org/abs/2110.09784): the mask-embedding mix
    (`3·N·D`), the two prediction heads on the `M` masked tokens (Linear D→D,
    ReLU, Linear D→P each, `P` patch pixels), InfoNCE's `M × M` scores
    (`2·M²·P`) and log-softmax (`5·M²`) and the MSE (`3·M·P`); everything
    after the patch embedding counts `3 ×`, as in `training_flops_per_sample`.

    Args:
        model: a `SsastPretrainer`.

    Returns:
        float, FLOPs per training sample.
    """
    encoder = encoder_flops(model, needed=("num_masked", "patch_size"))
    dim, masked = model.hidden_dim, model.num_masked
    pixels = model.patch_size[0] * model.patch_size[1]
    mix = 3 * model.token_grid[0] * model.token_grid[1] * dim
    one_head = 2 * masked * dim * dim + 2 * masked * dim + 2 * masked * dim * pixels + masked * pixels
    losses = 2 * masked * masked * pixels + SOFTMAX_FLOPS * masked * masked + 3 * masked * pixels
    return dataclasses.replace(encoder, head=float(mix + 2 * one_head + losses)).training
