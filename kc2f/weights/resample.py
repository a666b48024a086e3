"""Pure functions that resample weights whose shape depends on the token grid.

All work in float32 NumPy (the operators are built in float64), return the input
unchanged when nothing changes, and never crop: *From Coarse to Fine*
(https://arxiv.org/abs/2401.08415) compresses time while every phase spans the
same clip, so a phase switch must interpolate.
"""

import numpy as np


def linear_resize_matrix(old_size, new_size):
    """Matrix `R` of shape `(new_size, old_size)` resampling a signal linearly.

    Samples sit at cell centres (half-pixel convention, as
    `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` and
    `jax.image.resize`): new sample `j` reads position `(j + 0.5)·old/new − 0.5`
    and interpolates its two neighbours. Beyond the outermost centres the two
    edge samples are extrapolated linearly instead of clamped, so any signal
    linear in position is resampled exactly, up or down; inside, this is plain
    bilinear interpolation. Same size gives the identity.
    """
    if old_size < 1 or new_size < 1:
        raise ValueError(
            f"Sizes must be positive. Received: old_size={old_size}, new_size={new_size}"
        )
    if old_size == new_size:
        return np.eye(old_size)
    matrix = np.zeros((new_size, old_size))
    if old_size == 1:
        matrix[:, 0] = 1.0
        return matrix
    position = (np.arange(new_size) + 0.5) * old_size / new_size - 0.5
    left = np.clip(np.floor(position).astype(int), 0, old_size - 2)
    weight = position - left
    rows = np.arange(new_size)
    matrix[rows, left] = 1.0 - weight
    matrix[rows, left + 1] = weight
    return matrix


def resample_position_embedding(embedding, old_grid, new_grid, num_prefix_tokens):
    """Resizes a `(1, prefix + F·T, D)` position embedding to a new `(F', T')` grid.

    The prefix tokens (cls, distillation) are split off and kept; the patch part
    is reshaped to its frequency-major `(F, T, D)` grid, resampled linearly
    along each axis whose size changes (`linear_resize_matrix`), flattened and
    re-attached.

    Args:
        embedding: array `(1, prefix + F·T, D)`.
        old_grid: `(F, T)` of `embedding`.
        new_grid: `(F', T')` wanted.
        num_prefix_tokens: prefix tokens in front of the grid.

    Returns:
        float32 array `(1, prefix + F'·T', D)`; the input itself if the grids match.
    """
    embedding = np.asarray(embedding)
    (f_old, t_old), (f_new, t_new) = tuple(old_grid), tuple(new_grid)
    expected = num_prefix_tokens + f_old * t_old
    if embedding.ndim != 3 or embedding.shape[0] != 1 or embedding.shape[1] != expected:
        raise ValueError(
            f"Expected a position embedding of shape (1, {expected}, D) for grid {old_grid} "
            f"with {num_prefix_tokens} prefix tokens. Received: shape={embedding.shape}"
        )
    if (f_old, t_old) == (f_new, t_new):
        return embedding
    dim = embedding.shape[2]
    prefix = embedding[:, :num_prefix_tokens].astype(np.float32)
    grid = embedding[0, num_prefix_tokens:].astype(np.float32).reshape(f_old, t_old, dim)
    grid = np.einsum("ftd,Ff->Ftd", grid, linear_resize_matrix(f_old, f_new).astype(np.float32))
    grid = np.einsum("ftd,Tt->fTd", grid, linear_resize_matrix(t_old, t_new).astype(np.float32))
    return np.concatenate([prefix, grid.reshape(1, f_new * t_new, dim)], axis=1)


def resize_patch_kernel_bilinear(kernel, new_patch):
    """Bilinearly resizes a `(pf, pt, in, D)` patch kernel to `new_patch = (pf', pt')`.

    The `patch-bl` phase switch of *From Coarse to Fine*: the kernel is treated as
    an image and resampled with `linear_resize_matrix` on each axis whose size
    changes.
    """
    kernel = np.asarray(kernel)
    if tuple(kernel.shape[:2]) == tuple(new_patch):
        return kernel
    rf = linear_resize_matrix(kernel.shape[0], new_patch[0]).astype(np.float32)
    rt = linear_resize_matrix(kernel.shape[1], new_patch[1]).astype(np.float32)
    return np.einsum("Ff,Tt,ftcd->FTcd", rf, rt, kernel.astype(np.float32))


