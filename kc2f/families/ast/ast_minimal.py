"""`MinimalAst`: the AST step's arithmetic written directly in `keras.ops`, for `kc2f bench --compare-minimal`.

The same computation as `kc2f.families.ast.AudioSpectrogramTransformer` at one
(method, factor), with none of kc2f's layers after the fbank: time pooling,
SpecAugment masks, non-overlapping patch embedding (reshape + matmul), prefix
tokens and position embedding, pre-norm blocks (LayerNorm, fused QKV,
`ops.dot_product_attention`, exact GELU MLP), final LayerNorm, mean of the
prefix tokens, head LayerNorm and Dense head, all as raw weights and
`keras.ops` calls in one `call`. The fbank is kc2f's own `KaldiFbank`, so the
comparison isolates the layers after it (`kc2f bench --breakdown` times the
fbank on its own). Compiled and timed exactly as kc2f's model (`step.compile_model`,
`step.TrainStep`), its throughput is what the arithmetic costs on this backend;
kc2f's step over it shows the layers' overhead, or a regression in them, as
one number.
"""

import keras
from keras import ops

from kc2f.layers import KaldiFbank


def _layer_norm(x, gamma, beta, epsilon=1e-6):
    # keras.ops' own LayerNorm (what keras.layers.LayerNormalization computes): a
    # hand-written two-pass version moved 50% more bytes through a 12-block AST on XLA CPU.
    return ops.layer_normalization(x, gamma, beta, axis=-1, epsilon=epsilon)


