"""SpecAugment's stripes: HTS-AT's two per axis against a NumPy transcription of torchlibrosa's DropStripes."""

import numpy as np
import pytest
from keras import ops

from kc2f.layers import SpecAugment
from kc2f.families.htsat import Htsat


def _drop_stripes(rng, size, width, stripes):
    """torchlibrosa DropStripes for one example: each stripe `distance ~ randint(0, width)`,
    `bgn ~ randint(0, size - distance)`, zeroed (float64 NumPy, independent of the layer)."""
    keep = np.ones(size)
    for _ in range(stripes):
        distance = rng.integers(0, width)
        begin = rng.integers(0, size - distance)
        keep[begin:begin + distance] = 0
    return keep


def _masked_runs(keep):
    dropped = 1 - keep
    return int(np.sum(np.diff(np.concatenate([[0], dropped])) == 1))


@pytest.mark.parametrize("stripes", [1, 2])
def test_stripes_mask_as_torchlibrosa_does(stripes):
    frames, mel, batch = 64, 16, 400
    layer = SpecAugment(freq_mask=6, time_mask=20, stripes=stripes, seed=0)
    out = ops.convert_to_numpy(layer(np.ones((batch, frames, mel), "float32"), training=True))
    time_keep, freq_keep = out.max(axis=2), out.max(axis=1)  # a masked frame is 0 in every bin, and so on
    rng = np.random.default_rng(0)
    reference_time = np.stack([_drop_stripes(rng, frames, 20, stripes) for _ in range(4000)])
    reference_freq = np.stack([_drop_stripes(rng, mel, 6, stripes) for _ in range(4000)])
    # At most `stripes` spans per axis, and the masked share of the reference (within sampling error).
    assert max(_masked_runs(row) for row in time_keep) <= stripes
    assert max(_masked_runs(row) for row in freq_keep) <= stripes
    assert abs((1 - time_keep).mean() - (1 - reference_time).mean()) < 0.02
    assert abs((1 - freq_keep).mean() - (1 - reference_freq).mean()) < 0.03
    assert np.array_equal(ops.convert_to_numpy(layer(np.ones((2, frames, mel), "float32"))), np.ones((2, frames, mel)))


def test_htsat_masks_two_stripes_per_axis_and_the_option_round_trips():
    model = Htsat(num_classes=2, target_frames=128, embed_dim=8, depths=(1,), num_heads=(1,), freqm=8, timem=24)
    assert model.spec_augment.stripes == 2
    layer = SpecAugment(freq_mask=3, time_mask=4, stripes=2, seed=1)
    assert SpecAugment.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="stripes"):
        SpecAugment(stripes=0)
