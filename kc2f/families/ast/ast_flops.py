"""Closed-form FLOPs of the AST per sample, for every compression method and factor.

The count follows the usual transformer accounting of Kaplan et al. 2020
(*Scaling Laws for Neural Language Models*, https://arxiv.org/abs/2001.08361,
§2.1 and Table 1) and nanoGPT's `estimate_mfu` (Karpathy,
https://github.com/karpathy/nanoGPT, `model.py`), as docs/method.md#flops states it for
AST-Base:

* a multiply-add is 2 FLOPs, so an `(n × k) @ (k × m)` matmul costs `2·n·k·m`;
* per block with N tokens of width D and an MLP of width F = mlp_ratio·D:
  qkv `6·N·D²`, output projection `2·N·D²`, MLP `4·N·D·F` (`16·N·D²` at
  mlp_ratio 4), i.e. `24·N·D²` of weight matmuls, plus `4·N²·D` for the
  attention scores `QKᵀ` and the weighted sum `AV`;
* training ≈ 3 × forward: the backward pass computes a gradient with respect
  to the activations and one with respect to the weights, each as costly as the
  forward matmul.

AST-Base at N = 514 tokens (10 s, 16×16 patches, C = 1), D = 768, 12 blocks:
`12·(24·514·768² + 4·514²·768)` ≈ 97.0 GFLOP forward, ≈ 291 GFLOP per
training sample (docs/method.md#flops); the smaller terms counted here add ≈ 0.6%.

Element-wise work is counted as XLA's `HloCostAnalysis` counts it: one FLOP
per arithmetic operation per element, transcendental functions (`exp`, `erf`,
`log`, `rsqrt`) left out, as XLA reports them separately. A real FFT of length
n costs `2.5·n·log2(n)` (the usual split-radix estimate; XLA's cost analysis
charges a complex FFT, `8·n·log2(n)`, instead). These terms are < 1% of a
base-size model and only matter for tiny test configurations.

Left out: the loss, SpecAugment's masks (a multiply per masked spectrogram
value, training only), the optimizer update (per step, not per sample), and
dropout. All are < 0.01% at base size.
"""

import dataclasses
import math

from kc2f.models.flops_breakdown import GELU_FLOPS, LAYER_NORM_FLOPS, SOFTMAX_FLOPS, FlopsBreakdown


def _layer_norm(tokens, dim):
    return LAYER_NORM_FLOPS * tokens * dim


def forward_flops(model):
    """Forward FLOPs per sample of a built `AudioSpectrogramTransformer`, by part.

    Counts what `AudioSpectrogramTransformer.call` computes for one clip of the
    model's (method, factor) phase, reading only the model's configuration:
    `model.fbank` (window, hop and FFT lengths, mel bins, target frames,
    normalisation), `model.front_end` (pooling and patch geometry),
    `model.token_grid`, `model.num_prefix_tokens` and the transformer sizes.
    See the module docstring for the conventions (Kaplan et al. 2020,
    https://arxiv.org/abs/2001.08361; docs/method.md#flops).

    Args:
        model: an `AudioSpectrogramTransformer` (nothing is run).

    Returns:
        `FlopsBreakdown` of one sample's forward pass.

    Example:
        >>> model = AudioSpectrogramTransformer.from_preset("base", num_classes=527)
        >>> round(training_flops_per_sample(model) / 1e9)  # 514 tokens
        293
    """
    encoder = encoder_flops(model, needed=("num_classes",))
    dim, tokens = model.hidden_dim, model.token_grid[0] * model.token_grid[1] + model.num_prefix_tokens
    pooled = model.num_prefix_tokens or tokens  # mean of the prefix tokens (or all)
    head = pooled * dim + _layer_norm(1, dim) + 2 * dim * model.num_classes + model.num_classes
    return dataclasses.replace(encoder, head=float(head))