@keras.saving.register_keras_serializable(package="kc2f")
class MinimalAst(keras.Model):
    """AST classifier on waveforms in plain `keras.ops` (benchmark reference only).

    Args:
        num_classes: output classes.
        fbank: `KaldiFbank` constructor arguments (kc2f's model's `fbank.get_config()`).
        pool_factor, pool_mode: time pooling of the fbank (`"max"` or `"avg"`; 1 = none).
        patch_size: `(freq, time)` non-overlapping patch (stride = size).
        hidden_dim, depth, num_heads, mlp_dim: transformer size.
        num_prefix_tokens: cls (+ distillation) tokens, 0 to 2.
        freq_mask, time_mask: SpecAugment maximum widths at this phase's resolution.
        seed: seed of the SpecAugment masks.

    Input: `{"waveform": (batch, samples), "length": (batch,)}` or waveforms.
    Output: logits `(batch, num_classes)`, float32.
    """

    def __init__(self, num_classes, fbank, pool_factor=1, pool_mode="max", patch_size=(16, 16),
                 hidden_dim=192, depth=12, num_heads=3, mlp_dim=768, num_prefix_tokens=2,
                 freq_mask=0, time_mask=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if pool_mode not in ("max", "avg"):
            raise ValueError(f"pool_mode must be 'max' or 'avg'. Received: pool_mode={pool_mode!r}")
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim must be divisible by num_heads. Received: hidden_dim={hidden_dim}, "
                             f"num_heads={num_heads}")
        self.num_classes, self.fbank_config = num_classes, dict(fbank)
        self.pool_factor, self.pool_mode, self.patch_size = pool_factor, pool_mode, tuple(patch_size)
        self.hidden_dim, self.depth, self.num_heads, self.mlp_dim = hidden_dim, depth, num_heads, mlp_dim
        self.num_prefix_tokens, self.freq_mask, self.time_mask, self.seed = (
            num_prefix_tokens, freq_mask, time_mask, seed)
        self.fbank = KaldiFbank(**self.fbank_config)
        self.seed_generator = keras.random.SeedGenerator(seed)
        mel = self.fbank_config.get("num_mel_bins", 128)
        frames = self.fbank_config["target_frames"] // pool_factor
        pf, pt = self.patch_size
        self.grid = (mel // pf, frames // pt)
        tokens = self.grid[0] * self.grid[1] + num_prefix_tokens
        normal = keras.initializers.TruncatedNormal(stddev=0.02)

        def weight(name, shape, init=normal):
            return self.add_weight(name=name, shape=shape, initializer=init)

        self.patch_kernel = weight("patch_kernel", (pf * pt, hidden_dim))
        self.patch_bias = weight("patch_bias", (hidden_dim,), "zeros")
        self.prefix = weight("prefix", (1, num_prefix_tokens, hidden_dim)) if num_prefix_tokens else None
        self.position = weight("position", (1, tokens, hidden_dim))
        self.block_weights = []
        for i in range(depth):
            self.block_weights.append({
                "g1": weight(f"b{i}_g1", (hidden_dim,), "ones"), "b1": weight(f"b{i}_b1", (hidden_dim,), "zeros"),
                "wqkv": weight(f"b{i}_wqkv", (hidden_dim, 3 * hidden_dim)),
                "bqkv": weight(f"b{i}_bqkv", (3 * hidden_dim,), "zeros"),
                "wo": weight(f"b{i}_wo", (hidden_dim, hidden_dim)), "bo": weight(f"b{i}_bo", (hidden_dim,), "zeros"),
                "g2": weight(f"b{i}_g2", (hidden_dim,), "ones"), "b2": weight(f"b{i}_b2", (hidden_dim,), "zeros"),
                "w1": weight(f"b{i}_w1", (hidden_dim, mlp_dim)), "c1": weight(f"b{i}_c1", (mlp_dim,), "zeros"),
                "w2": weight(f"b{i}_w2", (mlp_dim, hidden_dim)), "c2": weight(f"b{i}_c2", (hidden_dim,), "zeros"),
            })
        self.norm_g, self.norm_b = weight("norm_g", (hidden_dim,), "ones"), weight("norm_b", (hidden_dim,), "zeros")
        self.head_g = weight("head_g", (hidden_dim,), "ones")
        self.head_b = weight("head_b", (hidden_dim,), "zeros")
        self.head_w = weight("head_w", (hidden_dim, num_classes))
        self.head_c = weight("head_c", (num_classes,), "zeros")
        self.build()

    def build(self, input_shape=None):
        # Every weight is created in __init__; only the flag is left to set.
        self.built = True

    @classmethod
    def like(cls, model, seed=None):
        """The minimal twin of a kc2f `AudioSpectrogramTransformer` (same shapes and front-end)."""
        plan = model.front_end
        if tuple(plan.patch_stride) != tuple(plan.patch_size):
            raise ValueError(f"--compare-minimal needs non-overlapping patches; method {model.method!r} has "
                             f"patch {plan.patch_size} with stride {plan.patch_stride}.")
        fbank = {k: v for k, v in model.fbank.get_config().items() if k not in ("name", "trainable", "dtype")}
        fbank["dtype"] = "float32"
        return cls(model.num_classes, fbank, plan.pool_factor, plan.pool_mode, plan.patch_size,
                   model.hidden_dim, model.depth, model.num_heads, int(model.hidden_dim * model.mlp_ratio),
                   model.num_prefix_tokens, model.spec_augment.freq_mask, model.spec_augment.time_mask,
                   seed if seed is not None else model.seed)

    def _mask(self, batch, size, max_width):
        width = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * max_width)
        start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (size - width))
        index = ops.cast(ops.arange(size), "float32")[None, :]
        return ops.cast(ops.logical_or(index < start, index >= start + width), "float32")

    def call(self, inputs, training=False):
        x = self.fbank(inputs)  # (batch, frames, mel), float32
        batch, frames, mel = ops.shape(x)[0], x.shape[1], x.shape[2]
        if self.pool_factor > 1:
            frames //= self.pool_factor
            x = ops.reshape(x[:, : frames * self.pool_factor], (-1, frames, self.pool_factor, mel))
            x = ops.max(x, axis=2) if self.pool_mode == "max" else ops.mean(x, axis=2)
        if training and self.freq_mask:
            x = x * self._mask(batch, mel, min(self.freq_mask, mel))[:, None, :]
        if training and self.time_mask:
            x = x * self._mask(batch, frames, min(self.time_mask, frames))[:, :, None]
        x = ops.cast(x, self.compute_dtype)
        (pf, pt), (gf, gt) = self.patch_size, self.grid
        x = ops.transpose(x, (0, 2, 1))[:, : gf * pf, : gt * pt]  # (batch, mel, frames)
        x = ops.reshape(ops.transpose(ops.reshape(x, (-1, gf, pf, gt, pt)), (0, 1, 3, 2, 4)), (-1, gf * gt, pf * pt))
        x = ops.matmul(x, ops.cast(self.patch_kernel, x.dtype)) + ops.cast(self.patch_bias, x.dtype)
        if self.prefix is not None:
            prefix = ops.broadcast_to(ops.cast(self.prefix, x.dtype), (batch, self.num_prefix_tokens, self.hidden_dim))
            x = ops.concatenate([prefix, x], axis=1)
        x = x + ops.cast(self.position, x.dtype)
        tokens, heads, head_dim = x.shape[1], self.num_heads, self.hidden_dim // self.num_heads
        for w in self.block_weights:
            w = {k: ops.cast(v, x.dtype) for k, v in w.items()}
            qkv = ops.reshape(ops.matmul(_layer_norm(x, w["g1"], w["b1"]), w["wqkv"]) + w["bqkv"],
                              (-1, tokens, 3, heads, head_dim))
            attended = ops.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
            x = x + ops.matmul(ops.reshape(attended, (-1, tokens, self.hidden_dim)), w["wo"]) + w["bo"]
            hidden = ops.gelu(ops.matmul(_layer_norm(x, w["g2"], w["b2"]), w["w1"]) + w["c1"], approximate=False)
            x = x + ops.matmul(hidden, w["w2"]) + w["c2"]
        x = _layer_norm(x, ops.cast(self.norm_g, x.dtype), ops.cast(self.norm_b, x.dtype))
        x = ops.mean(x[:, : self.num_prefix_tokens], axis=1) if self.num_prefix_tokens else ops.mean(x, axis=1)
        x = ops.cast(x, "float32")
        x = _layer_norm(x, self.head_g, self.head_b)
        return ops.matmul(x, self.head_w) + self.head_c

    def compute_output_shape(self, input_shape):
        return (None, self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, fbank=self.fbank_config, pool_factor=self.pool_factor,
                      pool_mode=self.pool_mode, patch_size=self.patch_size, hidden_dim=self.hidden_dim,
                      depth=self.depth, num_heads=self.num_heads, mlp_dim=self.mlp_dim,
                      num_prefix_tokens=self.num_prefix_tokens, freq_mask=self.freq_mask,
                      time_mask=self.time_mask, seed=self.seed)
        return config
