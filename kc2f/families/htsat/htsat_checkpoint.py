"""HTS-AT's official checkpoints (PyTorch state dicts) into a kc2f `Htsat`."""

import pathlib
import re

import keras
import numpy as np

from kc2f.weights.checkpoint_readers import checkpoint_keys, read_checkpoint
from kc2f.weights.resample import resize_relative_position_bias
from kc2f.weights.transfer_report import TransferReport

# Lightning wraps the model as `sed_model` (HTS-AT's sed_model.py, SEDWrapper); DDP adds `module.`.
_PREFIXES = ("sed_model.", "module.")
# Buffers the Keras model recomputes, and the reference's unused `head` Linear (its
# token-semantic branch never calls it), are not weights to load.
_DERIVED = re.compile(
    r"(relative_position_index|attn_mask|num_batches_tracked|^spectrogram_extractor\.|"
    r"^logmel_extractor\.|^head\.(weight|bias)$)"
)
_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_BLOCK_KEYS = {
    "norm1.weight": "norm1/gamma", "norm1.bias": "norm1/beta",
    "attn.relative_position_bias_table": "relative_position_bias_table",
    "attn.qkv.weight": "qkv/kernel", "attn.qkv.bias": "qkv/bias",
    "attn.proj.weight": "proj/kernel", "attn.proj.bias": "proj/bias",
    "norm2.weight": "norm2/gamma", "norm2.bias": "norm2/beta",
    "mlp.fc1.weight": "fc1/kernel", "mlp.fc1.bias": "fc1/bias",
    "mlp.fc2.weight": "fc2/kernel", "mlp.fc2.bias": "fc2/bias",
}
_MERGING = re.compile(r"^layers\.(\d+)\.downsample\.(.+)$")
_MERGING_KEYS = {"reduction.weight": "reduction/kernel", "norm.weight": "norm/gamma", "norm.bias": "norm/beta"}
_TOP_KEYS = {
    "bn0.weight": "bn0/gamma", "bn0.bias": "bn0/beta",
    "bn0.running_mean": "bn0/moving_mean", "bn0.running_var": "bn0/moving_variance",
    "patch_embed.proj.weight": "patch_embedding/kernel", "patch_embed.proj.bias": "patch_embedding/bias",
    "patch_embed.norm.weight": "patch_norm/gamma", "patch_embed.norm.bias": "patch_norm/beta",
    "norm.weight": "norm/gamma", "norm.bias": "norm/beta",
    "tscam_conv.weight": "head/kernel", "tscam_conv.bias": "head/bias",
}
HEAD_WEIGHTS = ("head/kernel", "head/bias")


def is_reference_checkpoint(path):
    """Whether `path` is a state-dict file of HTS-AT's own code (its token-semantic head and patch
    embedding under HTS-AT's names, any Lightning/DDP prefix): a kc2f run or `.keras` file is not.
    An unreadable file is `False` (`initialize_htsat` names the problem later)."""
    path = pathlib.Path(path)
    if not path.is_file() or path.suffix.lower() == ".keras":
        return False
    try:
        names = {htsat_name(key) for key in checkpoint_keys(path)}
    except (OSError, ValueError, ImportError):
        return False
    return {"head/kernel", "patch_embedding/kernel"} <= names


def htsat_name(key):
    """The kc2f `Htsat` weight path of an HTS-AT state-dict key (prefixes removed), or `None`."""
    # Either wrapper may be the outer one (DDP around Lightning's module, or Lightning saving a DDP model).
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    if _DERIVED.search(key):
        return None
    if key in _TOP_KEYS:
        return _TOP_KEYS[key]
    match = _BLOCK.match(key)
    if match and match.group(3) in _BLOCK_KEYS:
        return f"stage_{match.group(1)}_block_{match.group(2)}/{_BLOCK_KEYS[match.group(3)]}"
    match = _MERGING.match(key)
    if match and match.group(2) in _MERGING_KEYS:
        return f"stage_{match.group(1)}_merging/{_MERGING_KEYS[match.group(2)]}"
    return None


