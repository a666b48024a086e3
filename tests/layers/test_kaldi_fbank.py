"""Tests of `kc2f.layers.KaldiFbank` against an independent float64 NumPy reference.

The reference below re-implements, from the Kaldi algorithm as torchaudio writes it
(`torchaudio.compliance.kaldi.fbank` with AST's settings: `htk_compat=True,
use_energy=False, window_type='hanning', dither=0.0, frame_length=25, low_freq=20,
high_freq=0, preemphasis_coefficient=0.97, remove_dc_offset=True, snip_edges=True`),
applied after removing the waveform mean as AST does. It shares no code with the layer,
so a mistake in the layer cannot hide in the reference. torchaudio itself is not a
dependency, hence no direct comparison with it.

Precision. The layer computes in float32, the reference in float64. Every mel bin whose
energy is within 80 dB of its frame's total spectral power must agree to 2e-3 in log
energy; white noise has no deeper bins worth exempting, so it is held to 2e-3 on every
bin. Deeper bins exist only for pure tones and chirps (far from the tone, under the Hann
side lobes) and lie below what float32 resolves: their energy error is set by float32
round-off of the whole frame, so their log error grows as eps32 / sqrt(level), with
level = bin energy / frame power. A plain float32 SciPy version of the same algorithm
misses the float64 reference by exactly as much as the layer does there (up to 2.9e-2,
and 3.05e-3 at -90 dB on the 10 s chirp, i.e. |error| * sqrt(level) / eps32 = 7.1).
Those bins are held to that round-off model with a factor of 16.
"""

import keras
import numpy as np
import pytest
import scipy.signal

from kc2f.layers.kaldi_fbank import KaldiFbank, frame_sums

LOG_TOLERANCE = 2e-3
# Bins quieter than this fraction of their frame's spectral power (-80 dB) are beyond
# float32 resolution; see the module docstring.
RESOLVABLE_LEVEL = 1e-8
FLOAT32_EPS = float(np.finfo(np.float32).eps)
# |error| * sqrt(level) / eps reaches 7.1 here, for the layer and for float32 SciPy
# alike; 16 leaves room for other FFT implementations, and a wrong filter would still
# show on the resolvable bins.
ROUNDOFF_FACTOR = 16.0

SAMPLE_RATES = (8000, 16000, 22050)
FRAME_SHIFTS_MS = (10, 20, 40)


def mel_bins_for(sample_rate):
    # 128 triangles are too narrow at 8 kHz with a 256-point FFT: several would cover
    # no FFT bin at all, which Kaldi allows but which tests nothing.
    return 64 if sample_rate <= 8000 else 128


