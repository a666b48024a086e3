"""Initialises an AST from pretrained ViT/DeiT, AST or kc2f checkpoints on local disk.

AST (Gong et al., https://arxiv.org/abs/2104.01778) starts from an ImageNet DeiT
(Touvron et al., https://arxiv.org/abs/2012.12877): the RGB patch kernel is
summed over its input channels, and the positional embedding is resized from
the image grid to the spectrogram's (freq, time) token grid. *From Coarse to
Fine* (https://arxiv.org/abs/2401.08415) then trains the same network at
several temporal resolutions, so one checkpoint must fit any (method, factor):
here the grid is always **interpolated** on both axes (AST's reference code
crops when the new grid is smaller; kc2f never crops), and a patch size that
differs (e.g. 16 × 32 patches of `patch-pi` at C = 2) is resized with the
method's rule (PI-resize for `patch-pi`, bilinear otherwise).

Sources, all read from local files (nothing is downloaded):

- timm / DeiT / ViT state dicts (https://github.com/huggingface/pytorch-image-models,
  https://github.com/facebookresearch/deit): `cls_token`, optional `dist_token`,
  `pos_embed`, `patch_embed.proj.*`, `blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`,
  `norm.*`, `head.*`, `head_dist.*`; in `.pth`, `.safetensors` or `.npz`.
- The official AST checkpoints (https://github.com/YuanGongND/ast): the same
  ViT under `module.v.`, plus `module.mlp_head.0` (LayerNorm) and
  `module.mlp_head.1` (Linear); 16 × 16 patches with stride 10 give a 12 × 101
  grid on 128 mel bins × 1024 frames.
- Hugging Face's AST (`ASTForAudioClassification` / `ASTModel` of `transformers`,
  e.g. `MIT/ast-finetuned-audioset-10-10-0.4593` on the hub): the same network
  under `audio_spectrogram_transformer.{embeddings,encoder.layer.{i},layernorm}.*`
  with separate query/key/value projections, and `classifier.{layernorm,dense}.*`;
  its `model.safetensors` (read without torch) or `pytorch_model.bin`. The names
  are mapped to AST's (`hugging_face_ast_to_ast`), the rest is as for AST.
- kc2f's own `.keras` files, or a run directory holding `model.keras`.

Where to get real checkpoints (kc2f never downloads; fetch them yourself):

- DeiT, as AST starts from it: the model zoo of https://github.com/facebookresearch/deit
  (e.g. `deit_base_distilled_patch16_384-d0272ac0.pth`, a `{"model": state_dict}`
  pickle; 24 × 24 grid, cls + dist tokens).
- timm releases on the Hugging Face Hub, https://huggingface.co/timm (e.g.
  `timm/deit_base_distilled_patch16_384.fb_in1k`, `timm/vit_base_patch16_224.augreg2_in21k_ft_in1k`):
  their `model.safetensors` is read without torch.
- AST's AudioSet models: the "Pretrained Models" section of
  https://github.com/YuanGongND/ast, e.g. "Full AudioSet, 10 tstride, 10 fstride,
  with Weight Averaging (0.459 mAP)",
  https://www.dropbox.com/s/ca0b1v2nlxzyeb4/audioset_10_10_0.4593.pth?dl=1
  (a `.pth`: read it with torch installed, or convert it once to `.npz` /
  `.safetensors`). Those models expect AST's normalisation (AudioSet mean
  −4.2677393, std 4.5689974, as `(x − mean) / (2·std)`).

The conversion is split into small pure functions (`convert_state_dict`,
`torch_patch_kernel_to_keras`, `fit_checkpoint_to_model`, `infer_source_grid`);
`initialize_from` reads, converts, fits and assigns.

Example:
    >>> model = AudioSpectrogramTransformer.from_preset("base", num_classes=50)
    >>> report = initialize_from(model, "deit_base_distilled_patch16_384.safetensors")
    >>> print(report)
"""

import dataclasses
import json
import math
import pathlib
import re
import zipfile

import keras
import numpy as np

from kc2f.weights.checkpoint_readers import checkpoint_keys, read_checkpoint
from kc2f.weights.resample import (
    resample_position_embedding,
    resize_patch_kernel_bilinear,
    resize_patch_kernel_pi,
)
from kc2f.weights.transfer_report import TransferReport

