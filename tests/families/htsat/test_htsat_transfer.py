"""`resize_relative_position_bias` by its properties, and the HTS-AT phase-switch transfer."""

import keras
import numpy as np
import pytest

from kc2f.families.htsat import Htsat
from kc2f.weights import resize_relative_position_bias
from kc2f.families.htsat import transfer_swin_weights


def _table(window, heads=3, seed=0):
    return np.random.default_rng(seed).standard_normal(((2 * window[0] - 1) * (2 * window[1] - 1), heads)).astype("float32")


def _offset(table, window, dy, dx):
    return table.reshape(2 * window[0] - 1, 2 * window[1] - 1, -1)[dy + window[0] - 1, dx + window[1] - 1]


@pytest.mark.parametrize("old,new", [((8, 8), (4, 8)), ((8, 8), (2, 8)), ((4, 8), (8, 8)), ((3, 5), (6, 2)),
                                     ((8, 8), (8, 8))])
def test_shared_offsets_keep_their_bias(old, new):
    table = _table(old)
    resized = resize_relative_position_bias(table, old, new)
    assert resized.shape == ((2 * new[0] - 1) * (2 * new[1] - 1), 3)
    for dy in range(-(new[0] - 1), new[0]):
        for dx in range(-(new[1] - 1), new[1]):
            # Offsets the old window has keep their bias; new ones take the nearest old offset's.
            sy = int(np.clip(dy, -(old[0] - 1), old[0] - 1))
            sx = int(np.clip(dx, -(old[1] - 1), old[1] - 1))
            np.testing.assert_array_equal(_offset(resized, new, dy, dx), _offset(table, old, sy, sx))


def test_grow_then_shrink_is_the_identity_and_same_window_returns_input():
    table = _table((2, 8), seed=1)
    grown = resize_relative_position_bias(table, (2, 8), (8, 8))
    np.testing.assert_array_equal(resize_relative_position_bias(grown, (8, 8), (2, 8)), table)
    assert resize_relative_position_bias(table, (2, 8), (2, 8)) is table


def test_bad_shape_is_named():
    with pytest.raises(ValueError, match="window"):
        resize_relative_position_bias(np.zeros((10, 2)), (8, 8), (4, 8))


SMALL = dict(num_classes=4, sample_rate=8000, target_frames=256, num_mel_bins=16, embed_dim=8, depths=(2, 2),
             num_heads=(1, 2), window_size=8, drop_path_rate=0.0)


def _values(model):
    return {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in model.weights}


@pytest.mark.parametrize("sizes", [SMALL, dict(num_classes=527, target_frames=1024)], ids=["small", "official"])
def test_a_round_trip_through_a_coarse_factor_returns_every_weight_bit_for_bit(sizes):
    # Issue 31 item 3: C = 1 -> 4 -> 1 with no training in between gives back the original model,
    # relative-position tables included, although C = 4 cuts windows (at the official size, HTS-AT-Base
    # on 10 s: 8 x 8 windows become 8 x 8, 4 x 8 and 2 x 8 in stages 2-4).
    def build(factor, seed):
        if "embed_dim" in sizes:
            return Htsat(factor=factor, seed=seed, **sizes)
        return Htsat.from_preset("base", factor=factor, seed=seed, **sizes)

    fine, coarse, back = build(1, 5), build(4, 7), build(1, 9)
    cut = [(a[0].window, b[0].window) for a, b in zip(fine.blocks, coarse.blocks) if a[0].window != b[0].window]
    assert cut  # the coarse grid does cut windows, so the tables' handling is exercised
    for layer_table in (v for v in fine.weights if v.path.endswith("relative_position_bias_table")):
        layer_table.assign(np.random.default_rng(len(layer_table.path)).standard_normal(
            tuple(layer_table.shape)).astype("float32"))  # distinct entries: a lost offset would show
    original = _values(fine)
    down = transfer_swin_weights(fine, coarse)
    up = transfer_swin_weights(coarse, back)
    assert down.paths("resized") == up.paths("resized") == []
    names = set(original)
    assert {path for path, *_ in up.entries} == names and all(str(up).count(name) for name in names)
    returned = _values(back)
    for name, value in original.items():
        np.testing.assert_array_equal(returned[name], value, err_msg=name)


def test_same_factor_transfer_gives_identical_outputs():
    a, b = Htsat(factor=2, method="maxpool", **SMALL), Htsat(factor=2, method="maxpool", **{**SMALL, "seed": 3})
    report = transfer_swin_weights(a, b)
    assert report.paths("resized") == []
    wave = np.random.default_rng(0).standard_normal((2, 20480)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a(wave)), keras.ops.convert_to_numpy(b(wave)))


def test_mismatched_models_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        transfer_swin_weights(Htsat(**SMALL), Htsat(**{**SMALL, "depths": (2, 1)}))
