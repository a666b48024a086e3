"""Closed-form FLOPs: a hand count, XLA's own count (JAX) and the AST-Base anchors."""

import math

import keras
import numpy as np
import pytest

from kc2f.families.ast.audio_spectrogram_transformer import AudioSpectrogramTransformer
from kc2f.models.flops_breakdown import FlopsBreakdown
from kc2f.families.ast.ast_flops import forward_flops, phase_flops_ratio, training_flops_per_sample
from tests.conftest import backend


@pytest.fixture(scope="module", autouse=True)
def _zero_initial_weights():
    """FLOPs depend only on the configuration: skip drawing random initial weights.

    The models are the real ones; only their initial values are zeros, which
    keeps the AST-Base builds (86M weights) and JAX's per-shape RNG compiles
    out of the test time on small shared CPUs.
    """
    def zeros(self, shape, dtype=None):
        return keras.ops.zeros(shape, dtype=dtype)

    with pytest.MonkeyPatch.context() as patch:
        for initializer in (keras.initializers.TruncatedNormal, keras.initializers.GlorotUniform):
            patch.setattr(initializer, "__call__", zeros)
        yield


def _tiny(method="maxpool", factor=2, **overrides):
    """D=8, 1 block, 2 heads, 2×3 token grid + 2 prefix tokens, 5 classes, 1 kHz fbank."""
    config = dict(
        num_classes=5, method=method, factor=factor, sample_rate=1000, target_frames=24,
        num_mel_bins=8, frame_length_ms=25.0, frame_shift_ms=10.0, fbank_mean=0.0, fbank_std=1.0,
        patch_size=(4, 4), hidden_dim=8, depth=1, num_heads=2, mlp_ratio=4.0,
    )
    config.update(overrides)
    return AudioSpectrogramTransformer(**config)


def test_hand_count_tiny_config():
    model = _tiny()
    assert model.token_grid == (2, 3) and model.front_end.frames == 12
    fbank = model.fbank
    assert (fbank.window_length, fbank.hop_length, fbank.fft_length) == (25, 10, 32)

    # fbank: 24 frames of 25 samples every 10 → 23·10 + 25 = 255 samples; FFT 32, 17 bins, 8 mel.
    waveform = 4 * 255  # clip mean removal: mask, sum, subtract, re-mask
    per_frame = (
        5 * 25  # DC removal (2), pre-emphasis (2), window (1) per sample
        + 2.5 * 32 * 5  # real FFT, 2.5·n·log2 n
        + 3 * 17  # power spectrum
        + 2 * 17 * 8  # mel matmul
        + 8 + 8  # log floor, padded-frame select
        + 2 * 8  # normalisation
    )
    assert per_frame == 880
    fbank_flops = waveform + 24 * per_frame  # 22140
    pooling = 12 * 8 * 1  # maxpool C=2: 12 output frames × 8 mel × 1 comparison
    patch = 2 * 6 * 16 * 8 + 6 * 8  # 6 patches of 4×4 → D=8, plus bias
    n, d, f, heads = 8, 8, 32, 2  # tokens = 6 + 2 prefix
    attention = 4 * n * n * d + 5 * heads * n * n  # QKᵀ, AV; softmax 5 per score
    projections = 6 * n * d * d + 3 * n * d + 2 * n * d * d + n * d  # qkv, proj (+ biases)
    mlp = 2 * n * d * f + n * f + 2 * n * f * d + n * d  # fc1, fc2 (+ biases)
    norms = 2 * 8 * n * d + 4 * n * f + 2 * n * d + n * d + 8 * n * d  # LN×2, GELU, residuals, pos, final LN
    head = 2 * d + 8 * d + 2 * d * 5 + 5  # prefix mean, head LN, Dense(5)

    got = forward_flops(model)
    expected = FlopsBreakdown(
        fbank=fbank_flops, pooling=pooling, patch_embedding=patch, attention=attention,
        projections=projections, mlp=mlp, norms_and_other=norms, head=head,
    )
    assert got == expected
    assert got.forward == 42289 == sum(
        [fbank_flops, pooling, patch, attention, projections, mlp, norms, head]
    )
    # Training: front-end once, patch embedding twice (no input gradient), the rest 3×.
    training = fbank_flops + pooling + 2 * patch + 3 * (attention + projections + mlp + norms + head)
    assert training_flops_per_sample(model) == training == 80811