def resize_patch_kernel_pi(kernel, new_patch):
    """PI-resizes a `(pf, pt, in, D)` patch kernel to `new_patch` (FlexiViT).

    FlexiViT (Beyer et al., 2023, https://arxiv.org/abs/2212.08013, §3.4): with
    `B` the linear resize of flattened patches from the old to the new patch
    size, find `ŵ` with `⟨B x, ŵ⟩ = ⟨x, w⟩` for every patch `x`, i.e. solve
    `Bᵀ ŵ = w` by pseudo-inverse, per input and output channel. Exact when
    upsampling (`B` has full column rank); the least-squares solution when
    downsampling, as at a coarse-to-fine phase switch (16 × 16C → 16 × 16).
    `B` is the Kronecker product of the per-axis `linear_resize_matrix`es, so
    `pinv(Bᵀ)` is the Kronecker product of their pseudo-inverses, applied per axis.
    """
    kernel = np.asarray(kernel)
    if tuple(kernel.shape[:2]) == tuple(new_patch):
        return kernel
    pf = np.linalg.pinv(linear_resize_matrix(kernel.shape[0], new_patch[0]).T)
    pt = np.linalg.pinv(linear_resize_matrix(kernel.shape[1], new_patch[1]).T)
    resized = np.einsum("Ff,Tt,ftcd->FTcd", pf, pt, kernel.astype(np.float64))
    return resized.astype(np.float32)


def resize_relative_position_bias(table, old_window, new_window):
    """Maps a Swin relative-position bias table from a `(wh, ww)` window to another.

    The table has one row per relative offset `(dy, dx)`, `dy` in
    `−(wh−1)…wh−1` and `dx` in `−(ww−1)…ww−1`, row-major (Swin's
    `relative_position_bias_table`, `((2wh−1)·(2ww−1), heads)`). An offset
    means the same distance in both windows (the windows differ only in how
    many grid rows fit, never in what a row is), so the table is not
    interpolated: every offset both windows have keeps its bias exactly; a
    smaller window drops the outer offsets, and a larger one gives each new
    offset the bias of the nearest offset the old window had (edge
    replication along each axis). Shrinking and growing back restores the
    shared offsets exactly.

    Args:
        table: array `((2wh−1)·(2ww−1), heads)`.
        old_window: `(wh, ww)` of `table`.
        new_window: `(wh', ww')` wanted.

    Returns:
        float32 array `((2wh'−1)·(2ww'−1), heads)`; the input itself if the windows match.
    """
    table = np.asarray(table)
    (oh, ow), (nh, nw) = tuple(old_window), tuple(new_window)
    if min(oh, ow, nh, nw) < 1:
        raise ValueError(f"Windows must be positive. Received: old_window={old_window}, new_window={new_window}")
    rows, cols = 2 * oh - 1, 2 * ow - 1
    if table.ndim != 2 or table.shape[0] != rows * cols:
        raise ValueError(
            f"Expected a bias table of shape ({rows * cols}, heads) for window {tuple(old_window)}. "
            f"Received: shape={table.shape}"
        )
    if (oh, ow) == (nh, nw):
        return table
    grid = table.reshape(rows, cols, -1).astype(np.float32)
    # Offset d of the new table reads the old offset clip(d, −(old−1), old−1).
    dy = np.clip(np.arange(-(nh - 1), nh), -(oh - 1), oh - 1) + oh - 1
    dx = np.clip(np.arange(-(nw - 1), nw), -(ow - 1), ow - 1) + ow - 1
    return grid[dy][:, dx].reshape((2 * nh - 1) * (2 * nw - 1), -1)
