"""`initialize_from`: timm/DeiT, AST and kc2f checkpoints into any (method, factor).

Checkpoints are written here at a tiny size with the real key names and
layouts, in .npz and .safetensors (the writer below is this test's own), and
.pth when torch is importable. The forward pass of the initialised model is
checked against an independent NumPy ViT run on the raw checkpoint arrays.
"""

import importlib.util
import json
import pathlib
import struct

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.special import erf

from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.weights import resample_position_embedding, resize_patch_kernel_bilinear, resize_patch_kernel_pi
from kc2f.families.ast import transfer_weights
from kc2f.weights.checkpoint_readers import read_safetensors
from kc2f.families.ast.ast_pretrained import initialize_from

REPO = pathlib.Path(__file__).resolve().parents[3]
HAS_TORCH = importlib.util.find_spec("torch") is not None
D, DEPTH, HEADS = 16, 2, 2
# ImageNet-style: 4×4 patches on an 8×8 grid = 32 mel bins × 32 frames.
IMAGENET_MODEL = dict(hidden_dim=D, depth=DEPTH, num_heads=HEADS, sample_rate=8000,
                      num_mel_bins=32, target_frames=32, patch_size=(4, 4))
# AST-style: 16×16 patches, stride 10: 36 mel × 56 frames -> a 3×5 grid.
AST_MODEL = dict(hidden_dim=D, depth=DEPTH, num_heads=HEADS, sample_rate=16000,
                 num_mel_bins=36, target_frames=56, patch_size=(16, 16), patch_stride=(10, 10))
