"""`kc2f.layers.LogMelSpectrogram` against an independent float64 NumPy log-mel.

The reference re-implements, loop by loop from librosa's formulas as torchlibrosa
uses them in HTS-AT (`Spectrogram(center=True, pad_mode="reflect", window="hann")`,
`LogmelFilterBank(ref=1.0, amin=1e-10, top_db=None)`, i.e. `librosa.filters.mel(
htk=False, norm="slaney")` and `power_to_db`), sharing no code with the layer.
librosa and torch are not dependencies, so the check against them is indirect: the
mel scale's known values (`librosa.hz_to_mel(60) == 0.9`, 1000 Hz == 15 mel).
"""

import math

import keras
import numpy as np
import pytest

from kc2f.layers import LogMelSpectrogram
from kc2f.layers.log_mel_spectrogram import slaney_hz_to_mel, slaney_mel_to_hz

TOLERANCE_DB = 1e-3


def _hz_to_mel(f):
    if f < 1000.0:
        return f * 3.0 / 200.0
    return 15.0 + math.log(f / 1000.0) / (math.log(6.4) / 27.0)


def _mel_to_hz(m):
    if m < 15.0:
        return m * 200.0 / 3.0
    return 1000.0 * math.exp((m - 15.0) * math.log(6.4) / 27.0)