PATCH_KERNEL = "patch_embedding/kernel"
PATCH_BIAS = "patch_embedding/bias"
PREFIX_TOKENS = "position_embedding/prefix_tokens"
POSITION_EMBEDDING = "position_embedding/position_embedding"
HEAD_WEIGHTS = ("head_norm/gamma", "head_norm/beta", "head/kernel", "head/bias")
# What SSAST pretraining adds to the encoder (kc2f's SsastPretrainer, the official
# checkpoints' names): dropped for fine-tuning, which starts a new head.
PRETRAINING_ONLY = ("mask_embedding", "discriminative_head", "generative_head",
                    "mask_embed", "cpredlayer.", "gpredlayer.", "p_input_fdim", "p_input_tdim")
# Names only a pretraining state dict has (kc2f's and the official SSAST's heads and mask embedding).
_PRETRAINING_MARKERS = ("mask_embed", "cpredlayer.", "gpredlayer.", "discriminative_head", "generative_head")
PRETRAINING_REASON = "SSAST pretraining only (mask embedding, prediction heads, pretraining input size): dropped"

# timm name inside a block -> (kc2f name inside `block_{i}`, PyTorch Linear that needs a transpose).
_BLOCK_KEYS = {
    "norm1.weight": ("norm1/gamma", False),
    "norm1.bias": ("norm1/beta", False),
    "attn.qkv.weight": ("qkv/kernel", True),
    "attn.qkv.bias": ("qkv/bias", False),
    "attn.proj.weight": ("proj/kernel", True),
    "attn.proj.bias": ("proj/bias", False),
    "norm2.weight": ("norm2/gamma", False),
    "norm2.bias": ("norm2/beta", False),
    "mlp.fc1.weight": ("fc1/kernel", True),
    "mlp.fc1.bias": ("fc1/bias", False),
    "mlp.fc2.weight": ("fc2/kernel", True),
    "mlp.fc2.bias": ("fc2/bias", False),
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclasses.dataclass
class PretrainedReport(TransferReport):
    """What `initialize_from` did.

    `entries` holds one `(path, action, source_shape, model_shape)` per model
    weight, as `TransferReport`; `action` is `"copied"` (possibly after a layout
    change: transpose, RGB sum), `"resized"` (interpolated, or prefix tokens
    added/dropped) or `"initialised"` (left as the model's initialisation).

    Attributes:
        source: the file read.
        format: `"timm"`, `"ast"` or `"kc2f"`.
        source_grid: `(freq, time)` token grid of the checkpoint.
        origins: model weight path -> source key it came from.
        unused: `(source key, reason)` for every source tensor not loaded.
        notes: what was derived or re-initialised, in words.
    """

    source: str = ""
    format: str = ""
    source_grid: tuple = ()
    origins: dict = dataclasses.field(default_factory=dict)
    unused: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    def __str__(self):
        lines = [f"initialised from {self.source} ({self.format}, token grid {self.source_grid})"]
        for path, action, old, new in self.entries:
            change = f" {old} -> {new}" if action == "resized" else ""
            origin = f" <- {self.origins[path]}" if path in self.origins else ""
            lines.append(f"{action:11s} {path}{change}{origin}")
        lines += [f"unused      {key}: {reason}" for key, reason in self.unused]
        lines += [f"note        {note}" for note in self.notes]
        return "\n".join(lines)


@dataclasses.dataclass
class ConvertedCheckpoint:
    """A checkpoint in kc2f's names and layouts, at the checkpoint's own sizes.

    Attributes:
        source: the file it came from (for messages).
        format: `"timm"`, `"ast"` or `"kc2f"`.
        weights: kc2f relative weight path -> float32 array; the patch kernel is
            `(pf, pt, 1, D)`, the prefix tokens `(1, P, D)` and the position
            embedding `(1, P + F·T, D)`.
        origins: kc2f path -> source key.
        source_shapes: kc2f path -> shape of the tensor in the file.
        num_prefix_tokens: P (1 = cls, 2 = cls + distillation).
        depth: transformer blocks.
        grid: `(F, T)` when the file says it (kc2f), else `None`.
        unused: `(source key, reason)` of tensors with no place in kc2f's AST.
        notes: conversions worth telling the user, in words.
    """

    source: str
    format: str
    weights: dict
    origins: dict
    source_shapes: dict
    num_prefix_tokens: int
    depth: int
    grid: tuple = None
    unused: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    @property
    def num_grid_tokens(self):
        return self.weights[POSITION_EMBEDDING].shape[1] - self.num_prefix_tokens


def torch_patch_kernel_to_keras(weight):
    """PyTorch conv weight `(D, C, H, W)` → kc2f patch kernel `(H, W, 1, D)`.

    The colour channels are summed, as AST does with ImageNet weights: the
    spectrogram is a one-channel image, and a grey image replicated to RGB
    sees exactly the summed kernel. H is frequency and W time, as in AST's
    input `(batch, 1, freq, time)` and in kc2f's `(pf, pt)` patches.
    """
    weight = np.asarray(weight, dtype=np.float32)
    if weight.ndim != 4:
        raise ValueError(f"Expected a conv weight (D, C, H, W). Received: shape={weight.shape}")
    return np.transpose(weight.sum(axis=1, keepdims=True), (2, 3, 1, 0))


def torch_linear_to_keras(weight):
    """PyTorch `Linear.weight` `(out, in)` → Keras `Dense.kernel` `(in, out)`."""
    weight = np.asarray(weight, dtype=np.float32)
    if weight.ndim != 2:
        raise ValueError(f"Expected a Linear weight (out, in). Received: shape={weight.shape}")
    return weight.T


_HF_PREFIX = "audio_spectrogram_transformer."
_HF_PATCH = "embeddings.patch_embeddings.projection.weight"
# Hugging Face name inside `encoder.layer.{i}.` -> AST/timm name inside `blocks.{i}.`
# (query, key and value are concatenated into `attn.qkv` separately).
_HF_BLOCK_KEYS = {
    "layernorm_before": "norm1",
    "attention.output.dense": "attn.proj",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
_HF_BLOCK_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")


def is_hugging_face_ast(state):
    """Whether a state dict has the parameter names of Hugging Face's AST."""
    return _HF_PATCH in state or _HF_PREFIX + _HF_PATCH in state


def hugging_face_ast_to_ast(state):
    """Renames a Hugging Face AST state dict to the official AST's names (`module.v.*`).

    `transformers`' `ASTForAudioClassification` is AST's network with other names:
    `embeddings.{cls_token, distillation_token, position_embeddings}`,
    `embeddings.patch_embeddings.projection.*` (the conv, same layout),
    `encoder.layer.{i}.attention.attention.{query,key,value}.*` (concatenated here
    in that order into timm's `attn.qkv`, whose output rows are q, k, v),
    `attention.output.dense`, `layernorm_before/after`, `intermediate.dense`,
    `output.dense`, a final `layernorm`, and the head `classifier.{layernorm,
    dense}` (AST's `mlp_head.0/1`). A pure function: arrays are not copied
    beyond the qkv concatenation.

    Args:
        state: `{name: array}` with or without the `audio_spectrogram_transformer.` prefix.

    Returns:
        `{name: array}` in the official AST's names; keys it does not know are
        kept under their own names (and reported unused later).
    """
    out, qkv = {}, {}
    for key, value in state.items():
        name = key[len(_HF_PREFIX):] if key.startswith(_HF_PREFIX) else key
        match = _HF_BLOCK_KEY.match(name)
        if name.startswith("classifier."):
            head = {"classifier.layernorm": "0", "classifier.dense": "1"}.get(name.rsplit(".", 1)[0])
            out[f"module.mlp_head.{head}.{name.rsplit('.', 1)[1]}" if head else key] = value
        elif match:
            index, inner, kind = match.groups()
            if inner in ("attention.attention.query", "attention.attention.key", "attention.attention.value"):
                qkv.setdefault((index, kind), {})[inner.rsplit(".", 1)[1]] = value
            elif inner in _HF_BLOCK_KEYS:
                out[f"module.v.blocks.{index}.{_HF_BLOCK_KEYS[inner]}.{kind}"] = value
            else:
                out[key] = value
        else:
            renamed = {
                "embeddings.cls_token": "cls_token",
                "embeddings.distillation_token": "dist_token",
                "embeddings.position_embeddings": "pos_embed",
                "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
                "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
                "layernorm.weight": "norm.weight",
                "layernorm.bias": "norm.bias",
            }.get(name)
            out[f"module.v.{renamed}" if renamed else key] = value
    for (index, kind), parts in sorted(qkv.items()):
        if set(parts) != {"query", "key", "value"}:
            missing = sorted({"query", "key", "value"} - set(parts))
            raise ValueError(
                f"Hugging Face AST block {index} lacks attention.attention.{missing[0]}.{kind}; "
                "query, key and value are needed together."
            )
        out[f"module.v.blocks.{index}.attn.qkv.{kind}"] = np.concatenate(
            [np.asarray(parts[name]) for name in ("query", "key", "value")], axis=0)
    return out


def detect_format(state):
    """`("ast" | "ssast" | "timm", prefix)` for a state dict; `prefix` is stripped from keys.

    AST checkpoints were saved from `nn.DataParallel`, hence `module.`; their
    ViT sits under `v.` next to `mlp_head.`.
    """
    keys = list(state)
    prefix = "module." if keys and all(k.startswith("module.") for k in keys) else ""
    stripped = [k[len(prefix):] for k in keys]
    if any(k.startswith("v.") for k in stripped) and any(k.startswith("mlp_head.") for k in stripped):
        return "ast", prefix
    if any(k.startswith("v.") for k in stripped) and any(k.startswith(("cpredlayer.", "mask_embed"))
                                                          for k in stripped):
        # SSAST's pretrained models (SSAST-Base-Patch-400.pth, ...): the ViT under `v.`,
        # the pretext heads beside it, no classifier.
        return "ssast", prefix
    return "timm", prefix


def convert_state_dict(state, source="<state dict>"):
    """Converts a timm/DeiT/ViT or AST state dict to kc2f names and layouts.

    Args:
        state: `{key: array}` as read from the file.
        source: the file name, for messages.

    Returns:
        `ConvertedCheckpoint` (grid not yet known: see `infer_source_grid`).

    Raises:
        ValueError: a required key is missing (the message names it, the file,
            and any key it did not recognise), or a tensor has the wrong rank.
    """
    notes = []
    if is_hugging_face_ast(state):
        state = hugging_face_ast_to_ast(state)
        notes.append("Hugging Face AST names mapped to the official AST's (query/key/value -> qkv)")
    fmt, prefix = detect_format(state)
    vit_prefix = prefix + ("v." if fmt in ("ast", "ssast") else "")
    remaining = dict(state)
    weights, origins, shapes, missing = {}, {}, {}, []

    def take(key, required=True, top=False):
        # `top`: keys outside the ViT (AST's `mlp_head.*` sits beside `v.`).
        full = (prefix if top else vit_prefix) + key
        if full not in remaining:
            if required:
                missing.append(full)
            return None, full
        return np.asarray(remaining.pop(full), dtype=np.float32), full

    def put(path, value, key, transform=None, shape=None):
        shapes[path] = tuple(value.shape) if shape is None else shape
        origins[path] = key
        try:
            weights[path] = transform(value) if transform else value
        except ValueError as error:
            raise ValueError(f"Key '{key}' in {source}: {error}") from None

    cls, cls_key = take("cls_token")
    dist, dist_key = take("dist_token", required=False)
    pos, pos_key = take("pos_embed")
    kernel, kernel_key = take("patch_embed.proj.weight")
    bias, bias_key = take("patch_embed.proj.bias")
    # Depth from the highest block index present; a missing block inside it is a missing key.
    indices = [_BLOCK_KEY.match(k[len(vit_prefix):]) for k in state if k.startswith(vit_prefix)]
    depth = 1 + max((int(m.group(1)) for m in indices if m), default=-1)
    blocks = []
    for i in range(depth):
        for name, (kc2f_name, transpose) in _BLOCK_KEYS.items():
            value, key = take(f"blocks.{i}.{name}")
            blocks.append((f"block_{i}/{kc2f_name}", value, key, transpose))
    norm_gamma, norm_gamma_key = take("norm.weight")
    norm_beta, norm_beta_key = take("norm.bias")
    if fmt == "ast":
        head = [take(f"mlp_head.{k}", required=False, top=True)
                for k in ("0.weight", "0.bias", "1.weight", "1.bias")]
    elif fmt == "ssast":
        head = [(None, None)] * 4
    else:
        head = [(None, None), (None, None), take("head.weight", False), take("head.bias", False)]

    if missing or depth == 0:
        unknown = sorted(remaining)
        if depth == 0:
            missing.append(f"{vit_prefix}blocks.0.*")
        raise ValueError(
            f"{source} is not a complete {fmt} ViT checkpoint: missing key(s) {missing}"
            + (f"; keys not recognised: {unknown}" if unknown else "")
            + ". Expected timm/DeiT names (cls_token, pos_embed, patch_embed.proj.weight, "
            "blocks.{i}.attn.qkv.weight, ..., norm.weight) or AST's module.v.* + module.mlp_head.*."
        )
    for key, value, ndim in ((cls_key, cls, 3), (pos_key, pos, 3), (dist_key, dist, 3)):
        if value is not None and (value.ndim != ndim or value.shape[0] != 1 or value.shape[2] != cls.shape[2]):
            raise ValueError(
                f"Key '{key}' in {source} should have shape (1, N, D) with D = {cls.shape[-1]} "
                f"as cls_token. Received: shape={value.shape}"
            )

    prefix_tokens = cls if dist is None else np.concatenate([cls, dist], axis=1)
    num_prefix, num_pos = prefix_tokens.shape[1], pos.shape[1]
    if fmt == "timm" and not _is_square(num_pos - num_prefix) and _is_square(num_pos):
        # timm's `no_embed_class` ViTs (DeiT III, ...) give the prefix tokens no position;
        # a zero position is the same network in kc2f's one-embedding layout.
        pos = np.concatenate([np.zeros((1, num_prefix, pos.shape[2]), np.float32), pos], axis=1)
        notes.append(f"'{pos_key}' covers only the patch grid (timm no_embed_class): "
                     "prefix positions set to zero")
    put(PREFIX_TOKENS, prefix_tokens, cls_key if dist is None else f"{cls_key} + {dist_key}")
    put(POSITION_EMBEDDING, pos, pos_key, shape=(1, num_pos, pos.shape[2]))
    put(PATCH_KERNEL, kernel, kernel_key, torch_patch_kernel_to_keras)
    put(PATCH_BIAS, bias, bias_key)
    for path, value, key, transpose in blocks:
        put(path, value, key, torch_linear_to_keras if transpose else None)
    put("norm/gamma", norm_gamma, norm_gamma_key)
    put("norm/beta", norm_beta, norm_beta_key)
    for path, (value, key) in zip(HEAD_WEIGHTS, head):
        if value is not None:
            put(path, value, key, torch_linear_to_keras if path == "head/kernel" else None)

    unused = []
    for key in sorted(remaining):
        name = key[len(prefix):]
        if fmt == "ssast" and name.startswith(PRETRAINING_ONLY):
            reason = PRETRAINING_REASON
        elif fmt in ("ast", "ssast") and name.startswith("v.head"):
            reason = "DeiT's ImageNet head inside AST, unused by AST's forward"
        elif name.startswith("head_dist.") or name.startswith("v.head_dist."):
            reason = "DeiT distillation head: kc2f has one head on the mean of cls and dist"
        elif key.startswith(vit_prefix) and _BLOCK_KEY.match(key[len(vit_prefix):]):
            # E.g. timm's layer scale (ls1.gamma): the loaded network is not the checkpoint's.
            reason = "inside a transformer block, but kc2f's block has no such weight"
            notes.append(f"'{key}' has no place in kc2f's block: the network differs from the checkpoint's")
        else:
            reason = "no counterpart in kc2f's AST"
        unused.append((key, reason))
    grid = None
    if fmt == "ssast" and f"{prefix}p_input_fdim" in state and f"{prefix}p_input_tdim" in state:
        # SSAST stores its pretraining input size; patches do not overlap in pretraining.
        fdim, tdim = (int(np.asarray(state[f"{prefix}p_input_{axis}dim"]).reshape(-1)[0]) for axis in "ft")
        patch_f, patch_t = kernel.shape[2], kernel.shape[3]
        grid = (fdim // patch_f, tdim // patch_t)
        notes.append(f"SSAST pretraining input {fdim} mel x {tdim} frames, {patch_f}x{patch_t} patches: "
                     f"token grid {grid}")
    return ConvertedCheckpoint(
        source=str(source),
        format=fmt,
        grid=grid,
        weights=weights,
        origins=origins,
        source_shapes=shapes,
        num_prefix_tokens=prefix_tokens.shape[1],
        depth=depth,
        unused=unused,
        notes=notes,
    )


def convert_kc2f_model(model, source="<model>"):
    """A built kc2f `AudioSpectrogramTransformer` as a `ConvertedCheckpoint`."""
    weights = {v.path.split("/", 1)[1]: np.asarray(v.numpy(), dtype=np.float32) for v in model.weights}
    return ConvertedCheckpoint(
        source=str(source),
        format="kc2f",
        weights=weights,
        origins={path: path for path in weights},
        source_shapes={path: value.shape for path, value in weights.items()},
        num_prefix_tokens=model.num_prefix_tokens,
        depth=model.depth,
        grid=tuple(model.token_grid),
    )


def infer_source_grid(num_tokens, fmt, model_grid, num_mel_bins, patch_freq):
    """The `(freq, time)` token grid of a checkpoint's position embedding.

    ImageNet (timm) grids are square (14 × 14, 24 × 24, …). An AST checkpoint
    does not store its grid: if its token count equals the model's, the model's
    grid is taken; otherwise the grid is the one whose frequency count is
    `(num_mel_bins − patch_freq) // s + 1` for some stride `s ≤ patch_freq`
    (AST's releases use equal strides, e.g. 10 → 12 × 101 on 128 mel bins)
    and divides the token count — if exactly one does.

    Raises:
        ValueError: no unique grid; pass `source_grid=` to `initialize_from`.
    """
    if fmt == "timm":
        if _is_square(num_tokens):
            return (math.isqrt(num_tokens),) * 2
        candidates = []
    else:
        if num_tokens == model_grid[0] * model_grid[1]:
            return tuple(model_grid)
        freqs = sorted({(num_mel_bins - patch_freq) // s + 1 for s in range(1, patch_freq + 1)})
        candidates = [(f, num_tokens // f) for f in freqs if num_tokens % f == 0]
        if len(candidates) == 1:
            return candidates[0]
    raise ValueError(
        f"Cannot tell the (freq, time) token grid of a {fmt} checkpoint with {num_tokens} grid "
        f"tokens (candidates: {candidates}); pass source_grid=(freq, time). "
        f"Received: num_tokens={num_tokens}"
    )


def _is_square(n):
    return n > 0 and math.isqrt(n) ** 2 == n


def _resize_prefix(tokens, positions, wanted):
    """Adapts `(1, P, D)` prefix tokens and their positions to `wanted` prefix tokens.

    A plain ViT has only cls; AST's second (distillation) token starts as a
    copy of cls, token and position, so that the mean of the two prefix
    outputs is at first the plain ViT's cls output. Extra tokens are dropped.
    """
    have = tokens.shape[1]
    if wanted <= have:
        return tokens[:, :wanted], positions[:, :wanted]
    repeat = np.repeat(tokens[:, :1], wanted - have, axis=1)
    repeat_pos = np.repeat(positions[:, :1], wanted - have, axis=1)
    return np.concatenate([tokens, repeat], axis=1), np.concatenate([positions, repeat_pos], axis=1)


def fit_checkpoint_to_model(checkpoint, model, skip_head=None, source_grid=None):
    """Values for every weight of `model` from a `ConvertedCheckpoint`, resized to fit.

    Pure: reads the model's configuration and current (initial) values, returns
    arrays and the report; `initialize_from` assigns them.

    Args:
        checkpoint: `ConvertedCheckpoint`.
        model: built `AudioSpectrogramTransformer`.
        skip_head: `True` re-initialises (keeps) the model's head LayerNorm and
            Dense; `False` requires the checkpoint's head to fit; `None` loads it
            when the checkpoint has one with `model.num_classes` classes.
        source_grid: `(freq, time)` of the checkpoint, overriding inference.

    Returns:
        `(values, report)`: `{relative path: array}` and `PretrainedReport`.

    Raises:
        ValueError: depth or shape mismatch (naming the key and the file), or a
            head that cannot be loaded while `skip_head=False`.
    """
    src, path = checkpoint.weights, checkpoint.source
    if checkpoint.depth != model.depth:
        raise ValueError(
            f"{path} has {checkpoint.depth} transformer blocks but the model has {model.depth}; "
            f"build the model with depth={checkpoint.depth} (or the matching preset). "
            f"Received: depth={model.depth}"
        )
    if source_grid is not None:
        grid = tuple(int(g) for g in source_grid)
    elif checkpoint.grid is not None:
        grid = tuple(checkpoint.grid)
    else:
        grid = infer_source_grid(
            checkpoint.num_grid_tokens, checkpoint.format, model.token_grid,
            model.num_mel_bins, src[PATCH_KERNEL].shape[0],
        )
    if grid[0] * grid[1] != checkpoint.num_grid_tokens:
        raise ValueError(
            f"source_grid {grid} does not match the {checkpoint.num_grid_tokens} grid tokens of "
            f"'{checkpoint.origins[POSITION_EMBEDDING]}' in {path}. Received: source_grid={grid}"
        )
    model_weights = {v.path.split("/", 1)[1]: v for v in model.weights}
    report = PretrainedReport(entries=[], source=path, format=checkpoint.format, source_grid=grid,
                              unused=list(checkpoint.unused), notes=list(checkpoint.notes))
    values = {}

    # Prefix tokens and positions: resample the grid part, then add/drop prefix tokens.
    wanted = model.num_prefix_tokens
    have = checkpoint.num_prefix_tokens
    pos = resample_position_embedding(src[POSITION_EMBEDDING], grid, model.token_grid, have)
    if have:
        tokens, prefix_pos = _resize_prefix(src[PREFIX_TOKENS], pos[:, :have], wanted)
        if wanted > have:
            report.notes.append("the checkpoint has no distillation token: dist token and its position "
                                "initialised from the cls token")
        elif wanted < have:
            dropped = ["cls", "dist"][wanted:have]
            report.notes.append(f"the model has {wanted} prefix token(s): dropped the "
                                f"{', '.join(dropped)} token(s) and position(s)")
    elif wanted:
        # Nothing to copy the prefix from: keep the model's own initial prefix and positions.
        tokens = np.asarray(model_weights[PREFIX_TOKENS].numpy())
        prefix_pos = np.asarray(model_weights[POSITION_EMBEDDING].numpy())[:, :wanted]
        report.notes.append("the checkpoint has no prefix tokens: prefix tokens and their positions "
                            "keep the model's initialisation")
    pos = np.concatenate([prefix_pos, pos[:, have:]], axis=1) if wanted else pos[:, have:]
    values[POSITION_EMBEDDING] = pos
    if wanted:
        values[PREFIX_TOKENS] = tokens

    # Patch kernel: the method's rule when the patch size differs (as at a phase switch).
    kernel = src[PATCH_KERNEL]
    patch = tuple(model.patch_embedding.patch_size)
    if tuple(kernel.shape[:2]) != patch:
        rule = "pi" if model.method == "patch-pi" else "bilinear"
        resize = resize_patch_kernel_pi if rule == "pi" else resize_patch_kernel_bilinear
        kernel = resize(kernel, patch)
        report.notes.append(f"patch kernel {tuple(src[PATCH_KERNEL].shape[:2])} -> {patch} by {rule} resize")
    values[PATCH_KERNEL] = kernel
    if checkpoint.format != "kc2f" and checkpoint.source_shapes[PATCH_KERNEL][1] != 1:
        report.notes.append(f"patch kernel summed over {checkpoint.source_shapes[PATCH_KERNEL][1]} "
                            "input channels (RGB -> one-channel spectrogram), as AST")

    # Head: loaded only when it fits (or when asked to, strictly).
    head_kernel = src.get("head/kernel")
    reason = None
    if skip_head:
        reason = "skip_head=True"
    elif head_kernel is None:
        reason = "the checkpoint has no classifier head"
    elif head_kernel.shape[1] != model.num_classes:
        reason = f"class count differs ({head_kernel.shape[1]} in the checkpoint, {model.num_classes} in the model)"
    if reason and skip_head is False:
        raise ValueError(f"Cannot load the classifier head of {path}: {reason}. Received: skip_head=False")
    skipped = set()
    if reason:
        skipped = set(HEAD_WEIGHTS)
        report.notes.append(f"classifier head (head_norm, head) re-initialised: {reason}")
        report.unused += [(checkpoint.origins[p], f"head not loaded: {reason}") for p in HEAD_WEIGHTS if p in src]
    elif "head_norm/gamma" not in src:
        skipped = {"head_norm/gamma", "head_norm/beta"}
        report.notes.append("the checkpoint has no head LayerNorm: head_norm keeps its initialisation "
                            "(unit scale, zero shift)")

    for name, variable in model_weights.items():
        shape = tuple(variable.shape)
        if name in skipped:
            report.entries.append((name, "initialised", None, shape))
            continue
        if name in values:
            value = values[name]
        elif name in src:
            value = src[name]
        else:
            raise ValueError(f"{path} has no weight for the model's '{name}'.")
        key = checkpoint.origins.get(name, name)
        if tuple(value.shape) != shape:
            raise ValueError(
                f"Key '{key}' in {path} has shape {checkpoint.source_shapes.get(name)}, which does not "
                f"fit the model's '{name}' of shape {shape} (check hidden_dim, mlp_ratio, the preset). "
                f"Received: shape={tuple(value.shape)}"
            )
        values[name] = np.asarray(value, dtype=np.float32)
        old = checkpoint.source_shapes[name] if name in checkpoint.source_shapes else None
        resized = name in (POSITION_EMBEDDING, PREFIX_TOKENS, PATCH_KERNEL) and (
            tuple(src[name].shape) != shape
        )
        report.entries.append((name, "resized" if resized else "copied", old, shape))
        report.origins[name] = key
    for name in skipped:
        values.pop(name, None)
    unknown_model = set(src) - set(model_weights) - set(HEAD_WEIGHTS) - {PREFIX_TOKENS}
    report.unused += [(checkpoint.origins[p], PRETRAINING_REASON if p.startswith(PRETRAINING_ONLY)
                       else "no counterpart in this model") for p in sorted(unknown_model)]
    return values, report


def load_checkpoint(path):
    """Reads and converts any supported local checkpoint into a `ConvertedCheckpoint`.

    Args:
        path: `.safetensors`, `.npz`, `.pth`/`.pt`/`.bin`, a kc2f `.keras` file,
            or a kc2f run directory containing `model.keras`.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise FileNotFoundError(
                f"{path} is a directory without model.keras; give a kc2f run directory of a "
                "finished run, a .keras file, or a checkpoint file."
            )
        path = path / "model.keras"
    if path.suffix.lower() == ".keras":
        if not path.is_file():
            raise FileNotFoundError(f"No .keras file at {path}.")
        # The kc2f classes in the file are registered with Keras: importing this module ran
        # `kc2f.families`, which imports every family's model modules.
        return convert_kc2f_model(keras.saving.load_model(path, compile=False), source=path)
    return convert_state_dict(read_checkpoint(path), source=path)


def is_pretraining_checkpoint(path):
    """Whether `path` holds an SSAST pretraining model: a kc2f `kc2f pretrain` run directory or
    `.keras` file (an `SsastPretrainer`), or a state dict with SSAST's pretraining-only weights
    (`PRETRAINING_ONLY`: the official `SSAST-*.pth`, or one converted to `.npz`/`.safetensors`).

    Reads only what it needs (a run's `config.json`, a `.keras` file's config, a state dict's
    names: `checkpoint_keys`); a missing or unreadable file is `False` (`initialize_from` names the
    problem later).
    """
    path = pathlib.Path(path)
    try:
        if path.is_dir():
            config_file = path / "config.json"
            if config_file.is_file():
                return json.loads(config_file.read_text()).get("model") == "ssast"
            path = path / "model.keras"
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json")).get("class_name") == "SsastPretrainer"
        if not path.is_file():
            return False
        keys = checkpoint_keys(path)
    except (OSError, ValueError, KeyError, ImportError, zipfile.BadZipFile):
        return False
    return any(marker in key for key in keys for marker in _PRETRAINING_MARKERS)


def initialize_from(model, path, *, skip_head=None, source_grid=None):
    """Initialises a built AST in place from a pretrained checkpoint on local disk.

    timm/DeiT/ViT (ImageNet, https://arxiv.org/abs/2012.12877), the official
    AST (AudioSet, https://arxiv.org/abs/2104.01778, `module.v.*`), Hugging
    Face's AST (`audio_spectrogram_transformer.*`, `classifier.*`) or kc2f's own
    `.keras` / run directory; converted to kc2f's layout, the position embedding
    interpolated to `model.token_grid` on both axes, the patch kernel summed over
    RGB and resized to the model's patch size by the method's rule, a missing
    distillation token initialised from cls, and the classifier head loaded only
    if it fits. Everything that happened is in the returned report.

    Args:
        model: built `kc2f.families.ast.AudioSpectrogramTransformer` (any method, factor).
        path: local `.safetensors`, `.npz`, `.pth`, `.keras` file, or run directory.
        skip_head: `True`: keep the model's initial head; `False`: the checkpoint's
            head must fit; `None` (default): load it when the class count matches.
        source_grid: `(freq, time)` token grid of the checkpoint, when it cannot be
            inferred (see `infer_source_grid`).

    Returns:
        `PretrainedReport` (a `TransferReport`): per weight copied / resized /
        initialised, unused source keys with reasons, notes.

    Raises:
        FileNotFoundError: no such file.
        ImportError: a `.pth` file without torch installed.
        ValueError: a missing or misshapen key (named with the file), or a depth
            mismatch; the model is left unchanged.
    """
    checkpoint = load_checkpoint(path)
    values, report = fit_checkpoint_to_model(checkpoint, model, skip_head=skip_head, source_grid=source_grid)
    # Assign only once everything converted, so a failure leaves the model untouched.
    for variable in model.weights:
        name = variable.path.split("/", 1)[1]
        if name in values:
            variable.assign(values[name].astype(variable.dtype))
    return report
