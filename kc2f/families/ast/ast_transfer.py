"""Weight transfer between two ASTs built for different phases."""

import numpy as np

from kc2f.weights.resample import (
    resample_position_embedding,
    resize_patch_kernel_bilinear,
    resize_patch_kernel_pi,
)
from kc2f.weights.transfer_report import TransferReport

POSITION_EMBEDDING = "position_embedding/position_embedding"
PATCH_KERNEL = "patch_embedding/kernel"


def _relative_path(variable):
    # Variable paths start with the model's own (auto-numbered) name.
    return variable.path.split("/", 1)[1]


def transfer_weights(src_model, dst_model, patch_resize=None, skip=()):
    """Copies every weight of `src_model` into `dst_model`, resizing grid-shaped ones.

    The phase switch of *From Coarse to Fine* (https://arxiv.org/abs/2401.08415):
    weights of equal shape are copied; the position embedding is resampled to
    the new token grid (`resample_position_embedding`); the patch kernel, when
    its size changed (`patch-bl` / `patch-pi`), is resized bilinearly or by
    PI-resize. Optimizer state is not transferred: the caller compiles a fresh
    optimizer, as the paper resets it.

    Args:
        src_model: trained `AudioSpectrogramTransformer`.
        dst_model: built `AudioSpectrogramTransformer` of the next phase.
        patch_resize: `"bl"` or `"pi"`; `None` picks `"pi"` for `patch-pi` and
            `"bl"` otherwise.
        skip: relative weight paths (e.g. `"head/kernel"`) left as initialised.

    Returns:
        `TransferReport`.

    Raises:
        ValueError: a weight missing on one side, or whose shape cannot be mapped
            (the message names it).
    """
    if patch_resize is None:
        patch_resize = "pi" if dst_model.method == "patch-pi" else "bl"
    if patch_resize not in ("bl", "pi"):
        raise ValueError(f"patch_resize must be 'bl' or 'pi'. Received: patch_resize={patch_resize!r}")
    src = {_relative_path(v): v for v in src_model.weights}
    dst = {_relative_path(v): v for v in dst_model.weights}
    missing = sorted(set(dst) - set(src) - set(skip))
    extra = sorted(set(src) - set(dst) - set(skip))
    if missing or extra:
        raise ValueError(
            "The two models' weights do not match. "
            f"Missing in the source: {missing}; unknown to the destination: {extra}"
        )
    entries = []
    for path, variable in dst.items():
        if path in skip:
            entries.append((path, "skipped", None, tuple(variable.shape)))
            continue
        value = np.asarray(src[path].numpy())
        old_shape, new_shape = tuple(value.shape), tuple(variable.shape)
        if path == POSITION_EMBEDDING and old_shape != new_shape:
            value = resample_position_embedding(
                value, src_model.token_grid, dst_model.token_grid, dst_model.num_prefix_tokens
            )
        elif path == PATCH_KERNEL and old_shape != new_shape and old_shape[2:] == new_shape[2:]:
            resize = resize_patch_kernel_pi if patch_resize == "pi" else resize_patch_kernel_bilinear
            value = resize(value, new_shape[:2])
        if tuple(value.shape) != new_shape:
            raise ValueError(
                f"Cannot map weight '{path}' of shape {old_shape} onto shape {new_shape}."
            )
        variable.assign(value.astype(variable.dtype))
        entries.append((path, "copied" if old_shape == new_shape else "resized", old_shape, new_shape))
    return TransferReport(entries)