FORMATS = ["npz", "safetensors", pytest.param(
    "pth", marks=pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed: .pth needs torch"))]


# ----------------------------------------------------------------------------- checkpoints


def vit_state(seed=0, grid=(8, 8), patch=4, channels=3, dist=True, classes=5, prefix=""):
    """A timm ViT/DeiT state dict (PyTorch layouts) with random weights."""
    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    tokens = (2 if dist else 1) + grid[0] * grid[1]
    state = {"cls_token": w(1, 1, D), "pos_embed": w(1, tokens, D),
             "patch_embed.proj.weight": w(D, channels, patch, patch, scale=0.1),
             "patch_embed.proj.bias": w(D)}
    if dist:
        state["dist_token"] = w(1, 1, D)
    for i in range(DEPTH):
        b = f"blocks.{i}."
        state.update({
            b + "norm1.weight": 1 + w(D), b + "norm1.bias": w(D),
            b + "attn.qkv.weight": w(3 * D, D), b + "attn.qkv.bias": w(3 * D),
            b + "attn.proj.weight": w(D, D), b + "attn.proj.bias": w(D),
            b + "norm2.weight": 1 + w(D), b + "norm2.bias": w(D),
            b + "mlp.fc1.weight": w(4 * D, D), b + "mlp.fc1.bias": w(4 * D),
            b + "mlp.fc2.weight": w(D, 4 * D), b + "mlp.fc2.bias": w(D),
        })
    state.update({"norm.weight": 1 + w(D), "norm.bias": w(D),
                  "head.weight": w(classes, D), "head.bias": w(classes)})
    if dist:
        state.update({"head_dist.weight": w(classes, D), "head_dist.bias": w(classes)})
    return {prefix + k: v for k, v in state.items()}


def ast_state(seed=1, grid=(3, 5), classes=7):
    """An official-AST state dict: DeiT under `module.v.` (1-channel 16×16 kernel) + mlp_head."""
    state = vit_state(seed, grid=grid, patch=16, channels=1, dist=True, classes=3,
                      prefix="module.v.")
    rng = np.random.default_rng(seed + 100)
    state.update({
        "module.mlp_head.0.weight": (1 + 0.3 * rng.standard_normal(D)).astype(np.float32),
        "module.mlp_head.0.bias": (0.3 * rng.standard_normal(D)).astype(np.float32),
        "module.mlp_head.1.weight": (0.3 * rng.standard_normal((classes, D))).astype(np.float32),
        "module.mlp_head.1.bias": (0.3 * rng.standard_normal(classes)).astype(np.float32),
    })
    return state


def write_safetensors(path, tensors, dtype="F32"):
    """This test's own safetensors writer: u64 LE header length, JSON header, raw LE data."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, value in tensors.items():
        value = np.asarray(value, dtype=np.float32)
        if dtype == "F32":
            raw = value.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = value.astype("<f2").tobytes()
        else:  # BF16: the top 16 bits of the float32.
            raw = (value.view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


def save(state, directory, fmt, name="ckpt"):
    path = pathlib.Path(directory) / f"{name}.{fmt}"
    if fmt == "npz":
        np.savez(path, **state)
    elif fmt == "safetensors":
        write_safetensors(path, state)
    else:
        import torch

        torch.save({"model": {k: torch.from_numpy(v) for k, v in state.items()}}, path)
    return path


# ----------------------------------------------------------------------------- NumPy reference


def _layer_norm(x, gamma, beta, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def numpy_vit(state, spectrogram, patch, stride, prefix="", head=None, dup_cls=False):
    """The source network's forward pass from the raw checkpoint arrays, in float64.

    spectrogram: (batch, frames, mel). The image is (mel = H, frames = W),
    replicated over the kernel's input channels (a grey image seen by an RGB
    network), patchified and projected by a matmul with the OIHW kernel.
    `head` = (ln_weight, ln_bias, weight, bias) applied to the mean of the two
    prefix outputs; `dup_cls` inserts a copy of cls (token and position) as the
    second prefix token.
    """
    s = {k[len(prefix):]: np.asarray(v, np.float64) for k, v in state.items() if k.startswith(prefix)}
    kernel = s["patch_embed.proj.weight"]
    image = np.repeat(spectrogram.astype(np.float64).transpose(0, 2, 1)[:, None], kernel.shape[1], axis=1)
    batch, _, height, width = image.shape
    (pf, pt), (sf, st) = patch, stride
    rows, cols = (height - pf) // sf + 1, (width - pt) // st + 1
    patches = np.stack([image[:, :, f * sf:f * sf + pf, t * st:t * st + pt].reshape(batch, -1)
                        for f in range(rows) for t in range(cols)], axis=1)
    x = patches @ kernel.reshape(kernel.shape[0], -1).T + s["patch_embed.proj.bias"]
    prefix_tokens = [s["cls_token"]]
    pos = s["pos_embed"]
    if "dist_token" in s:
        prefix_tokens.append(s["dist_token"])
    elif dup_cls:
        prefix_tokens.append(s["cls_token"])
        pos = np.concatenate([pos[:, :1], pos], axis=1)
    x = np.concatenate([np.repeat(t, batch, axis=0) for t in prefix_tokens] + [x], axis=1) + pos
    tokens, head_dim = x.shape[1], D // HEADS
    for i in range(DEPTH):
        b = f"blocks.{i}."
        h = _layer_norm(x, s[b + "norm1.weight"], s[b + "norm1.bias"])
        qkv = (h @ s[b + "attn.qkv.weight"].T + s[b + "attn.qkv.bias"]).reshape(batch, tokens, 3, HEADS, head_dim)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)
        logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, D)
        x = x + attended @ s[b + "attn.proj.weight"].T + s[b + "attn.proj.bias"]
        h = _layer_norm(x, s[b + "norm2.weight"], s[b + "norm2.bias"])
        h = h @ s[b + "mlp.fc1.weight"].T + s[b + "mlp.fc1.bias"]
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        x = x + h @ s[b + "mlp.fc2.weight"].T + s[b + "mlp.fc2.bias"]
    x = _layer_norm(x, s["norm.weight"], s["norm.bias"])
    pooled = x[:, :2].mean(axis=1)
    ln_w, ln_b, weight, bias = (np.asarray(a, np.float64) for a in head)
    return _layer_norm(pooled, ln_w, ln_b) @ weight.T + bias


def _waveforms(sample_rate, seconds=0.4, n=2):
    return (np.random.default_rng(7).standard_normal((n, int(sample_rate * seconds))) * 0.1).astype("float32")


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _weights(model):
    return {v.path.split("/", 1)[1]: _numpy(v) for v in model.weights}


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_tensor_lands_where_it_should(tmp_path, fmt):
    state = vit_state()
    model = AudioSpectrogramTransformer(num_classes=5, **IMAGENET_MODEL)
    initial = _weights(model)
    report = initialize_from(model, save(state, tmp_path, fmt))
    got = _weights(model)
    expected = {
        "patch_embedding/kernel": state["patch_embed.proj.weight"].sum(1, keepdims=True).transpose(2, 3, 1, 0),
        "patch_embedding/bias": state["patch_embed.proj.bias"],
        "position_embedding/prefix_tokens": np.concatenate([state["cls_token"], state["dist_token"]], 1),
        "position_embedding/position_embedding": state["pos_embed"],
        "norm/gamma": state["norm.weight"], "norm/beta": state["norm.bias"],
        "head/kernel": state["head.weight"].T, "head/bias": state["head.bias"],
        # No head LayerNorm in an ImageNet ViT: the model's own initialisation stays.
        "head_norm/gamma": initial["head_norm/gamma"], "head_norm/beta": initial["head_norm/beta"],
    }
    for i in range(DEPTH):
        b = f"blocks.{i}."
        for src, dst, transpose in [("norm1.weight", "norm1/gamma", 0), ("norm1.bias", "norm1/beta", 0),
                                    ("attn.qkv.weight", "qkv/kernel", 1), ("attn.qkv.bias", "qkv/bias", 0),
                                    ("attn.proj.weight", "proj/kernel", 1), ("attn.proj.bias", "proj/bias", 0),
                                    ("norm2.weight", "norm2/gamma", 0), ("norm2.bias", "norm2/beta", 0),
                                    ("mlp.fc1.weight", "fc1/kernel", 1), ("mlp.fc1.bias", "fc1/bias", 0),
                                    ("mlp.fc2.weight", "fc2/kernel", 1), ("mlp.fc2.bias", "fc2/bias", 0)]:
            expected[f"block_{i}/{dst}"] = state[b + src].T if transpose else state[b + src]
    assert set(expected) == set(got)
    for path, value in expected.items():
        np.testing.assert_allclose(got[path], value, rtol=1e-6, atol=1e-6, err_msg=path)
    assert report.paths("resized") == []
    assert report.paths("initialised") == ["head_norm/gamma", "head_norm/beta"]
    assert {key for key, _ in report.unused} == {"head_dist.weight", "head_dist.bias"}
    assert report.origins["block_1/qkv/kernel"] == "blocks.1.attn.qkv.weight"
    assert "summed over 3 input channels" in str(report)


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_distilled_deit_forward_matches_numpy(tmp_path, fmt):
    state = vit_state(seed=3)
    model = AudioSpectrogramTransformer(num_classes=5, **IMAGENET_MODEL)
    initialize_from(model, save(state, tmp_path, fmt))
    x = _waveforms(8000)
    spectrogram = _numpy(model.spectrogram(x))
    ones, zeros = np.ones(D), np.zeros(D)  # head_norm at its initialisation.
    want = numpy_vit(state, spectrogram, (4, 4), (4, 4), head=(ones, zeros, state["head.weight"], state["head.bias"]))
    np.testing.assert_allclose(_numpy(model(x)), want, atol=1e-4, rtol=1e-4)


def test_ast_checkpoint_forward_matches_numpy(tmp_path):
    state = ast_state()
    model = AudioSpectrogramTransformer(num_classes=7, **AST_MODEL)
    assert model.token_grid == (3, 5)
    report = initialize_from(model, save(state, tmp_path, "safetensors"))
    x = _waveforms(16000, seconds=0.6)
    spectrogram = _numpy(model.spectrogram(x))
    head = [state[f"module.mlp_head.{k}"] for k in ("0.weight", "0.bias", "1.weight", "1.bias")]
    want = numpy_vit(state, spectrogram, (16, 16), (10, 10), prefix="module.v.", head=head)
    np.testing.assert_allclose(_numpy(model(x)), want, atol=1e-4, rtol=1e-4)
    assert report.format == "ast" and report.paths("initialised") == []
    assert report.origins["head_norm/gamma"] == "module.mlp_head.0.weight"
    assert {key for key, _ in report.unused} == {
        "module.v.head.weight", "module.v.head.bias", "module.v.head_dist.weight", "module.v.head_dist.bias"}


def test_plain_vit_dist_token_starts_as_cls(tmp_path):
    state = vit_state(seed=4, dist=False)
    model = AudioSpectrogramTransformer(num_classes=3, **IMAGENET_MODEL)
    report = initialize_from(model, save(state, tmp_path, "npz"))
    weights = _weights(model)
    np.testing.assert_array_equal(weights["position_embedding/prefix_tokens"][0, 1], state["cls_token"][0, 0])
    np.testing.assert_array_equal(weights["position_embedding/position_embedding"][0, 1], state["pos_embed"][0, 0])
    assert any("initialised from the cls token" in note for note in report.notes)
    # Classes differ (5 vs 3): head re-initialised; the features still match the ViT with cls twice.
    assert report.paths("initialised") == ["head_norm/gamma", "head_norm/beta", "head/kernel", "head/bias"]
    assert {key for key, _ in report.unused} == {"head.weight", "head.bias"}
    x = _waveforms(8000)
    head = (weights["head_norm/gamma"], weights["head_norm/beta"], weights["head/kernel"].T, weights["head/bias"])
    want = numpy_vit(state, _numpy(model.spectrogram(x)), (4, 4), (4, 4), head=head, dup_cls=True)
    np.testing.assert_allclose(_numpy(model(x)), want, atol=1e-4, rtol=1e-4)


def test_resized_grid_is_interpolated_not_cropped(tmp_path):
    state = vit_state(seed=5)
    path = save(state, tmp_path, "npz")
    # maxpool at C=2 halves the time tokens: checkpoint grid (8, 8) -> model grid (8, 4).
    model = AudioSpectrogramTransformer(num_classes=5, method="maxpool", factor=2, **IMAGENET_MODEL)
    assert model.token_grid == (8, 4)
    report = initialize_from(model, path)
    got = _weights(model)["position_embedding/position_embedding"]
    want = resample_position_embedding(state["pos_embed"], (8, 8), (8, 4), 2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert report.paths("resized") == ["position_embedding/position_embedding"]
    assert report.source_grid == (8, 8)

    # The last source time column reaches the result (a crop would ignore it).
    changed = dict(state)
    pos = state["pos_embed"].copy()
    pos[0, 2:].reshape(8, 8, D)[:, -1] += 1.0
    changed["pos_embed"] = pos
    other = AudioSpectrogramTransformer(num_classes=5, method="maxpool", factor=2, **IMAGENET_MODEL)
    initialize_from(other, save(changed, tmp_path, "npz", name="changed"))
    moved = _weights(other)["position_embedding/position_embedding"][0, 2:].reshape(8, 4, D)
    assert not np.allclose(moved[:, -1], got[0, 2:].reshape(8, 4, D)[:, -1])


def test_ast_grid_12x101_is_inferred_and_interpolated_on_both_axes(tmp_path):
    state = ast_state(grid=(12, 101))
    # AST-Base's input with non-overlapping 16×16 patches: 128 mel × 1024 frames -> (8, 64).
    model = AudioSpectrogramTransformer(num_classes=7, hidden_dim=D, depth=DEPTH, num_heads=HEADS)
    assert model.token_grid == (8, 64)
    report = initialize_from(model, save(state, tmp_path, "npz"))
    assert report.source_grid == (12, 101)
    want = resample_position_embedding(state["module.v.pos_embed"], (12, 101), (8, 64), 2)
    np.testing.assert_allclose(_weights(model)["position_embedding/position_embedding"], want, atol=1e-6)


@pytest.mark.parametrize("method,rule", [("patch-pi", resize_patch_kernel_pi),
                                         ("patch-bl", resize_patch_kernel_bilinear)])
def test_patch_kernel_resized_by_the_methods_rule(tmp_path, method, rule):
    state = vit_state(seed=6)
    model = AudioSpectrogramTransformer(num_classes=5, method=method, factor=2, **IMAGENET_MODEL)
    assert model.patch_embedding.patch_size == (4, 8) and model.token_grid == (8, 4)
    report = initialize_from(model, save(state, tmp_path, "npz"))
    kernel = state["patch_embed.proj.weight"].sum(1, keepdims=True).transpose(2, 3, 1, 0)
    np.testing.assert_allclose(_weights(model)["patch_embedding/kernel"], rule(kernel, (4, 8)), atol=1e-6)
    assert "patch_embedding/kernel" in report.paths("resized")


def test_missing_or_wrong_key_fails_naming_key_and_file(tmp_path):
    model = AudioSpectrogramTransformer(num_classes=5, **IMAGENET_MODEL)
    before = _weights(model)
    state = vit_state()
    del state["blocks.1.mlp.fc1.weight"]
    path = save(state, tmp_path, "npz", name="missing")
    with pytest.raises(ValueError) as error:
        initialize_from(model, path)
    assert "blocks.1.mlp.fc1.weight" in str(error.value) and "missing.npz" in str(error.value)

    state = vit_state()
    state["blocks.0.attn.qkvx.weight"] = state.pop("blocks.0.attn.qkv.weight")
    path = save(state, tmp_path, "safetensors", name="renamed")
    with pytest.raises(ValueError) as error:
        initialize_from(model, path)
    for name in ("blocks.0.attn.qkv.weight", "blocks.0.attn.qkvx.weight", "renamed.safetensors"):
        assert name in str(error.value)

    state = vit_state()
    state["norm.weight"] = np.ones(D + 1, np.float32)
    with pytest.raises(ValueError, match=r"'norm\.weight'.*wrong\.npz"):
        initialize_from(model, save(state, tmp_path, "npz", name="wrong"))
    for path, value in _weights(model).items():  # A failure leaves the model untouched.
        np.testing.assert_array_equal(value, before[path])


def test_depth_mismatch_and_head_options(tmp_path):
    path = save(vit_state(), tmp_path, "npz")
    with pytest.raises(ValueError, match="2 transformer blocks but the model has 1"):
        initialize_from(AudioSpectrogramTransformer(num_classes=5, **{**IMAGENET_MODEL, "depth": 1}), path)
    model = AudioSpectrogramTransformer(num_classes=5, **IMAGENET_MODEL)
    report = initialize_from(model, path, skip_head=True)
    assert "head/kernel" in report.paths("initialised")
    with pytest.raises(ValueError, match="class count differs"):
        initialize_from(AudioSpectrogramTransformer(num_classes=4, **IMAGENET_MODEL), path, skip_head=False)


def test_safetensors_reader_half_precisions(tmp_path):
    value = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    write_safetensors(tmp_path / "h.safetensors", {"a": value}, dtype="F16")
    np.testing.assert_array_equal(read_safetensors(tmp_path / "h.safetensors")["a"], value.astype(np.float16))
    write_safetensors(tmp_path / "b.safetensors", {"a": value}, dtype="BF16")
    truncated = (value.view(np.uint32) & 0xFFFF0000).view(np.float32)
    np.testing.assert_array_equal(read_safetensors(tmp_path / "b.safetensors")["a"], truncated)


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed: .pth files are read")
def test_pth_without_torch_says_how_to_convert(tmp_path):
    path = tmp_path / "deit.pth"
    path.write_bytes(b"not read")
    with pytest.raises(ImportError, match=r"install(ed)?.*torch|torch.*install"):
        initialize_from(AudioSpectrogramTransformer(num_classes=5, **IMAGENET_MODEL), path)


def test_kc2f_keras_file_and_run_directory(tmp_path):
    src = AudioSpectrogramTransformer(num_classes=5, method="patch-pi", factor=2, **IMAGENET_MODEL)
    (tmp_path / "run").mkdir()
    src.save(tmp_path / "run" / "model.keras")
    reference = AudioSpectrogramTransformer(num_classes=5, method="patch-pi", factor=1, **IMAGENET_MODEL)
    transfer_weights(src, reference)
    x = _waveforms(8000)
    for path in (tmp_path / "run", tmp_path / "run" / "model.keras"):
        model = AudioSpectrogramTransformer(num_classes=5, method="patch-pi", factor=1, **IMAGENET_MODEL)
        report = initialize_from(model, path)
        assert report.format == "kc2f" and report.source_grid == (8, 4)
        np.testing.assert_allclose(_numpy(model(x)), _numpy(reference(x)), atol=1e-6)


def test_convert_checkpoint_tool_round_trip(tmp_path):
    spec = importlib.util.spec_from_file_location("convert_checkpoint", REPO / "tools" / "convert_checkpoint.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    src = save(ast_state(), tmp_path, "npz")
    out = tmp_path / "converted.keras"
    result = CliRunner().invoke(tool.main, [
        str(src), "--out", str(out), "--num-classes", "7", "--preset", "none", "--hidden-dim", str(D),
        "--depth", str(DEPTH), "--num-heads", str(HEADS), "--sample-rate", "16000", "--num-mel-bins", "36",
        "--target-frames", "56", "--patch-stride", "10,10", "--method", "avgpool", "--factor", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    loaded = keras.saving.load_model(out, compile=False)
    direct = AudioSpectrogramTransformer(num_classes=7, method="avgpool", **AST_MODEL)
    initialize_from(direct, src)
    x = _waveforms(16000, seconds=0.6)
    np.testing.assert_array_equal(_numpy(loaded(x)), _numpy(direct(x)))

    bad = CliRunner().invoke(tool.main, [str(src), "--out", str(tmp_path / "x.keras"), "--num-classes", "7",
                                         "--preset", "none", "--hidden-dim", str(D), "--depth", "1",
                                         "--num-heads", str(HEADS)])
    assert bad.exit_code != 0 and "transformer blocks" in bad.output


def test_timm_no_embed_class_and_layer_scale_are_reported(tmp_path):
    state = vit_state(seed=8, dist=False)
    state["pos_embed"] = state["pos_embed"][:, 1:]  # DeiT III: positions for the grid only.
    state["blocks.0.ls1.gamma"] = np.ones(D, np.float32)
    model = AudioSpectrogramTransformer(num_classes=5, **IMAGENET_MODEL)
    report = initialize_from(model, save(state, tmp_path, "npz"))
    pos = _weights(model)["position_embedding/position_embedding"]
    np.testing.assert_array_equal(pos[0, :2], 0.0)
    np.testing.assert_array_equal(pos[0, 2:], state["pos_embed"][0])
    assert report.source_grid == (8, 8)
    assert dict(report.unused)["blocks.0.ls1.gamma"].startswith("inside a transformer block")
    assert any("no_embed_class" in note for note in report.notes)