def reference_fbank(waveform, sample_rate, num_mel_bins, frame_shift_ms, frame_length_ms=25.0):
    """Kaldi fbank in float64. Returns `(log_mel, level)`, both `(frames, num_mel_bins)`.

    `level` is each bin's mel energy divided by its frame's total spectral power, the
    scale on which float32 round-off acts.
    """
    wave = np.asarray(waveform, dtype=np.float64)
    # Same expressions as torchaudio, so that e.g. 22050 Hz * 10 ms truncates alike.
    window_size = int(sample_rate * frame_length_ms * 0.001)
    window_shift = int(sample_rate * frame_shift_ms * 0.001)
    fft_size = 1 << (window_size - 1).bit_length()
    if wave.size < window_size:
        empty = np.zeros((0, num_mel_bins))
        return empty, empty
    wave = wave - wave.mean()
    frames = np.lib.stride_tricks.sliding_window_view(wave, window_size)[::window_shift]
    frames = frames - frames.mean(axis=1, keepdims=True)
    # Kaldi pre-emphasis: x[j] - 0.97 x[max(0, j - 1)], i.e. the first sample replicated.
    # (The symmetric Hann window then zeroes sample 0, so no test can tell this from
    # a zero-padded start; it is kept for fidelity.)
    delayed = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = frames - 0.97 * delayed
    n = np.arange(window_size)
    frames = frames * (0.5 - 0.5 * np.cos(2.0 * np.pi * n / (window_size - 1)))
    spectrum = np.fft.rfft(frames, n=fft_size, axis=1)
    power = spectrum.real**2 + spectrum.imag**2

    def mel(freq):
        return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)

    edges = np.linspace(mel(20.0), mel(sample_rate / 2.0), num_mel_bins + 2)
    bin_mel = mel(np.arange(fft_size // 2 + 1) * sample_rate / fft_size)
    banks = np.stack(
        [
            np.interp(bin_mel, edges[b : b + 3], [0.0, 1.0, 0.0], left=0.0, right=0.0)
            for b in range(num_mel_bins)
        ],
        axis=1,
    )
    # Kaldi's banks cover only fft_size / 2 bins: Nyquist never counts.
    banks[-1, :] = 0.0
    energy = power @ banks
    log_mel = np.log(np.maximum(energy, 1.1920929e-07))
    return log_mel, energy / power.sum(axis=1, keepdims=True)


def make_signal(kind, num_samples, sample_rate, seed=0):
    """Test waveforms in [-1, 1], float32 (the reference gets the same float32 values)."""
    t = np.arange(num_samples) / sample_rate
    if kind == "noise":
        x = np.random.default_rng(seed).uniform(-1.0, 1.0, num_samples)
    elif kind == "tone_low":
        x = 0.9 * np.sin(2.0 * np.pi * 440.3 * t + 0.3)
    elif kind == "tone_high":
        x = np.sin(2.0 * np.pi * 0.37 * sample_rate * t)
    elif kind == "chirp":
        duration = max(t[-1], 1.0 / sample_rate)
        x = 0.8 * scipy.signal.chirp(t, f0=50.0, t1=duration, f1=0.45 * sample_rate)
    else:
        raise ValueError(kind)
    return x.astype(np.float32)


def run_layer(layer, inputs):
    return keras.ops.convert_to_numpy(layer(inputs))


def assert_matches_reference(out, log_mel, level, kind):
    """Compare one clip's layer output with the reference; see the module docstring."""
    assert out.dtype == np.float32
    assert out.shape == log_mel.shape
    if out.size == 0:
        return
    diff = np.abs(out.astype(np.float64) - log_mel)
    if kind == "noise":
        resolvable = np.ones_like(diff, dtype=bool)
    else:
        resolvable = level >= RESOLVABLE_LEVEL
    worst = diff[resolvable].max()
    assert worst <= LOG_TOLERANCE, f"max |diff| {worst:.3g} on resolvable bins"
    quiet = ~resolvable
    if quiet.any():
        # Bins that cover no FFT bin have level 0 and sit on the log floor on both sides.
        bound = ROUNDOFF_FACTOR * FLOAT32_EPS / np.sqrt(np.maximum(level[quiet], 1e-300))
        excess = diff[quiet] / np.maximum(bound, LOG_TOLERANCE)
        assert excess.max() <= 1.0, (
            f"quiet bins: max |diff| {diff[quiet].max():.3g}, "
            f"{excess.max():.3g}x the float32 round-off bound"
        )


@pytest.mark.parametrize("kind", ["noise", "tone_low", "tone_high", "chirp"])
@pytest.mark.parametrize("frame_shift_ms", FRAME_SHIFTS_MS)
@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
def test_one_second_matches_reference(sample_rate, frame_shift_ms, kind):
    num_mel_bins = mel_bins_for(sample_rate)
    x = make_signal(kind, sample_rate, sample_rate)
    layer = KaldiFbank(sample_rate, num_mel_bins, frame_shift_ms=frame_shift_ms)
    out = run_layer(layer, x[None])[0]
    log_mel, level = reference_fbank(x, sample_rate, num_mel_bins, frame_shift_ms)
    assert_matches_reference(out, log_mel, level, kind)


@pytest.mark.parametrize("offset", [0.5, -3.0])
@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_dc_offset_matches_reference(sample_rate, offset):
    # The layer leaves the waveform's mean in (each frame's DC removal cancels it); a clip far
    # off zero must still match the reference, which removes it first as AST does.
    num_mel_bins = mel_bins_for(sample_rate)
    x = (0.3 * make_signal("noise", sample_rate, sample_rate, seed=5) + offset).astype(np.float32)
    layer = KaldiFbank(sample_rate, num_mel_bins)
    out = run_layer(layer, x[None])[0]
    log_mel, level = reference_fbank(x, sample_rate, num_mel_bins, 10)
    assert_matches_reference(out, log_mel, level, "noise")


@pytest.mark.parametrize(("hop", "window"), [(160, 400), (80, 200), (100, 200), (320, 200), (7, 7), (3, 10)])
def test_frame_sums_are_the_sums_of_the_frames(hop, window):
    x = np.random.default_rng(hop).normal(size=(2, 1000)).astype(np.float32)
    frames = 1 + (1000 + hop - window) // hop  # the last one runs past the end (zeros)
    sums = keras.ops.convert_to_numpy(frame_sums(x, frames, hop, window))
    padded = np.concatenate([x.astype(np.float64), np.zeros((2, frames * hop + window))], axis=1)
    expected = np.stack([padded[:, i * hop:i * hop + window].sum(axis=1) for i in range(frames)], axis=1)
    np.testing.assert_allclose(sums, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["noise", "chirp"])
@pytest.mark.parametrize("extra_frames", [0, 3])
@pytest.mark.parametrize("frame_shift_ms", FRAME_SHIFTS_MS)
@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
def test_short_clips_match_reference(sample_rate, frame_shift_ms, extra_frames, kind):
    # Exactly one window, and a few frames plus a remainder that must be dropped.
    num_mel_bins = mel_bins_for(sample_rate)
    layer = KaldiFbank(sample_rate, num_mel_bins, frame_shift_ms=frame_shift_ms)
    num_samples = layer.window_length
    if extra_frames:
        num_samples += extra_frames * layer.hop_length + layer.hop_length // 2
    x = make_signal(kind, num_samples, sample_rate, seed=extra_frames)
    out = run_layer(layer, x[None])[0]
    log_mel, level = reference_fbank(x, sample_rate, num_mel_bins, frame_shift_ms)
    assert log_mel.shape[0] == 1 + extra_frames
    assert_matches_reference(out, log_mel, level, kind)
    assert layer.compute_output_shape((1, num_samples)) == (1, 1 + extra_frames, num_mel_bins)


@pytest.mark.parametrize("target_frames", [None, 7])
@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
def test_shorter_than_one_frame(sample_rate, target_frames):
    layer = KaldiFbank(sample_rate, mel_bins_for(sample_rate), target_frames=target_frames)
    x = make_signal("noise", layer.window_length - 1, sample_rate)
    out = run_layer(layer, x[None])
    if target_frames is None:
        assert out.shape == (1, 0, layer.num_mel_bins)
    else:
        assert out.shape == (1, target_frames, layer.num_mel_bins)
        np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize(
    "sample_rate, frame_shift_ms, kind",
    [(16000, 10, "chirp"), (22050, 40, "noise")],
)
def test_ten_seconds_matches_reference(sample_rate, frame_shift_ms, kind):
    num_mel_bins = mel_bins_for(sample_rate)
    x = make_signal(kind, 10 * sample_rate, sample_rate)
    layer = KaldiFbank(sample_rate, num_mel_bins, frame_shift_ms=frame_shift_ms)
    out = run_layer(layer, x[None])[0]
    log_mel, level = reference_fbank(x, sample_rate, num_mel_bins, frame_shift_ms)
    assert_matches_reference(out, log_mel, level, kind)


# AudioSet statistics (docs/method.md#recipe-values).
MEAN, STD = -4.2677393, 4.5689974


def test_normalisation():
    x = make_signal("noise", 16000, 16000)
    plain = run_layer(KaldiFbank(), x[None])[0]
    normalised = run_layer(KaldiFbank(mean=MEAN, std=STD), x[None])[0]
    log_mel, _ = reference_fbank(x, 16000, 128, 10)
    expected = (log_mel - MEAN) / (2.0 * STD)
    assert np.abs(normalised - expected).max() <= LOG_TOLERANCE / (2.0 * STD)
    # The divisor is 2 std, not std: the same layer output, only rescaled.
    np.testing.assert_allclose(normalised, (plain - MEAN) / (2.0 * STD), rtol=0, atol=1e-6)


def test_padding_comes_after_normalisation():
    # 0.5 s at 16 kHz: 48 frames, padded to 64.
    x = make_signal("noise", 8000, 16000)
    layer = KaldiFbank(target_frames=64, mean=MEAN, std=STD)
    out = run_layer(layer, x[None])[0]
    log_mel, _ = reference_fbank(x, 16000, 128, 10)
    frames = log_mel.shape[0]
    assert frames == 48 and out.shape == (64, 128)
    expected = (log_mel - MEAN) / (2.0 * STD)
    assert np.abs(out[:frames] - expected).max() <= LOG_TOLERANCE / (2.0 * STD)
    # Exactly 0, not (0 - mean) / (2 std) ≈ +0.47 as when padding before normalising.
    np.testing.assert_array_equal(out[frames:], 0.0)


def test_cropping_to_target_frames():
    x = make_signal("chirp", 16000, 16000)
    full = run_layer(KaldiFbank(mean=MEAN, std=STD), x[None])[0]
    cropped = run_layer(KaldiFbank(target_frames=40, mean=MEAN, std=STD), x[None])[0]
    assert full.shape == (98, 128) and cropped.shape == (40, 128)
    # The same frames. XLA (JAX) may sum a frame's samples in another order at another
    # length: the chirp's bins below float32's resolution (module docstring) then differ at
    # round-off level, up to 2e-5 after normalisation; the resolvable ones by at most 4e-6
    # (4e-5 in log energy, against the 2e-3 to which both match the reference).
    _, level = reference_fbank(x, 16000, 128, 10)
    resolvable = level[:40] >= RESOLVABLE_LEVEL
    np.testing.assert_allclose(cropped[resolvable], full[:40][resolvable], rtol=0, atol=1e-5)
    np.testing.assert_allclose(cropped, full[:40], rtol=0, atol=1e-4)


def _padded_batch():
    # Lengths covering full width, a few frames, one frame and less than a frame. The
    # DC offset makes the waveform mean matter to the mean-removal code, although the
    # per-frame DC removal then cancels any constant: what must hold is that padding
    # never reaches a frame and that frames past a clip's end are zero.
    lengths = [16000, 9000, 400, 399]
    # Noise, not tones: the rounding noted in the test below would reach tones'
    # bins beyond float32 resolution far more.
    rng = np.random.default_rng(3)
    clips = [(0.6 * rng.uniform(-1, 1, n) + 0.3).astype(np.float32) for n in lengths]
    batch = np.zeros((len(clips), max(lengths)), np.float32)
    for row, clip in zip(batch, clips):
        row[: clip.size] = clip
    return clips, batch, np.asarray(lengths, np.int32)


@pytest.mark.parametrize("target_frames", [None, 64])
def test_dict_input_matches_each_clip_alone(target_frames):
    clips, batch, lengths = _padded_batch()
    layer = KaldiFbank(target_frames=target_frames, mean=MEAN, std=STD)
    out = run_layer(layer, {"waveform": batch, "length": lengths})
    frames = target_frames or layer.num_frames(batch.shape[1])
    assert out.shape == (len(clips), frames, 128)
    for row, clip in zip(out, clips):
        alone = run_layer(layer, clip[None])[0]
        n = min(alone.shape[0], frames)
        # Not bit-identical: the waveform mean is a float32 sum over the padded row in
        # one case and over the clip alone in the other, and that rounding reaches the
        # quietest (lowest) mel bins at ~1e-4 in log energy on TensorFlow.
        np.testing.assert_allclose(row[:n], alone[:n], rtol=0, atol=5e-4 / (2.0 * STD))
        # Frames past the clip's end are padding: 0 after normalisation.
        np.testing.assert_array_equal(row[n:], 0.0)


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_float32_under_mixed_precision(mixed_bfloat16):
    layer = KaldiFbank()
    assert layer.compute_dtype == "float32" and layer.variable_dtype == "float32"
    x = make_signal("noise", 16000, 16000)
    out = run_layer(layer, x[None])[0]
    log_mel, level = reference_fbank(x, 16000, 128, 10)
    # bfloat16 anywhere in the chain would miss by ~1e-2 or more.
    assert_matches_reference(out, log_mel, level, "noise")


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"sample_rate": 0}, "sample_rate=0"),
        ({"sample_rate": -16000}, "sample_rate=-16000"),
        ({"num_mel_bins": 0}, "num_mel_bins=0"),
        ({"frame_shift_ms": 0.01}, "frame_shift_ms=0.01"),
        ({"frame_length_ms": 0.05}, "frame_length_ms=0.05"),
        ({"target_frames": 0}, "target_frames=0"),
        ({"target_frames": 10.5}, "target_frames=10.5"),
        ({"mean": MEAN}, f"mean={MEAN}"),
        ({"std": STD}, f"std={STD}"),
        ({"mean": MEAN, "std": -1}, "std=-1"),
        ({"mean": MEAN, "std": 0}, "std=0"),
        ({"low_freq": 9000.0}, "low_freq=9000.0"),
        ({"high_freq": 12000.0}, "high_freq=12000.0"),
    ],
)
def test_bad_arguments_raise(kwargs, received):
    with pytest.raises(ValueError) as error:
        KaldiFbank(**kwargs)
    assert received in str(error.value)


def test_get_config_round_trip():
    layer = KaldiFbank(
        sample_rate=22050,
        num_mel_bins=96,
        frame_shift_ms=20.0,
        target_frames=60,
        low_freq=30.0,
        high_freq=-500.0,
        mean=MEAN,
        std=STD,
    )
    config = layer.get_config()
    clone = KaldiFbank.from_config(config)
    assert clone.get_config() == config
    x = make_signal("chirp", 22050, 22050)
    np.testing.assert_array_equal(run_layer(clone, x[None]), run_layer(layer, x[None]))