def reference_filters(sample_rate, n_fft, n_mels, fmin, fmax):
    """librosa.filters.mel(htk=False, norm='slaney'): `(n_mels, 1 + n_fft // 2)`, float64, loops."""
    freqs = [sample_rate / 2.0 * k / (n_fft // 2) for k in range(n_fft // 2 + 1)]
    lo, hi = _hz_to_mel(fmin), _hz_to_mel(fmax)
    edges = [_mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    weights = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            rising = (f - left) / (centre - left)
            falling = (right - f) / (right - centre)
            weights[m, k] = max(0.0, min(rising, falling)) * 2.0 / (right - left)
    return weights


def reference_log_mel(wave, sample_rate, n_fft, hop, n_mels, fmin, fmax, amin=1e-10, ref=1.0):
    wave = np.asarray(wave, dtype=np.float64)
    padded = np.pad(wave, n_fft // 2, mode="reflect")
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / n_fft) for n in range(n_fft)])
    frames = 1 + (len(padded) - n_fft) // hop
    power = np.stack([np.abs(np.fft.rfft(padded[t * hop: t * hop + n_fft] * window)) ** 2 for t in range(frames)])
    mel = power @ reference_filters(sample_rate, n_fft, n_mels, fmin, fmax).T
    return 10.0 * np.log10(np.maximum(mel, amin)) - 10.0 * np.log10(max(amin, ref))


def test_mel_scale_known_values():
    assert slaney_hz_to_mel(60.0) == pytest.approx(0.9)
    assert slaney_hz_to_mel(1000.0) == pytest.approx(15.0)
    hz = np.array([0.0, 50.0, 999.0, 1000.0, 4000.0, 14000.0])
    np.testing.assert_allclose(slaney_mel_to_hz(slaney_hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    "sample_rate,n_fft,hop,n_mels,fmin,fmax,seconds",
    [(32000, 1024, 320, 64, 50.0, 14000.0, 0.5), (8000, 256, 80, 64, 50.0, 4000.0, 1.28),
     (8000, 256, 320, 64, 50.0, 4000.0, 1.28), (16000, 512, 160, 32, 0.0, 8000.0, 0.3)],
)
def test_matches_float64_reference(sample_rate, n_fft, hop, n_mels, fmin, fmax, seconds):
    rng = np.random.default_rng(0)
    samples = int(sample_rate * seconds)
    t = np.arange(samples) / sample_rate
    wave = 0.1 * rng.standard_normal(samples) + 0.5 * np.sin(2 * np.pi * 440 * t * (1 + t))
    layer = LogMelSpectrogram(sample_rate=sample_rate, fft_length=n_fft, hop_length=hop, num_mel_bins=n_mels,
                              low_freq=fmin, high_freq=fmax)
    ours = keras.ops.convert_to_numpy(layer(wave[None].astype("float32")))[0]
    ref = reference_log_mel(wave.astype("float32"), sample_rate, n_fft, hop, n_mels, fmin, fmax)
    assert ours.shape == ref.shape == (1 + samples // hop, n_mels)
    assert np.max(np.abs(ours - ref)) < TOLERANCE_DB


def test_target_frames_and_length_mask():
    rng = np.random.default_rng(1)
    wave = rng.standard_normal((2, 4000)).astype("float32")
    layer = LogMelSpectrogram(sample_rate=8000, fft_length=256, hop_length=80, num_mel_bins=16,
                              high_freq=4000.0, target_frames=32)
    out = keras.ops.convert_to_numpy(layer({"waveform": wave, "length": np.array([4000, 1000])}))
    assert out.shape == (2, 32, 16)
    short = wave[1].copy()
    short[1000:] = 0.0
    ref = reference_log_mel(short, 8000, 256, 80, 16, 50.0, 4000.0)[:32]
    assert np.max(np.abs(out[1] - ref)) < TOLERANCE_DB


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="a run-time clip length is reached by the SavedModel export, traced under TensorFlow")
@pytest.mark.parametrize("samples", [3000, 6000])
def test_run_time_length_equals_static_length(samples):
    import tensorflow as tf

    rng = np.random.default_rng(2)
    wave = rng.standard_normal((2, samples)).astype("float32")
    length = np.array([samples, samples // 2], dtype="int32")
    layer = LogMelSpectrogram(sample_rate=8000, fft_length=256, hop_length=80, num_mel_bins=16,
                              high_freq=4000.0, target_frames=64)
    dynamic = tf.function(
        lambda w, n: layer({"waveform": w, "length": n}),
        input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)],
    )
    out = dynamic(wave, length).numpy()
    static = keras.ops.convert_to_numpy(layer({"waveform": wave, "length": length}))
    assert out.shape == static.shape == (2, 64, 16)
    np.testing.assert_allclose(out, static, atol=1e-4)
    # 6000 samples give 76 frames, cropped to 64; 3000 give 38, the rest is zero padding.
    ref = reference_log_mel(wave[0], 8000, 256, 80, 16, 50.0, 4000.0)
    frames = min(64, ref.shape[0])
    assert np.max(np.abs(out[0, :frames] - ref[:frames])) < TOLERANCE_DB


def test_config_round_trip():
    layer = LogMelSpectrogram(sample_rate=8000, fft_length=256, hop_length=40, num_mel_bins=32,
                              high_freq=4000.0, target_frames=64)
    config = layer.get_config()
    clone = LogMelSpectrogram.from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("kwargs,name", [
    ({"fft_length": 0}, "fft_length"), ({"hop_length": 1.5}, "hop_length"),
    ({"high_freq": 20000.0}, "high_freq"), ({"target_frames": -1}, "target_frames"),
    ({"amin": 0.0}, "amin"), ({"num_mel_bins": 0}, "num_mel_bins"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LogMelSpectrogram(**kwargs)


def test_keras_mel_spectrogram_is_not_slaney():
    """Why kc2f has its own layer: Keras' MelSpectrogram uses HTK-scale filters (docs/method.md#hts-at)."""
    keras_layer = keras.layers.MelSpectrogram(
        fft_length=1024, sequence_stride=320, sequence_length=1024, window="hann", sampling_rate=32000,
        num_mel_bins=64, min_freq=50.0, max_freq=14000.0, power_to_db=True, top_db=1e9, mag_exp=2.0,
        min_power=1e-10, ref_power=1.0)
    wave = np.random.default_rng(2).standard_normal((1, 16000)).astype("float32")
    theirs = keras.ops.convert_to_numpy(keras_layer(wave))  # (batch, mels, frames)
    ours = keras.ops.convert_to_numpy(LogMelSpectrogram()(wave))
    frames = min(theirs.shape[-1], ours.shape[1])
    assert np.max(np.abs(theirs[0, :, :frames].T - ours[0, :frames])) > 1.0
