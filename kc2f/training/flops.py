"""Closed-form FLOPs of the AST per sample, for every method and factor.

Counts follow the usual transformer accounting (Kaplan et al. 2020,
https://arxiv.org/abs/2001.08361, §2.1; nanoGPT's `estimate_mfu`): a
multiply-add is 2 FLOPs, so a `(n × k) @ (k × m)` matmul costs `2·n·k·m`; per
block the matmuls cost `2·N·D·(3D + D + 2·M)` (qkv, output projection, MLP of
width M; `24·N·D²` at M = 4D) and attention `4·N²·D` (scores and weighted sum).
DESIGN.md §1 anchors AST-Base at N = 514: ≈ 291 GFLOP per training sample.
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class FlopsBreakdown:
    """Forward FLOPs of one sample by part of the network."""

    fbank: float
    pooling: float
    patch_embedding: float
    attention: float
    projections: float
    mlp: float
    norms_and_other: float
    head: float

    @property
    def front_end(self):
        """The waveform → spectrogram part (no gradient flows through it)."""
        return self.fbank + self.pooling

    @property
    def network(self):
        """Everything from the patch embedding on (trained)."""
        return self.forward - self.front_end

    @property
    def forward(self):
        return sum(dataclasses.asdict(self).values())


def forward_flops(model):
    """Forward FLOPs per sample of a built `AudioSpectrogramTransformer`.

    Args:
        model: the model (its front-end, token grid and sizes are read).

    Returns:
        `FlopsBreakdown`.
    """
    fbank = model.fbank
    frames = model.front_end.fbank_frames
    window, fft, mel = fbank.window_length, fbank.fft_length, fbank.num_mel_bins
    bins = fft // 2 + 1
    per_frame = (
        2 * window  # DC removal
        + 3 * window  # pre-emphasis and window
        + 2.5 * fft * math.log2(fft)  # real FFT
        + 3 * bins  # power spectrum
        + 2 * bins * mel  # mel filter bank
        + 3 * mel  # log, normalisation
    )
    fbank_flops = frames * per_frame
    pool = model.front_end.pool_factor
    pooling = model.front_end.frames * mel * pool if pool > 1 else 0.0

    grid_f, grid_t = model.token_grid
    patches = grid_f * grid_t
    pf, pt = model.front_end.patch_size
    dim = model.hidden_dim
    tokens = patches + model.num_prefix_tokens
    mlp_dim = int(dim * model.mlp_ratio)
    depth = model.depth
    patch_embedding = 2 * patches * pf * pt * dim + patches * dim
    projections = depth * (2 * tokens * dim * 4 * dim + tokens * 4 * dim)
    mlp = depth * (2 * tokens * dim * mlp_dim * 2 + tokens * (mlp_dim + dim))
    # Scores and weighted sum; softmax ≈ 5 FLOPs per score (max, sub, exp, sum, div).
    attention = depth * (4 * tokens * tokens * dim + 5 * model.num_heads * tokens * tokens)
    layer_norm = 8 * tokens * dim
    gelu = 8 * tokens * mlp_dim
    norms_and_other = (
        depth * (2 * layer_norm + gelu + 2 * tokens * dim)  # norms, GELU, residuals
        + tokens * dim  # position embedding
        + layer_norm
    )
    head = 8 * dim + 2 * dim * model.num_classes + model.num_classes
    return FlopsBreakdown(
        fbank=float(fbank_flops),
        pooling=float(pooling),
        patch_embedding=float(patch_embedding),
        attention=float(attention),
        projections=float(projections),
        mlp=float(mlp),
        norms_and_other=float(norms_and_other),
        head=float(head),
    )


def training_flops_per_sample(model):
    """Training FLOPs of one sample: 3 × the network's forward + 1 × the front-end.

    The backward pass costs about twice the forward (gradients with respect to
    activations and to weights), hence 3× for everything from the patch
    embedding on. The fbank and pooling run forward only: no gradient flows
    into the waveform.
    """
    flops = forward_flops(model)
    return 3.0 * flops.network + flops.front_end


def phase_flops_ratio(model_c, model_1):
    """Training FLOPs of a compressed phase's model relative to the full-resolution one."""
    return training_flops_per_sample(model_c) / training_flops_per_sample(model_1)