def test_method_specific_terms():
    one = forward_flops(_tiny(factor=1))
    avg = forward_flops(_tiny("avgpool", 2))
    assert one.pooling == 0 and avg.pooling == 12 * 8 * 2  # C − 1 adds and a scale per output
    # fshift: 12 frames of the same 25 ms every 20 ms; same tokens as maxpool C=2.
    fshift = forward_flops(_tiny("fshift", 2))
    assert fshift.fbank == 4 * (11 * 20 + 25) + 12 * 880 and fshift.pooling == 0
    assert fshift.network == forward_flops(_tiny()).network
    # patch-bl: 4×8 patches over the full 24 frames: still 2×3 tokens, twice the patch matmul.
    wide = forward_flops(_tiny("patch-bl", 2))
    assert wide.patch_embedding == 2 * 6 * 32 * 8 + 6 * 8
    # No prefix tokens: the head averages all 6 tokens; mlp_ratio changes the MLP width.
    plain = forward_flops(_tiny(num_prefix_tokens=0, mlp_ratio=2.0))
    assert plain.head == 6 * 8 + 8 * 8 + 2 * 8 * 5 + 5
    assert plain.mlp == 2 * 6 * 8 * 16 + 6 * 16 + 2 * 6 * 16 * 8 + 6 * 8


def test_rejects_other_objects():
    with pytest.raises(ValueError, match="Received: model=Dense"):
        forward_flops(keras.layers.Dense(3))


# --- AST-Base anchors (docs/method.md#flops and docs/method.md#performance-anchors) --------------


@pytest.fixture(scope="module")
def base_training_flops():
    """Training FLOPs per sample of AST-Base, maxpool, at C = 1, 2, 4."""
    flops, full = {}, None
    for factor in (1, 2, 4):
        model = AudioSpectrogramTransformer.from_preset(
            "base", num_classes=527, method="maxpool", factor=factor
        )
        flops[factor] = (model.num_patch_tokens, training_flops_per_sample(model), forward_flops(model))
        if factor == 1:
            full = model
        else:
            flops[f"ratio_{factor}"] = phase_flops_ratio(model, full)
        del model
    return flops


def test_base_matches_design_anchor(base_training_flops):
    tokens, training, forward = base_training_flops[1]
    assert tokens == 512  # 8 × 64 patches, + 2 prefix tokens = 514
    # docs/method.md#flops: 12·(24·N·D² + 4·N²·D) at N = 514, D = 768, times 3.
    blocks = 3 * 12 * (24 * 514 * 768**2 + 4 * 514**2 * 768)
    assert blocks == pytest.approx(291e9, rel=0.002)
    assert training == pytest.approx(291e9, rel=0.02)
    assert forward.forward == pytest.approx(training / 3, rel=0.01)


def test_base_phase_ratios(base_training_flops):
    # docs/method.md#performance-anchors: FLOPs ratios 0.48 (C=2) and 0.23 (C=4) for AST-Base.
    assert base_training_flops[2][0] == 256 and base_training_flops[4][0] == 128
    assert 0.45 <= base_training_flops["ratio_2"] <= 0.52
    assert 0.20 <= base_training_flops["ratio_4"] <= 0.27
    assert base_training_flops["ratio_2"] == pytest.approx(
        base_training_flops[2][1] / base_training_flops[1][1]
    )


# --- XLA's own count (JAX only) ----------------------------------------------------------------

jax_only = pytest.mark.skipif(
    backend() != "jax", reason="XLA cost analysis of a traced step needs KERAS_BACKEND=jax"
)
BATCH = 2


def _xla_flops(fn, *args):
    """FLOPs of `fn(*args)` from XLA's HloCostAnalysis, per call.

    The pre-optimisation module is analysed (`lower(...).cost_analysis()`):
    XLA:CPU's compiled module rewrites some dots into oneDNN custom calls
    (`__onednn$matmul`), which its cost analysis counts as 0 FLOPs — 33.0 vs
    75.4 MFLOP/sample for the C=1 forward below — while the lowered module
    keeps every dot.
    """
    import jax

    cost = jax.jit(fn).lower(*args).cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"])