def _to_keras(name, value):
    """Converts one PyTorch tensor to the layout of kc2f weight `name`."""
    value = np.asarray(value, dtype=np.float32)
    if name == "patch_embedding/kernel":  # Conv2d (D, 1, H, W) -> (H, W, 1, D)
        return np.transpose(value, (2, 3, 1, 0))
    if name == "head/kernel":  # Conv2d (classes, D, rows, 3) -> (rows, 3, D, classes)
        return np.transpose(value, (2, 3, 1, 0))
    if name.endswith("/kernel") and value.ndim == 2:  # Linear (out, in) -> (in, out)
        return value.T
    return value


def initialize_htsat(model, path, *, skip_head=None):
    """Initialises a built `Htsat` in place from an HTS-AT state dict on local disk.

    Reads the official HTS-AT checkpoints (https://github.com/RetroCirce/HTS-Audio-Transformer,
    e.g. `HTSAT_AudioSet_Saved_1.ckpt`: a Lightning checkpoint whose
    `state_dict` names the model `sed_model.*`) from a `.ckpt`/`.pth` (with
    torch installed), or a `.safetensors`/`.npz` export of the same names.
    Linear and convolution weights are transposed to Keras' layout; the
    relative-position tables of blocks whose window is smaller in `model`
    (a coarse phase) are mapped offset by offset
    (`resize_relative_position_bias`); buffers the model recomputes
    (relative-position index, shift masks, the STFT and mel matrices), the
    unused `head` Linear and `num_batches_tracked` are left out and named in
    the report.

    Args:
        model: built `kc2f.families.htsat.Htsat` of the checkpoint's sizes (any factor).
        path: local checkpoint file.
        skip_head: `True`: keep the model's head (another class count);
            `False`: the checkpoint's head must fit; `None`: load it if it fits.

    Returns:
        `TransferReport` with `unused` (key, reason) pairs.

    Raises:
        ValueError: a model weight without a counterpart in the file or one
            of a shape that cannot be mapped (named with the file); the model
            is left unchanged.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == ".keras" or path.is_dir():
        raise ValueError(f"initialize_htsat reads HTS-AT state dicts (.ckpt/.pth/.safetensors/.npz). Received: {path}")
    state = read_checkpoint(path)
    weights = {v.path.split("/", 1)[1]: v for v in model.weights}
    windows = {block.name: block.table_window for blocks in model.blocks for block in blocks}
    found, unused = {}, []
    for key, value in state.items():
        name = htsat_name(key)
        if name is None:
            unused.append((key, "recomputed by the model or unused by HTS-AT's forward"))
        elif name not in weights:
            unused.append((key, "no counterpart in this model (fewer stages or blocks)"))
        else:
            found[name] = (key, _to_keras(name, value))
    head_fits = all(name in found and found[name][1].shape == tuple(weights[name].shape) for name in HEAD_WEIGHTS)
    if skip_head is False and not head_fits:
        raise ValueError(f"The head in {path} does not fit the model's {model.num_classes} classes.")
    load_head = head_fits if skip_head is None else not skip_head
    report = TransferReport([])
    report.unused = unused
    values = {}
    for name, variable in weights.items():
        shape = tuple(variable.shape)
        if name in HEAD_WEIGHTS and not load_head:
            report.entries.append((name, "skipped", None, shape))
            continue
        if name not in found:
            raise ValueError(f"{path} has no weight for '{name}' (expected HTS-AT's state-dict names).")
        key, value = found[name]
        old = tuple(value.shape)
        if name.endswith("relative_position_bias_table") and old != shape:
            block = name.split("/")[0]
            side = round((np.sqrt(old[0]) + 1) / 2)  # HTS-AT's windows are square
            value = resize_relative_position_bias(value, (side, side), windows[block])
        if tuple(value.shape) != shape:
            raise ValueError(f"Weight '{key}' in {path} has shape {old}; the model's '{name}' needs {shape}.")
        values[name] = value
        report.entries.append((name, "copied" if old == shape else "resized", old, shape))
    for name, value in values.items():
        weights[name].assign(keras.ops.cast(value, weights[name].dtype))
    return report
