"""`resize_relative_position_bias` by its properties, and the HTS-AT phase-switch transfer."""

import keras
import numpy as np
import pytest

from kc2f.models import Htsat
from kc2f.weights import resize_relative_position_bias, transfer_swin_weights


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


def test_phase_switch_resizes_only_the_shrunk_windows_and_names_every_weight():
    coarse, fine = Htsat(factor=4, **SMALL), Htsat(factor=1, **SMALL)
    assert [b[0].window for b in coarse.blocks] == [(4, 8), (2, 8)]
    assert [b[0].window for b in fine.blocks] == [(8, 8), (8, 8)]
    report = transfer_swin_weights(coarse, fine)
    assert sorted(report.paths("resized")) == sorted(
        f"stage_{s}_block_{b}/relative_position_bias_table" for s in (0, 1) for b in (0, 1))
    names = {v.path.split("/", 1)[1] for v in fine.weights}
    assert {path for path, *_ in report.entries} == names
    assert all(str(report).count(name) >= 1 for name in names)
    src = {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in coarse.weights}
    for v in fine.weights:
        name = v.path.split("/", 1)[1]
        if name not in report.paths("resized"):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), src[name], err_msg=name)
    # And back: the coarse tables come back exactly (their offsets are all in the larger window).
    again = Htsat(factor=4, **{**SMALL, "seed": 9})
    transfer_swin_weights(fine, again)
    for a, b in zip(coarse.weights, again.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)


def test_same_factor_transfer_gives_identical_outputs():
    a, b = Htsat(factor=2, method="maxpool", **SMALL), Htsat(factor=2, method="maxpool", **{**SMALL, "seed": 3})
    report = transfer_swin_weights(a, b)
    assert report.paths("resized") == []
    wave = np.random.default_rng(0).standard_normal((2, 20480)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a(wave)), keras.ops.convert_to_numpy(b(wave)))


def test_mismatched_models_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        transfer_swin_weights(Htsat(**SMALL), Htsat(**{**SMALL, "depths": (2, 1)}))
