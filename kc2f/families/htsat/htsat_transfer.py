"""Weight transfer between two HTS-AT models built for different phases."""

import numpy as np

from kc2f.weights.resample import resize_relative_position_bias
from kc2f.weights.transfer_report import TransferReport

BIAS_TABLE = "relative_position_bias_table"


def _relative_path(variable):
    return variable.path.split("/", 1)[1]


def transfer_swin_weights(src_model, dst_model):
    """Copies every weight of one `Htsat` into another of another factor, resizing the window-shaped ones.

    `Htsat` folds a coarse spectrogram into fewer time chunks, so its token
    grids lose rows, not columns; every weight keeps its shape, the
    relative-position bias tables included (`SwinTransformerBlock` keeps the
    configured window's table where the grid cuts the window, and reads its
    centre), so the switch copies them and a return to C = 1 finds every
    offset it had. Tables of models of another window size are mapped
    offset by offset (`resize_relative_position_bias`). The token-semantic head's
    kernel spans the rows of one chunk, the same at every factor, and HTS-AT
    has no absolute position embedding (its `ape=False`), so both are copied.
    The optimizer is not transferred (the trainer compiles a fresh one).

    Args:
        src_model: trained `Htsat`.
        dst_model: built `Htsat` of the next phase (same sizes, another factor).

    Returns:
        `kc2f.weights.TransferReport`, one entry per weight.

    Raises:
        ValueError: the models' weights differ in name or in a shape that is
            not a bias table (the message names the weight).
    """
    src = {_relative_path(v): v for v in src_model.weights}
    dst = {_relative_path(v): v for v in dst_model.weights}
    if set(src) != set(dst):
        raise ValueError(
            "The two models' weights do not match. "
            f"Missing in the source: {sorted(set(dst) - set(src))}; "
            f"unknown to the destination: {sorted(set(src) - set(dst))}"
        )
    windows = {}
    for model, side in ((src_model, 0), (dst_model, 1)):
        for blocks in model.blocks:
            for block in blocks:
                windows.setdefault(block.name, [None, None])[side] = block.table_window
    entries = []
    for path, variable in dst.items():
        value = np.asarray(src[path].numpy())
        old_shape, new_shape = tuple(value.shape), tuple(variable.shape)
        if path.endswith(BIAS_TABLE) and old_shape != new_shape:
            old_window, new_window = windows[path.split("/")[-2]]
            value = resize_relative_position_bias(value, old_window, new_window)
        if tuple(value.shape) != new_shape:
            raise ValueError(f"Cannot map weight '{path}' of shape {old_shape} onto shape {new_shape}.")
        variable.assign(value.astype(variable.dtype))
        entries.append((path, "copied" if old_shape == new_shape else "resized", old_shape, new_shape))
    return TransferReport(entries)
