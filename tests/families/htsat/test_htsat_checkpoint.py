"""`--init` from the official HTS-AT checkpoint's state dict (its parameter names).

The state dict is made here, name by name, as HTS-AT's PyTorch modules
(model/htsat.py: HTSAT_Swin_Transformer wrapped as `sed_model` by sed_model.py's
SEDWrapper) would register their parameters and buffers, with random values.
"""

import keras
import numpy as np
import pytest

from kc2f.families import get_family
from kc2f.families.htsat import Htsat
from tests.families.ast.test_ast_pretrained import save

# Square grids at C = 1 (16 mel x 4 chunks = 64 rows, 256 frames / 4 = 64 columns), as HTS-AT-Base's.
SIZES = dict(sample_rate=8000, target_frames=256, num_mel_bins=16, embed_dim=8, depths=(2, 2), num_heads=(1, 2),
             window_size=8, drop_path_rate=0.0)
CLASSES = 6


def htsat_state_dict(seed=0, classes=CLASSES, n_fft=256, mel=16, dim=8, depths=(2, 2), heads=(1, 2), window=8,
                     rows_per_chunk=2):
    rng = np.random.default_rng(seed)
    state = {}

    def add(name, *shape):
        state["sed_model." + name] = rng.standard_normal(shape).astype("float32") if shape else np.array(5)

    add("spectrogram_extractor.stft.conv_real.weight", n_fft // 2 + 1, 1, n_fft)
    add("spectrogram_extractor.stft.conv_imag.weight", n_fft // 2 + 1, 1, n_fft)
    add("logmel_extractor.melW", n_fft // 2 + 1, mel)
    for kind in ("weight", "bias", "running_mean"):
        add(f"bn0.{kind}", mel)
    state["sed_model.bn0.running_var"] = rng.uniform(0.5, 2.0, mel).astype("float32")
    add("bn0.num_batches_tracked")
    add("patch_embed.proj.weight", dim, 1, 4, 4)
    add("patch_embed.proj.bias", dim)
    add("patch_embed.norm.weight", dim)
    add("patch_embed.norm.bias", dim)
    d = dim
    for i, (depth, h) in enumerate(zip(depths, heads)):
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            for norm in ("norm1", "norm2"):
                add(p + norm + ".weight", d)
                add(p + norm + ".bias", d)
            add(p + "attn.relative_position_bias_table", (2 * window - 1) ** 2, h)
            state["sed_model." + p + "attn.relative_position_index"] = np.zeros((window**2, window**2), "int64")
            add(p + "attn.qkv.weight", 3 * d, d)
            add(p + "attn.qkv.bias", 3 * d)
            add(p + "attn.proj.weight", d, d)
            add(p + "attn.proj.bias", d)
            add(p + "mlp.fc1.weight", 4 * d, d)
            add(p + "mlp.fc1.bias", 4 * d)
            add(p + "mlp.fc2.weight", d, 4 * d)
            add(p + "mlp.fc2.bias", d)
            if j % 2:
                add(p + "attn_mask", 4, window**2, window**2)
        if i < len(depths) - 1:
            add(f"layers.{i}.downsample.reduction.weight", 2 * d, 4 * d)
            add(f"layers.{i}.downsample.norm.weight", 4 * d)
            add(f"layers.{i}.downsample.norm.bias", 4 * d)
            d *= 2
    add("norm.weight", d)
    add("norm.bias", d)
    add("tscam_conv.weight", classes, d, rows_per_chunk, 3)
    add("tscam_conv.bias", classes)
    add("head.weight", classes, classes)
    add("head.bias", classes)
    return state


def _weights(model):
    return {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in model.weights}


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_official_names_load_into_every_weight(tmp_path, fmt):
    state = htsat_state_dict()
    model = Htsat(num_classes=CLASSES, **SIZES)
    report = get_family("htsat").initialize(model, save(state, tmp_path, fmt))
    w = _weights(model)
    s = lambda name: state["sed_model." + name]  # noqa: E731
    np.testing.assert_array_equal(w["patch_embedding/kernel"], s("patch_embed.proj.weight").transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(w["stage_1_block_1/qkv/kernel"], s("layers.1.blocks.1.attn.qkv.weight").T)
    np.testing.assert_array_equal(w["stage_0_merging/reduction/kernel"], s("layers.0.downsample.reduction.weight").T)
    np.testing.assert_array_equal(w["stage_0_block_0/relative_position_bias_table"],
                                  s("layers.0.blocks.0.attn.relative_position_bias_table"))
    np.testing.assert_array_equal(w["head/kernel"], s("tscam_conv.weight").transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(w["bn0/moving_variance"], s("bn0.running_var"))
    np.testing.assert_array_equal(w["norm/gamma"], s("norm.weight"))
    assert report.paths("copied") == list(w) and report.paths("resized") == []
    unused = {key for key, _ in report.unused}
    assert "sed_model.head.weight" in unused and "sed_model.layers.0.blocks.1.attn_mask" in unused
    assert "sed_model.logmel_extractor.melW" in unused and "sed_model.bn0.num_batches_tracked" in unused
    # Every tensor that is a weight of the model was used.
    assert len(state) - len(unused) == len(w)


def test_coarse_model_keeps_the_whole_tables_and_takes_another_head(tmp_path):
    # Issue 31 item 3: a coarse phase's cut windows read the centre of the full 15 x 15 tables, so
    # the official tables load whole (nothing resized, nothing lost for the return to C = 1).
    state = htsat_state_dict(seed=1)
    model = Htsat(num_classes=3, factor=4, **SIZES)
    assert [b[0].window for b in model.blocks] == [(4, 8), (2, 8)]
    report = get_family("htsat").initialize(model, save(state, tmp_path, "npz"))
    assert report.paths("resized") == []
    assert report.paths("skipped") == ["head/kernel", "head/bias"]
    table = state["sed_model.layers.1.blocks.0.attn.relative_position_bias_table"]
    np.testing.assert_array_equal(_weights(model)["stage_1_block_0/relative_position_bias_table"], table)
    with pytest.raises(ValueError, match="head"):
        get_family("htsat").initialize(Htsat(num_classes=3, **SIZES), save(state, tmp_path, "npz"), skip_head=False)


def test_missing_weight_is_named_and_leaves_the_model_unchanged(tmp_path):
    state = htsat_state_dict(seed=2)
    del state["sed_model.layers.1.blocks.0.mlp.fc2.bias"]
    model = Htsat(num_classes=CLASSES, **SIZES)
    before = _weights(model)
    with pytest.raises(ValueError, match="stage_1_block_0/fc2/bias"):
        get_family("htsat").initialize(model, save(state, tmp_path, "npz"))
    for name, value in _weights(model).items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("prefix", ["", "sed_model.", "module.", "sed_model.module.", "module.sed_model."])
def test_lightning_and_ddp_prefixes_in_either_order_name_the_same_weight(prefix):
    # Issue 31 item 4: Lightning's `sed_model.` and DDP's `module.` wrap each other either way round.
    from kc2f.families.htsat.htsat_checkpoint import htsat_name

    assert htsat_name(prefix + "norm.weight") == "norm/gamma"
    assert htsat_name(prefix + "layers.2.blocks.1.attn.qkv.weight") == "stage_2_block_1/qkv/kernel"
    assert htsat_name(prefix + "layers.0.blocks.0.attn.relative_position_index") is None


class _Hyperparameters:
    """A non-tensor object such as Lightning pickles beside the weights (torch's safe loader refuses it)."""

    def __init__(self):
        self.lr = 1e-3


def test_a_lightning_ckpt_loads_only_when_its_pickles_are_trusted(tmp_path, monkeypatch):
    # Issue 31 item 4: a Lightning `.ckpt` layout built here: `state_dict` under its key with DDP's
    # `module.` outside Lightning's `sed_model.`, beside pickled hyper-parameters.
    torch = pytest.importorskip("torch")
    from kc2f.weights.checkpoint_readers import TRUST_PICKLE_ENV

    state = htsat_state_dict(seed=4)
    weights = {f"module.{key}": torch.from_numpy(np.asarray(value)) for key, value in state.items()}
    path = tmp_path / "htsat.ckpt"
    torch.save({"state_dict": weights, "hyper_parameters": _Hyperparameters(), "epoch": 3}, path)
    model = Htsat(num_classes=CLASSES, **SIZES)
    before = _weights(model)
    monkeypatch.delenv(TRUST_PICKLE_ENV, raising=False)
    with pytest.raises(ValueError, match=f"holds Python objects besides tensors.*{TRUST_PICKLE_ENV}=1"):
        get_family("htsat").initialize(model, path)
    for name, value in _weights(model).items():  # refused before anything was assigned
        np.testing.assert_array_equal(value, before[name])
    monkeypatch.setenv(TRUST_PICKLE_ENV, "1")
    report = get_family("htsat").initialize(model, path)
    assert report.paths("skipped") == []
    np.testing.assert_array_equal(_weights(model)["stage_1_block_0/relative_position_bias_table"],
                                  state["sed_model.layers.1.blocks.0.attn.relative_position_bias_table"])


def test_initialised_from_htsats_own_checkpoint_the_clip_is_stretched_as_the_reference_does(tmp_path):
    # Issue 31 item 4: HTS-AT stretches a 10 s clip's 1001 frames to 1024 (reshape_wav2img) where kc2f
    # zero-pads; with HTS-AT's weights the run follows the reference. Here: 1 s -> 101 frames, 128 wanted.
    from kc2f.training.preparation import resolve
    from kc2f.training.run_config import RunConfig
    from kc2f.families.htsat.htsat_checkpoint import is_reference_checkpoint

    official = save(htsat_state_dict(seed=5), tmp_path, "npz")
    Htsat(num_classes=CLASSES, **SIZES).save(tmp_path / "kc2f.keras")
    assert is_reference_checkpoint(official)
    assert not is_reference_checkpoint(tmp_path / "kc2f.keras") and not is_reference_checkpoint(tmp_path / "none")
    options = dict(model="htsat", method="fshift", dataset="synthetic", clip_seconds=1.0, hidden_dim=8, depth=2,
                   num_heads=1, num_mel_bins=16)
    resolved, spec = resolve(RunConfig.from_dict({**options, "init": str(official)}))
    assert (resolved.model_options.stretch_frames, spec.target_frames) == (101, 128)
    # No reference weights: zero-padded.
    assert resolve(RunConfig.from_dict(options))[0].model_options.stretch_frames is None
    given = RunConfig.from_dict({**options, "init": str(official), "stretch_frames": 128})
    assert resolve(given)[0].model_options.stretch_frames == 128
    wave = np.random.default_rng(0).standard_normal((2, 16000)).astype("float32")
    for factor, computed in ((1, 101), (4, 26)):
        model = get_family("htsat").build(resolved, spec, CLASSES, factor)
        mel = keras.ops.convert_to_numpy(model.mel(wave))
        assert mel.shape[1] == computed and model.stretch.out_frames == 128 // factor
        stretched = keras.ops.convert_to_numpy(model.stretch(mel))
        # align_corners: the first and last frames are the clip's own (no zero-padded frames at the end).
        np.testing.assert_allclose(stretched[:, [0, -1]], mel[:, [0, -1]], atol=1e-4)
        assert model.spectrogram(wave).shape[1] == 128 // factor
        assert Htsat.from_config(model.get_config()).get_config() == model.get_config()
    plain = get_family("htsat").build(resolve(RunConfig.from_dict(options))[0], spec, CLASSES, 1)
    assert plain.stretch is None
