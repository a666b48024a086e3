"""Closed-form FLOPs of HTS-AT per sample, at every compression factor.

The conventions are those of `kc2f.families.ast.ast_flops` (docs/method.md#flops): a
multiply-add is 2 FLOPs, element-wise work one FLOP per operation as XLA's
`HloCostAnalysis` counts it (transcendentals left out), a real FFT of length n
`2.5·n·log2 n`, and training = 1× the front-end, 2× the patch embedding and 3×
the rest.

Window attention is linear in the tokens: a Swin block on N tokens of width D
with windows of n = wh·ww tokens costs `24·N·D²` of weight matmuls at
mlp_ratio 4 (as a ViT block) plus `4·N·n·D` for `QKᵀ` and `AV` (a ViT block has
`4·N²·D`). A patch merging of N tokens costs `2·(N/4)·4D·2D = 4·N·D²`, the
token-semantic head `2·steps·rows·3·D_last·classes`. HTS-AT-Base on 10 s
(4096 → 64 tokens over four stages, 527 classes): 12.19 GFLOP forward,
36.35 GFLOP per training sample at C = 1; 0.499× at C = 2 and 0.248× at
C = 4, since every term follows the token count (Swin-T's 4.5 GMAC at 3136
first-stage tokens, scaled to 4096, is 11.8 GFLOP).
"""

import math

from kc2f.models.flops_breakdown import GELU_FLOPS, LAYER_NORM_FLOPS, FlopsBreakdown

# Softmax per score in window attention: max, subtract, sum, divide (exp: transcendental);
# the 1/√d scale is applied to q instead (one multiply per q element).
WINDOW_SOFTMAX_FLOPS = 4


def htsat_forward_flops(model):
    """Forward FLOPs per sample of a built `kc2f.families.htsat.Htsat`, by part.

    Reads only the model's configuration: its log-mel layer (`model.mel`),
    pooling, stage grids and widths, blocks' windows and shifts, and head.
    The breakdown's fields: `fbank` the log-mel, `pooling` the time pooling,
    `patch_embedding` the 4 × 4 projection, `attention` the windowed `QKᵀ`,
    `AV`, relative-position bias, shift mask and softmax, `projections` the
    qkv, output and patch-merging matmuls, `mlp` the MLPs, `norms_and_other`
    bn0, LayerNorms, GELU and residual adds, `head` the token-semantic
    convolution and the time mean.

    Returns:
        `kc2f.families.ast.ast_flops.FlopsBreakdown` of one sample's forward pass.
    """
    needed = ("mel", "pooling", "stage_grids", "stage_dims", "blocks", "head", "frames")
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        raise ValueError(
            f"htsat_forward_flops needs an Htsat (missing attributes {missing}). "
            f"Received: model={type(model).__name__}"
        )
    mel_layer = model.mel
    fft, mel = mel_layer.fft_length, mel_layer.num_mel_bins
    bins = fft // 2 + 1
    mel_frames = mel_layer.target_frames
    per_frame = (
        fft  # Hann window
        + 2.5 * fft * math.log2(fft)  # real FFT
        + 3 * bins  # re² + im²
        + 2 * bins * mel  # mel matmul
        + 4 * mel  # max(x, amin), ×10/ln 10 of the log, − offset
    )
    fbank = mel_frames * per_frame

    pool = model.pooling.factor
    frames = model.frames
    if pool == 1:
        pooling = 0
    elif model.pooling.mode == "max":
        pooling = frames * mel * (pool - 1)
    else:
        pooling = frames * mel * pool

    dim0, patch = model.embed_dim, model.patch_size
    tokens0 = model.stage_tokens[0]
    patch_embedding = 2 * tokens0 * patch * patch * dim0 + tokens0 * dim0
    norms = 4 * frames * mel + LAYER_NORM_FLOPS * tokens0 * dim0  # bn0 (inference form), patch norm

    attention = projections = mlp = 0
    for stage, blocks in enumerate(model.blocks):
        (h, w), dim = model.stage_grids[stage], model.stage_dims[stage]
        n_tokens = h * w
        for block in blocks:
            window = block.window[0] * block.window[1]
            heads, hidden = block.num_heads, block.mlp_dim
            scores = heads * n_tokens * window
            attention += (
                4 * n_tokens * window * dim  # QKᵀ and AV inside the windows
                + n_tokens * dim  # q · 1/√d
                + scores  # relative-position bias
                + (scores if any(block.shift) else 0)  # shift mask
                + WINDOW_SOFTMAX_FLOPS * scores
            )
            projections += (2 * n_tokens * dim * 3 * dim + 3 * n_tokens * dim
                            + 2 * n_tokens * dim * dim + n_tokens * dim)
            mlp += (2 * n_tokens * dim * hidden + n_tokens * hidden
                    + 2 * n_tokens * hidden * dim + n_tokens * dim)
            norms += 2 * LAYER_NORM_FLOPS * n_tokens * dim + GELU_FLOPS * n_tokens * hidden + 2 * n_tokens * dim
        if stage < len(model.mergings):
            merged = n_tokens // 4
            norms += LAYER_NORM_FLOPS * merged * 4 * dim
            projections += 2 * merged * 4 * dim * 2 * dim
    (h, w), dim = model.stage_grids[-1], model.stage_dims[-1]
    norms += LAYER_NORM_FLOPS * h * w * dim
    head_layer = model.head
    steps, classes = head_layer.frames, head_layer.num_classes
    head = 2 * steps * head_layer.rows * 3 * dim * classes + steps * classes + steps * classes
    return FlopsBreakdown(
        fbank=float(fbank),
        pooling=float(pooling),
        patch_embedding=float(patch_embedding),
        attention=float(attention),
        projections=float(projections),
        mlp=float(mlp),
        norms_and_other=float(norms),
        head=float(head),
    )


def htsat_training_flops_per_sample(model):
    """FLOPs of one training sample of an `Htsat` (forward + backward; see `FlopsBreakdown.training`)."""
    return htsat_forward_flops(model).training
