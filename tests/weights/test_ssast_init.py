"""Fine-tuning from SSAST pretraining: a kc2f pretraining run, and the official checkpoints' names.

The official state dict is made here with the names and shapes of
`SSAST-Base-Patch-400.pth` (https://github.com/YuanGongND/ssast, `src/models/ast_models.py`):
the DeiT under `module.v.` with a 1-channel patch kernel, `module.cpredlayer.{0,2}.*`,
`module.gpredlayer.{0,2}.*`, `module.mask_embed` and the pretraining input size
`module.p_input_fdim` / `module.p_input_tdim`, at test size.
"""

import numpy as np
import pytest

from kc2f.models import AudioSpectrogramTransformer, SsastPretrainer
from kc2f.weights import initialize_from, resample_position_embedding

from tests.weights.test_pretrained import DEPTH, D, HEADS, save, vit_state

PRETRAINING_HEADS = {"mask_embedding", "discriminative_head_hidden/kernel", "discriminative_head_hidden/bias",
                     "discriminative_head/kernel", "discriminative_head/bias", "generative_head_hidden/kernel",
                     "generative_head_hidden/bias", "generative_head/kernel", "generative_head/bias"}


def _weights(model):
    import keras

    return {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in model.weights}


def test_pretraining_run_initialises_a_fine_tuning_ast(tmp_path):
    size = dict(sample_rate=8000, num_mel_bins=32, patch_size=(8, 8), hidden_dim=D, depth=DEPTH, num_heads=HEADS,
                num_prefix_tokens=0)
    pretrained = SsastPretrainer(method="fshift", target_frames=64, seed=0, **size)  # 4 x 8 grid
    (tmp_path / "run").mkdir()
    pretrained.save(tmp_path / "run" / "model.keras")
    # The downstream task's clips are twice as long: an 4 x 16 grid.
    model = AudioSpectrogramTransformer(num_classes=5, target_frames=128, **size)
    report = initialize_from(model, tmp_path / "run")
    text = str(report)
    assert report.source_grid == (4, 8)
    assert report.paths("resized") == ["position_embedding/position_embedding"]
    assert set(report.paths("initialised")) == {"head_norm/gamma", "head_norm/beta", "head/kernel", "head/bias"}
    dropped = {key for key, reason in report.unused if reason.startswith("SSAST pretraining only")}
    assert dropped == PRETRAINING_HEADS
    assert "resized" in text and "SSAST pretraining only" in text
    source, target = _weights(pretrained), _weights(model)
    for name in ("block_0/qkv/kernel", "block_1/fc2/bias", "patch_embedding/kernel", "norm/gamma"):
        np.testing.assert_array_equal(target[name], source[name], err_msg=name)
    expected = resample_position_embedding(source["position_embedding/position_embedding"], (4, 8), (4, 16), 0)
    np.testing.assert_allclose(target["position_embedding/position_embedding"], expected, rtol=1e-6)


def ssast_state(seed=2, grid=(2, 4), patch=16):
    """An official SSAST pretrained state dict (patch-based, cls + dist tokens) at test size."""
    state = vit_state(seed, grid=grid, patch=patch, channels=1, dist=True, classes=1000, prefix="module.v.")
    rng = np.random.default_rng(seed + 7)
    pixels = patch * patch
    for name in ("cpredlayer", "gpredlayer"):
        state.update({
            f"module.{name}.0.weight": rng.standard_normal((D, D)).astype(np.float32),
            f"module.{name}.0.bias": rng.standard_normal(D).astype(np.float32),
            f"module.{name}.2.weight": rng.standard_normal((pixels, D)).astype(np.float32),
            f"module.{name}.2.bias": rng.standard_normal(pixels).astype(np.float32),
        })
    state["module.mask_embed"] = rng.standard_normal((1, 1, D)).astype(np.float32)
    state["module.p_input_fdim"] = np.asarray(grid[0] * patch, np.float32)
    state["module.p_input_tdim"] = np.asarray(grid[1] * patch, np.float32)
    return state


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_official_ssast_checkpoint_names(tmp_path, fmt):
    state = ssast_state()
    path = save(state, tmp_path, fmt, name="SSAST-Base-Patch-400")
    # SSAST's fine-tuning head: the mean of the patch tokens (no prefix tokens in kc2f's AST).
    model = AudioSpectrogramTransformer(num_classes=4, sample_rate=16000, num_mel_bins=32, target_frames=128,
                                        hidden_dim=D, depth=DEPTH, num_heads=HEADS, num_prefix_tokens=0)
    report = initialize_from(model, path)
    assert report.format == "ssast" and report.source_grid == (2, 4)
    assert report.paths("resized") == ["position_embedding/position_embedding"]
    dropped = {key for key, reason in report.unused if reason.startswith("SSAST pretraining only")}
    assert dropped == {k for k in state if k.startswith(("module.cpredlayer", "module.gpredlayer",
                                                         "module.mask_embed", "module.p_input"))}
    assert any("dropped the cls, dist token" in note for note in report.notes)
    weights = _weights(model)
    np.testing.assert_allclose(weights["block_1/qkv/kernel"], state["module.v.blocks.1.attn.qkv.weight"].T)
    grid_positions = state["module.v.pos_embed"][:, 2:]
    expected = resample_position_embedding(grid_positions, (2, 4), (2, 8), 0)
    np.testing.assert_allclose(weights["position_embedding/position_embedding"], expected, rtol=1e-5, atol=1e-6)
