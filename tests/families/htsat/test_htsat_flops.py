"""Closed-form HTS-AT FLOPs (`kc2f.families.htsat.htsat_flops`) against XLA's cost analysis (JAX) and by hand."""

import keras
import numpy as np
import pytest

from kc2f.families.htsat import Htsat
from kc2f.families.htsat.htsat_flops import htsat_forward_flops, htsat_training_flops_per_sample
from tests.conftest import backend
from tests.families.ast.test_ast_flops import _xla_flops, xla_erf_excess

TINY = dict(num_classes=10, sample_rate=8000, target_frames=128, num_mel_bins=64, embed_dim=32, depths=(2, 2),
            num_heads=(2, 4), window_size=4, drop_path_rate=0.0)
BATCH = 2


def test_window_attention_is_linear_in_tokens():
    """One block by hand: 24·N·D² of matmuls + 4·N·n·D attention (+ small terms), n the window's tokens."""
    model = Htsat(**{**TINY, "depths": (1,), "num_heads": (2,)})
    ours = htsat_forward_flops(model)
    n_tokens, dim, window = 512, 32, 16
    assert ours.projections == 8 * n_tokens * dim**2 + 4 * n_tokens * dim
    assert ours.mlp == 16 * n_tokens * dim**2 + 5 * n_tokens * dim  # two matmuls, biases of 4·D and D
    scores = 2 * n_tokens * window
    assert ours.attention == 4 * n_tokens * window * dim + n_tokens * dim + 5 * scores


def test_base_counts_and_phase_ratios():
    flops = {c: htsat_training_flops_per_sample(Htsat.from_preset("base", num_classes=527, factor=c)) for c in (1, 2, 4)}
    forward = htsat_forward_flops(Htsat.from_preset("base", num_classes=527)).forward
    assert forward == pytest.approx(12.19e9, rel=0.01)  # the module docstring's figure
    # Tokens halve per factor 2 and attention is windowed: the cost follows the tokens.
    assert flops[2] / flops[1] == pytest.approx(0.5, abs=0.03)
    assert flops[4] / flops[1] == pytest.approx(0.25, abs=0.03)


jax_only = pytest.mark.skipif(backend() != "jax", reason="XLA cost analysis of a traced step needs KERAS_BACKEND=jax")


@pytest.fixture(scope="module", params=[("fshift", 1), ("fshift", 4), ("maxpool", 2)], ids=lambda p: f"{p[0]}-C{p[1]}")
def xla_counts(request):
    import jax
    import jax.numpy as jnp

    method, factor = request.param
    model = Htsat(method=method, factor=factor, **TINY)
    wave = jnp.asarray(np.random.default_rng(0).standard_normal((BATCH, 10240)), "float32")
    labels = jnp.asarray(np.eye(10, dtype="float32")[[1, 2]])
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def forward(weights, x):
        return model.stateless_call(weights, frozen, x)[0]

    def loss(weights, x):
        logits = model.stateless_call(weights, frozen, x, training=True)[0]
        return keras.ops.mean(keras.losses.categorical_crossentropy(labels, logits, from_logits=True))

    excess = xla_erf_excess(htsat_forward_flops, model)  # XLA's erf price beyond the formula's
    counts = {
        "forward": _xla_flops(forward, trainable, wave) / BATCH - excess,
        "front_end": _xla_flops(lambda x: model.mel(x), wave) / BATCH,
        "training": _xla_flops(jax.grad(loss), trainable, wave) / BATCH - excess,
    }
    return htsat_forward_flops(model), counts


@jax_only
def test_forward_matches_xla(xla_counts):
    ours, xla = xla_counts
    assert xla["forward"] == pytest.approx(ours.forward, rel=0.10)
    # From the spectrogram on (Swin stages, merging, head): measured within 0.5%.
    assert xla["forward"] - xla["front_end"] == pytest.approx(ours.forward - ours.fbank, rel=0.02)


@jax_only
def test_training_step_matches_xla(xla_counts):
    ours, xla = xla_counts
    assert xla["training"] == pytest.approx(ours.training, rel=0.10)