def encoder_flops(model, needed=()):
    """`forward_flops` up to the final LayerNorm (`head` = 0), for any model with the AST's attributes."""
    needed = ("fbank", "front_end", "token_grid", "num_prefix_tokens", "hidden_dim", "depth",
              "num_heads", "mlp_ratio") + tuple(needed)
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        raise ValueError(
            "forward_flops needs an AudioSpectrogramTransformer (missing attributes "
            f"{missing}). Received: model={type(model).__name__}"
        )
    plan = model.front_end
    fbank_layer = model.fbank

    # Kaldi fbank of `frames` frames (KaldiFbank.call, op by op).
    frames = plan.fbank_frames
    window, hop, fft = fbank_layer.window_length, fbank_layer.hop_length, fbank_layer.fft_length
    mel = fbank_layer.num_mel_bins
    bins = fft // 2 + 1
    # The samples those frames span; the clip-level mean removal touches each
    # four times (mask, sum, subtract, re-mask).
    samples = (frames - 1) * hop + window
    per_frame = (
        2 * window  # per-frame DC removal: sum, subtract
        + 2 * window  # pre-emphasis: scale, subtract
        + window  # Hann window
        + 2.5 * fft * math.log2(fft)  # real FFT (zero-padded to fft_length)
        + 3 * bins  # power spectrum re² + im²
        + 2 * bins * mel  # mel filter bank matmul
        + mel  # log floor max(x, ε) (the log itself is a transcendental)
        + mel  # select that zeroes frames past the clip's end
    )
    if fbank_layer.mean is not None:
        per_frame += 2 * mel  # (x − mean) / (2·std)
    fbank = 4 * samples + frames * per_frame

    # Time pooling: kernel = stride = C over the fbank's frames.
    factor = plan.pool_factor
    if factor == 1:
        pooling = 0
    elif plan.pool_mode == "max":
        pooling = plan.frames * mel * (factor - 1)  # C − 1 comparisons per output
    else:
        pooling = plan.frames * mel * factor  # C − 1 adds and a scale per output

    dim, depth = model.hidden_dim, model.depth
    mlp_dim = int(dim * model.mlp_ratio)  # as the model builds its blocks
    patches = model.token_grid[0] * model.token_grid[1]
    tokens = patches + model.num_prefix_tokens
    patch_f, patch_t = plan.patch_size
    patch_embedding = 2 * patches * patch_f * patch_t * dim + patches * dim

    attention = depth * (
        4 * tokens * tokens * dim + SOFTMAX_FLOPS * model.num_heads * tokens * tokens
    )
    projections = depth * (2 * tokens * dim * 3 * dim + 3 * tokens * dim  # qkv + bias
                           + 2 * tokens * dim * dim + tokens * dim)  # out proj + bias
    mlp = depth * (2 * tokens * dim * mlp_dim + tokens * mlp_dim  # fc1 + bias
                   + 2 * tokens * mlp_dim * dim + tokens * dim)  # fc2 + bias
    norms_and_other = (
        depth * (
            2 * _layer_norm(tokens, dim)  # norm1, norm2
            + GELU_FLOPS * tokens * mlp_dim
            + 2 * tokens * dim  # two residual adds
        )
        + tokens * dim  # position embedding add
        + _layer_norm(tokens, dim)  # final norm (applied to every token)
    )
    return FlopsBreakdown(
        fbank=float(fbank),
        pooling=float(pooling),
        patch_embedding=float(patch_embedding),
        attention=float(attention),
        projections=float(projections),
        mlp=float(mlp),
        norms_and_other=float(norms_and_other),
        head=0.0,
    )


def training_flops_per_sample(model):
    """FLOPs of one sample in a training step (forward + backward).

    `3 ×` the forward of everything after the patch embedding (forward, plus
    gradients with respect to activations and to weights, each as costly as the
    forward: Kaplan et al. 2020, https://arxiv.org/abs/2001.08361, §2.1;
    docs/method.md#flops), `2 ×` the patch embedding (forward and kernel gradient: its
    input, the spectrogram, needs no gradient, and XLA / grappler drop that
    matmul) and `1 ×` the fbank and pooling: no gradient flows into the
    waveform front-end, which has no weights. AST-Base at C = 1 (514 tokens):
    ≈ 293 GFLOP (docs/method.md#flops: ≈ 291 counts only the blocks).

    Args:
        model: an `AudioSpectrogramTransformer`.

    Returns:
        float, FLOPs per training sample.
    """
    return forward_flops(model).training


def phase_flops_ratio(model_c, model_1):
    """Training FLOPs per sample of a compressed phase relative to full resolution.

    docs/method.md#performance-anchors: for AST-Base with max pooling the ratio is ≈ 0.48 at C = 2
    and ≈ 0.23 at C = 4 (the token count halves, the `N²` attention term
    quarters, the fbank stays).

    Args:
        model_c: the model of the compressed phase (factor C).
        model_1: the model of the full-resolution phase (factor 1).

    Returns:
        float, `training_flops_per_sample(model_c) / training_flops_per_sample(model_1)`.
    """
    return training_flops_per_sample(model_c) / training_flops_per_sample(model_1)
