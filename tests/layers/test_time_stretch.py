"""TimeStretch: PyTorch's bicubic resize (align_corners=True) along time, and HTS-AT's use of it."""

import numpy as np
import pytest
from keras import ops

from kc2f.layers import TimeStretch
from kc2f.layers.time_stretch import bicubic_resize_matrix


@pytest.mark.parametrize("sizes", [(1001, 1024), (251, 256), (7, 16), (16, 7), (5, 5)])
def test_the_matrix_is_a_resize(sizes):
    matrix = bicubic_resize_matrix(*sizes)
    assert matrix.shape == sizes[::-1]
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)  # constants stay constant
    # The end samples land on the end samples (align_corners). (Torch's a = -0.75 kernel does not
    # reproduce a ramp exactly; the comparison with torch below is the check of the weights.)
    x = np.random.default_rng(1).standard_normal(sizes[0])
    np.testing.assert_allclose((matrix @ x)[[0, -1]], x[[0, -1]], atol=1e-12)
    if sizes[0] == sizes[1]:
        np.testing.assert_array_equal(matrix, np.eye(sizes[0]))


@pytest.mark.parametrize("sizes", [(1001, 1024), (251, 256), (7, 16), (16, 7)])
def test_matches_torch_interpolate_bicubic_align_corners(sizes):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, sizes[0], 6)).astype(np.float32)
    # HTS-AT's reshape_wav2img: F.interpolate(x (B, 1, T, F), (T', F), mode="bicubic", align_corners=True).
    expected = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], (sizes[1], 6), mode="bicubic",
                                               align_corners=True)[:, 0].numpy()
    ours = ops.convert_to_numpy(TimeStretch(*sizes)(x))
    np.testing.assert_allclose(ours, expected, atol=2e-5)


def test_config_round_trip_and_bad_sizes():
    layer = TimeStretch(1001, 1024)
    assert TimeStretch.from_config(layer.get_config()).get_config() == layer.get_config()
    assert layer.compute_output_shape((None, 1001, 64)) == (None, 1024, 64)
    with pytest.raises(ValueError, match="in_size"):
        bicubic_resize_matrix(0, 4)
