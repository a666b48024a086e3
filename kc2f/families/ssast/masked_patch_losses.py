"""SSAST's two pretext losses on masked spectrogram patches, in `keras.ops`.

SSAST (Gong et al., https://arxiv.org/abs/2110.09784, §2.2; reference code
`src/models/ast_models.py`, `mpc` and `mpg`): the encoder's outputs at the
masked positions go through two prediction heads; one is trained to pick
the clip's true patch among the clip's other masked patches (InfoNCE, the
discriminative objective), the other to reconstruct the patch (MSE, the
generative objective). The joint loss is `nce + 10 · mse`.
"""

from keras import ops

GENERATIVE_WEIGHT = 10.0  # SSAST's lambda (src/traintest_mask.py: loss = loss1 + 10 * loss2)


def spectrogram_patches(spectrogram, patch_size):
    """The flattened patches of `(batch, frames, mel)`, as `PatchEmbedding` orders its tokens.

    Returns `(batch, freq_tokens · time_tokens, patch_freq · patch_time)`:
    token `f * time_tokens + t`, pixels frequency-major inside the patch (what
    PyTorch's `Unfold` gives SSAST for a `(mel, frames)` image).
    """
    pf, pt = patch_size
    frames, mel = spectrogram.shape[1], spectrogram.shape[2]
    gf, gt = mel // pf, frames // pt
    image = ops.transpose(spectrogram, (0, 2, 1))[:, : gf * pf, : gt * pt]
    x = ops.reshape(image, (-1, gf, pf, gt, pt))
    x = ops.transpose(x, (0, 1, 3, 2, 4))
    return ops.reshape(x, (-1, gf * gt, pf * pt))


def info_nce(predictions, targets):
    """Per-clip InfoNCE over the masked patches, and the masked-patch accuracy.

    For clip `b`, `scores[i, j] = targets[i] · predictions[j]`; the loss is
    `−mean_i log softmax_j(scores[i, :])[i]` (each true patch must score
    highest with its own prediction) and the accuracy is the share of
    predictions `j` whose best-scoring true patch is `j` (SSAST's `mpc`).

    Args:
        predictions: `(batch, masked, patch_dim)`.
        targets: `(batch, masked, patch_dim)` (gradients stopped by the caller).

    Returns:
        `(nce, accuracy)`, both `(batch,)` float32.
    """
    predictions = ops.cast(predictions, "float32")
    targets = ops.cast(targets, "float32")
    scores = ops.einsum("bip,bjp->bij", targets, predictions)
    log_probs = ops.log_softmax(scores, axis=-1)
    masked = scores.shape[1]
    # The diagonal as a masked sum: TensorFlow cannot differentiate `diagonal` of a batch of unknown size.
    own = ops.sum(log_probs * ops.eye(masked, dtype="float32")[None], axis=-1)
    nce = -ops.mean(own, axis=-1)
    hits = ops.equal(ops.argmax(scores, axis=1), ops.arange(masked)[None, :])
    accuracy = ops.mean(ops.cast(hits, "float32"), axis=-1)
    return nce, accuracy


def patch_mse(predictions, targets):
    """Per-clip mean squared error of the reconstructed masked patches, `(batch,)` float32."""
    diff = ops.cast(predictions, "float32") - ops.cast(targets, "float32")
    return ops.mean(ops.square(diff), axis=(1, 2))
