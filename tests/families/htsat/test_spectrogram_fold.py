"""`kc2f.families.htsat.SpectrogramFold`: HTS-AT's reshape_wav2img, its inverse, and its config."""

import keras
import numpy as np
import pytest

from kc2f.families.htsat import SpectrogramFold


def reference_wav2img(spec, chunks):
    """HTS-AT's reshape_wav2img on (B, T, F) without interpolation: image (B, chunks·F, T/chunks)."""
    b, t, f = spec.shape
    x = spec.transpose(0, 2, 1).reshape(b, f, chunks, t // chunks)
    return x.transpose(0, 2, 1, 3).reshape(b, chunks * f, t // chunks)


@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_matches_reference_layout_and_inverts(chunks):
    spec = np.random.default_rng(0).standard_normal((2, 32, 5)).astype("float32")
    fold = SpectrogramFold(chunks)
    image = keras.ops.convert_to_numpy(fold(spec))
    assert image.shape == (2, 32 // chunks, 5 * chunks)
    np.testing.assert_array_equal(image.transpose(0, 2, 1), reference_wav2img(spec, chunks))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fold.unfold(image)), spec)


def test_bad_arguments_and_config():
    with pytest.raises(ValueError, match="num_chunks"):
        SpectrogramFold(0)
    with pytest.raises(ValueError, match="num_chunks"):
        SpectrogramFold(3)(np.zeros((1, 8, 4), "float32"))
    layer = SpectrogramFold(4)
    assert SpectrogramFold.from_config(layer.get_config()).get_config() == layer.get_config()
