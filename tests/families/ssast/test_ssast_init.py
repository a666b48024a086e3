"""Fine-tuning from SSAST pretraining: a kc2f pretraining run, and the official checkpoints' names.

The official state dict is made here with the names and shapes of
`SSAST-Base-Patch-400.pth` (https://github.com/YuanGongND/ssast, `src/models/ast_models.py`):
the DeiT under `module.v.` with a 1-channel patch kernel, `module.cpredlayer.{0,2}.*`,
`module.gpredlayer.{0,2}.*`, `module.mask_embed` and the pretraining input size
`module.p_input_fdim` / `module.p_input_tdim`, at test size.
"""

import numpy as np
import pytest

from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.families.ssast import SsastPretrainer
from kc2f.families.ast import initialize_from
from kc2f.weights import resample_position_embedding

from tests.families.ast.test_ast_pretrained import DEPTH, D, HEADS, save, vit_state

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


def test_pretraining_sources_are_recognised_and_others_are_not(tmp_path):
    from kc2f.families.ast import is_pretraining_checkpoint

    size = dict(sample_rate=8000, num_mel_bins=32, target_frames=64, patch_size=(8, 8), hidden_dim=D, depth=DEPTH,
                num_heads=HEADS)
    SsastPretrainer(method="fshift", seed=0, **size).save(tmp_path / "pretrainer.keras")
    AudioSpectrogramTransformer(num_classes=3, **size).save(tmp_path / "ast.keras")
    (tmp_path / "pretrain-run").mkdir()
    (tmp_path / "pretrain-run" / "config.json").write_text('{"model": "ssast"}')
    (tmp_path / "fit-run").mkdir()
    (tmp_path / "fit-run" / "config.json").write_text('{"model": "ast"}')
    official = save(ssast_state(), tmp_path, "npz", name="SSAST-Base-Patch-400")
    imagenet = save(vit_state(3, grid=(2, 4), patch=16, channels=3, dist=True, classes=1000, prefix=""), tmp_path,
                    "npz", name="deit")
    assert [is_pretraining_checkpoint(p) for p in (tmp_path / "pretrainer.keras", tmp_path / "pretrain-run",
                                                   official)] == [True, True, True]
    assert [is_pretraining_checkpoint(p) for p in (tmp_path / "ast.keras", tmp_path / "fit-run", imagenet,
                                                   tmp_path / "missing.pth")] == [False, False, False, False]


def test_fine_tuning_from_pretraining_pools_the_patch_tokens_with_the_prefix_tokens_kept(tmp_path):
    import keras

    from kc2f.training.preparation import resolve
    from kc2f.training.run_config import RunConfig

    (tmp_path / "pretrain-run").mkdir()
    (tmp_path / "pretrain-run" / "config.json").write_text('{"model": "ssast"}')
    resolved, _ = resolve(RunConfig(dataset="synthetic", init=str(tmp_path / "pretrain-run")))
    assert resolved.model_options.pooling == "patch"
    assert resolve(RunConfig(dataset="synthetic"))[0].model_options.pooling == "prefix"
    kept, _ = resolve(RunConfig(dataset="synthetic", init=str(tmp_path / "pretrain-run"),
                                model_options={"pooling": "prefix"}))
    assert kept.model_options.pooling == "prefix"  # a choice the user made stands
    # The head reads the mean of the patch tokens; the two prefix tokens are still in the sequence.
    model = AudioSpectrogramTransformer(num_classes=3, sample_rate=8000, num_mel_bins=32, target_frames=64,
                                        patch_size=(8, 8), hidden_dim=D, depth=DEPTH, num_heads=HEADS,
                                        num_prefix_tokens=2, pooling="patch", seed=0)
    waves = np.random.default_rng(0).standard_normal((2, 8000 * 64 // 100)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(model(waves))
    x = model.position_embedding(model.patch_embedding(model.spectrogram(waves)))
    assert x.shape[1] == 2 + model.token_grid[0] * model.token_grid[1]
    for block in model.blocks:
        x = block(x)
    tokens = keras.ops.convert_to_numpy(model.norm(x)).astype(np.float64)
    pooled = tokens[:, 2:].mean(axis=1)  # float64 NumPy: LayerNorm, then the dense head
    gamma, beta, kernel, bias = (keras.ops.convert_to_numpy(w).astype(np.float64) for w in
                                 (model.head_norm.gamma, model.head_norm.beta, model.head.kernel, model.head.bias))
    normed = (pooled - pooled.mean(-1, keepdims=True)) / np.sqrt(pooled.var(-1, keepdims=True) + model.head_norm.epsilon)
    np.testing.assert_allclose(logits, (normed * gamma + beta) @ kernel + bias, rtol=1e-4, atol=1e-5)
    prefix = AudioSpectrogramTransformer.from_config({**model.get_config(), "pooling": "prefix"})
    prefix.set_weights(model.get_weights())
    assert not np.allclose(keras.ops.convert_to_numpy(prefix(waves)), logits)  # the choice matters
    assert AudioSpectrogramTransformer.from_config(model.get_config()).get_config() == model.get_config()


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_checkpoint_keys_name_what_read_checkpoint_reads(tmp_path, fmt):
    from kc2f.weights.checkpoint_readers import checkpoint_keys, read_checkpoint

    path = save(ssast_state(), tmp_path, fmt, name="SSAST-Base-Patch-400")
    assert sorted(checkpoint_keys(path)) == sorted(read_checkpoint(path))