def xla_erf_excess(count, model):
    """FLOPs per sample that XLA charges for erf inside the model's exact GELUs, and the formula does not.

    The formula takes erf as a transcendental (`GELU_FLOPS` = 4 per element), as XLA
    counted Keras' exact GELU up to JAX 0.4.33 (4 per element; 10 for a GELU and its
    gradient). Later JAX lowers erf to a polynomial before XLA sees it, which XLA then
    counts: 66 and 73 per element on JAX 0.10.2 — the erf, evaluated once, since the
    gradient reuses it. The price is measured here on a GELU alone; the elements are
    the formula's own (`count` with GELU_FLOPS raised by 1).

    Args:
        count: `forward_flops` or `htsat_forward_flops`.
        model: the model.

    Returns:
        float, FLOPs per sample to subtract from XLA's forward and training counts.
    """
    from unittest import mock

    from kc2f.families.ast import ast_flops as flops_module
    from kc2f.families.htsat import htsat_flops

    probe = np.linspace(-3.0, 3.0, 1000, dtype="float32")
    price = _xla_flops(lambda x: keras.activations.gelu(x), probe) / probe.size
    one_more = flops_module.GELU_FLOPS + 1
    with mock.patch.object(flops_module, "GELU_FLOPS", one_more), \
            mock.patch.object(htsat_flops, "GELU_FLOPS", one_more):
        raised = count(model).forward
    elements = raised - count(model).forward
    return (price - flops_module.GELU_FLOPS) * elements


@pytest.fixture(scope="module", params=[("maxpool", 1), ("maxpool", 2), ("patch-pi", 2)],
                ids=lambda p: f"{p[0]}-C{p[1]}")
def xla_counts(request):
    """A small AST (D=192, 2 blocks, 64 mel, 1.28 s at 16 kHz) and XLA's counts per sample."""
    import jax.numpy as jnp

    method, factor = request.param
    model = AudioSpectrogramTransformer(
        10, method=method, factor=factor, target_frames=128, num_mel_bins=64,
        hidden_dim=192, depth=2, num_heads=3,
    )
    waveform = jnp.asarray(np.random.default_rng(0).standard_normal((BATCH, 20480)), "float32")
    labels = jnp.asarray(np.eye(10, dtype="float32")[[1, 2]])
    # Weights as arguments, not constants, so XLA cannot fold e.g. the zero biases away.
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def forward(weights, x):
        return model.stateless_call(weights, frozen, x)[0]

    def loss(weights, x):
        logits = model.stateless_call(weights, frozen, x, training=True)[0]
        return keras.ops.mean(keras.losses.categorical_crossentropy(labels, logits, from_logits=True))

    import jax

    excess = xla_erf_excess(forward_flops, model)
    counts = {
        "forward": _xla_flops(forward, trainable, waveform) / BATCH - excess,
        "front_end": _xla_flops(model.spectrogram, waveform) / BATCH,
        "training": _xla_flops(jax.grad(loss), trainable, waveform) / BATCH - excess,
    }
    fbank = model.fbank
    # XLA charges an FFT as a complex one, 8·n·log2 n (HloCostAnalysis::HandleFft),
    # where the formula uses 2.5·n·log2 n for a real FFT.
    fft_gap = model.front_end.fbank_frames * (8 - 2.5) * fbank.fft_length * math.log2(fbank.fft_length)
    return forward_flops(model), counts, fft_gap


@jax_only
def test_forward_matches_xla(xla_counts):
    ours, xla, fft_gap = xla_counts
    assert xla["forward"] == pytest.approx(ours.forward, rel=0.10)
    # With XLA's FFT convention the whole forward agrees within 2% (measured ≤ 0.9%);
    # the rest of the front-end gap is gather-index arithmetic XLA counts as FLOPs.
    assert xla["forward"] == pytest.approx(ours.forward + fft_gap, rel=0.02)
    # Patch embedding onwards: measured within 0.1%.
    assert xla["forward"] - xla["front_end"] == pytest.approx(ours.network, rel=0.01)


@jax_only
def test_training_step_matches_xla(xla_counts):
    ours, xla, fft_gap = xla_counts
    assert xla["training"] == pytest.approx(ours.training, rel=0.10)
    assert xla["training"] == pytest.approx(ours.training + fft_gap, rel=0.02)
    # jax.grad differentiates the network only; the front-end runs forward once.
    # Measured: backward/forward of the network ≈ 1.91–1.95 (3× the blocks, 2× the
    # patch embedding), and XLA's training count within 0.05% of the formula.
    assert xla["training"] - xla["front_end"] == pytest.approx(
        ours.training - ours.front_end, rel=0.01
    )
