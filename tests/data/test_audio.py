"""Decoding and resampling: every container/format/rate gives the same waveform."""

import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal
import tensorflow as tf

from kc2f.data import audio

from ._fixtures import band_limited_signal, write_compressed, write_flac, write_float_wav, write_wav

TARGET = 16000


def reference(path):
    """scipy reads the file, averages channels, resample_poly to 16 kHz."""
    rate, data = scipy.io.wavfile.read(path)
    if data.dtype == np.uint8:
        x = (data.astype(np.float64) - 128) / 128
    elif data.dtype == np.int16:
        x = data / 32768.0
    elif data.dtype == np.int32:  # scipy returns 24-bit left-justified in int32
        x = data / 2.0**31
    else:
        x = data.astype(np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    g = np.gcd(rate, TARGET)
    return scipy.signal.resample_poly(x, TARGET // g, rate // g)


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("width,channels", [(1, 1), (2, 1), (2, 2), (3, 1), (3, 2)])
def test_wav_formats_match_scipy(tmp_path, rate, width, channels):
    x = band_limited_signal(rate, seconds=0.25)
    if channels == 2:
        x = np.stack([x, 0.5 * x[::-1]], axis=1)
    path = write_wav(str(tmp_path / "clip.wav"), x, rate, width)
    y = audio.load_audio(path, TARGET)
    ref = reference(path)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-3)
    # Beyond the quantisation of 8-bit files, every format is the same signal.
    mono = x if channels == 1 else x.mean(axis=1)
    g = np.gcd(rate, TARGET)
    ideal = scipy.signal.resample_poly(mono, TARGET // g, rate // g)
    np.testing.assert_allclose(y, ideal, atol=2e-2 if width == 1 else 1e-3)


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_float_wav_with_extra_chunk(tmp_path, dtype):
    x = band_limited_signal(44100, seconds=0.2)
    path = write_float_wav(str(tmp_path / "f.wav"), x, 44100, dtype)
    np.testing.assert_allclose(audio.load_audio(path, TARGET), reference(path), atol=1e-5)


@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_flac_decodes_bit_identical_to_its_wav_source(tmp_path, rate, width):
    x = np.stack([band_limited_signal(rate, 0.25), band_limited_signal(rate, 0.25, seed=1)], axis=1)
    wav = write_wav(str(tmp_path / "a.wav"), x, rate, width)
    flac = write_flac(str(tmp_path / "a.flac"), x, rate, width)
    flac_samples, flac_rate = audio.read_audio(flac)
    wav_samples, wav_rate = audio.read_audio(wav)
    assert flac_rate == wav_rate == rate and flac_samples.shape == (len(x), 2)
    np.testing.assert_array_equal(flac_samples, wav_samples)
    # The tf.data decoder (the graph, not the eager reader) gives the same samples.
    samples, graph_rate, status = audio.decode_audio_fn(open(flac, "rb").read())
    assert int(status) == audio.STATUS_OK and int(graph_rate) == rate
    np.testing.assert_array_equal(samples.numpy(), wav_samples)
    np.testing.assert_allclose(audio.load_audio(flac, TARGET), reference(wav), atol=1e-3)


def _best_alignment_snr(y, ref):
    """SNR in dB of `y` against `ref` after the best shift within 0.1 s (codec delays)."""
    best = -np.inf
    for shift in range(-1600, 1601, 1):
        a = y[max(shift, 0):]
        b = ref[max(-shift, 0):]
        n = min(len(a), len(b)) - 1600
        if n <= 0:
            continue
        err = np.sum((a[:n] - b[:n]) ** 2)
        best = max(best, 10 * np.log10(np.sum(b[:n] ** 2) / max(err, 1e-20)))
    return best


# Lossy codecs at libsndfile's default quality on a band-limited tone mixture: 25 dB, about
# 6 dB under the lowest measured here with libsndfile 1.2.2 (vorbis 31.1, opus 32.3, mp3 40.4).
@pytest.mark.parametrize("kind,rate", [("vorbis", 44100), ("opus", 48000), ("mp3", 44100)])
def test_lossy_formats_decode_within_tolerance(tmp_path, kind, rate):
    x = band_limited_signal(rate, 0.5)
    path = write_compressed(str(tmp_path / f"a.{'mp3' if kind == 'mp3' else 'ogg'}"),
                            np.stack([x, x], 1), rate, kind)
    samples, decoded_rate = audio.read_audio(path)
    assert decoded_rate == rate and samples.shape[1] == 2
    assert len(samples) == len(x)  # libsndfile removes the encoder's delay and padding
    y = audio.load_audio(path, TARGET)
    g = np.gcd(rate, TARGET)
    ref = scipy.signal.resample_poly(x, TARGET // g, rate // g)
    assert _best_alignment_snr(y, ref) >= 25.0


@pytest.mark.parametrize("kind", ["flac", "vorbis", "opus", "mp3"])
def test_a_corrupt_stream_of_each_format_is_named(tmp_path, kind):
    x = band_limited_signal(16000, 0.5)
    suffix = {"flac": "flac", "mp3": "mp3"}.get(kind, "ogg")
    good = str(tmp_path / f"good.{suffix}")
    if kind == "flac":
        write_flac(good, x, 16000)
    else:
        write_compressed(good, x, 48000 if kind == "opus" else 16000, kind)
    data = open(good, "rb").read()
    bad = tmp_path / f"bad.{suffix}"
    # The header survives (so the format is recognised), the audio frames are noise.
    noise = np.random.default_rng(0).integers(0, 256, len(data) - 200, dtype=np.uint8).tobytes()
    bad.write_bytes(data[:200] + noise)
    with pytest.raises(audio.AudioError, match=r"bad\.\w+: corrupt audio stream: "):
        audio.load_audio(str(bad), TARGET)
    _, _, status = audio.decode_audio_fn(bad.read_bytes())
    assert int(status) == audio.STATUS_UNDECODABLE
    assert audio.STATUS_REASONS[audio.STATUS_UNDECODABLE] == "corrupt"


def test_ogg_with_an_unknown_codec_is_unsupported():
    # An Ogg page whose first packet is Speex: recognised as Ogg, not decodable.
    page = b"OggS" + bytes(22) + bytes([1, 80]) + b"Speex   " + bytes(72)
    _, _, status = audio.decode_audio_fn(page)
    assert int(status) == audio.STATUS_UNSUPPORTED


def test_resampler_for_rates_without_a_small_polyphase_matrix_matches_resample_poly():
    # 44101 -> 16000: up/down = 16000/44101, a polyphase matrix of 10^9 coefficients.
    r = audio.get_resampler(44101, 16000)
    assert not r.exact
    x = np.random.default_rng(0).standard_normal(44101 // 4).astype(np.float32)
    ref = scipy.signal.resample_poly(x.astype(np.float64), 16000, 44101)
    y = r(x).numpy()
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=2e-4)
    np.testing.assert_allclose(r(x, 1000, 300).numpy(), ref[1000:1300], atol=2e-4)


def test_direct_resampler_equals_the_polyphase_matrix_on_a_rational_pair():
    r = audio.Resampler(44100, 16000)
    x = np.random.default_rng(1).standard_normal(4410).astype(np.float32)
    n = r.output_length(len(x))
    np.testing.assert_allclose(r._direct(tf.constant(x), 0, n).numpy(), r(x).numpy(), atol=2e-5)


@pytest.mark.parametrize("rate_in,rate_out", [(8000, 16000), (44100, 16000), (48000, 16000),
                                              (22050, 16000), (16000, 8000)])
def test_resampler_equals_resample_poly(rate_in, rate_out):
    x = np.random.default_rng(0).standard_normal(rate_in // 4 + 13).astype(np.float32)
    g = np.gcd(rate_in, rate_out)
    ref = scipy.signal.resample_poly(x.astype(np.float64), rate_out // g, rate_in // g)
    y = audio.resample(x, rate_in, rate_out).numpy()
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)
    # A crop computes only what it needs and still equals the full resampling.
    r = audio.get_resampler(rate_in, rate_out)
    start = 2 * r.up
    np.testing.assert_allclose(r(x, start, 500).numpy(), ref[start:start + 500], atol=1e-5)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(audio.AudioError, match="missing.wav: file does not exist"):
        audio.load_audio(str(tmp_path / "missing.wav"), TARGET)
    (tmp_path / "text.wav").write_bytes(b"hello, not audio")
    with pytest.raises(audio.AudioError, match=r"text.wav: not an audio file \(starts with b'hello, n'\)"):
        audio.load_audio(str(tmp_path / "text.wav"), TARGET)
    with pytest.raises(ValueError, match="Received: sample_rate=0"):
        audio.load_audio(str(tmp_path / "text.wav"), 0)


def test_fsdd_clip(fsdd_dir):
    # An FSDD recording: mono 16-bit PCM at 8 kHz (the generated stand-in has the same format).
    path = str(fsdd_dir / "recordings" / "0_alice_0.wav")
    y8 = audio.load_audio(path, 8000)
    rate, data = scipy.io.wavfile.read(path)
    assert rate == 8000 and data.dtype == np.int16 and data.ndim == 1
    np.testing.assert_array_equal(y8, (data / 32768.0).astype(np.float32))
    np.testing.assert_allclose(audio.load_audio(path, 16000),
                               scipy.signal.resample_poly(data / 32768.0, 2, 1), atol=1e-5)


def _riff(payload, *, tag=1, width=2, channels=1, rate=8000, extensible=False, before_fmt=b"",
          data_size=None, drop=0):
    """A WAV file's bytes: optional chunks before `fmt `, the samples' bytes `payload`."""
    import struct

    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * channels * width,
                      channels * width, 8 * width)
    if extensible:
        fmt += struct.pack("<HHIH", 22, 8 * width, 0, tag) + b"\x00" * 14
    body = b"WAVE" + before_fmt + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(payload) if data_size is None else data_size) + payload
    contents = b"RIFF" + struct.pack("<I", len(body)) + body
    return contents[:len(contents) - drop] if drop else contents


@pytest.mark.parametrize("tag,width,dtype", [(1, 1, "u1"), (1, 2, "<i2"), (1, 3, None), (1, 4, "<i4"),
                                             (3, 4, "<f4"), (3, 8, "<f8")])
@pytest.mark.parametrize("variant", ["plain", "stereo", "extensible", "list-chunk-first", "streaming-0",
                                     "streaming-ffffffff"])
def test_numpy_wav_reader_equals_the_graph_decoder(tag, width, dtype, variant):
    """read_audio decodes well-formed WAVs in NumPy (no trace); its samples must be the graph
    decoder's, bit for bit, for every format and layout the graph decoder takes."""
    import tensorflow as tf

    rng = np.random.default_rng(width)
    channels = 2 if variant == "stereo" else 1
    frames = 37
    if dtype is None:
        payload = rng.integers(0, 256, size=frames * channels * 3, dtype=np.uint8).tobytes()
    elif tag == 3:
        payload = rng.uniform(-1, 1, size=frames * channels).astype(dtype).tobytes()
    else:
        info = np.iinfo(np.dtype(dtype))
        payload = rng.integers(info.min, info.max, size=frames * channels, dtype=np.dtype(dtype),
                               endpoint=True).tobytes()
    options = {"tag": tag, "width": width, "channels": channels, "extensible": variant == "extensible",
               "before_fmt": b"LIST\x05\x00\x00\x00abcde\x00" if variant == "list-chunk-first" else b"",
               "data_size": {"streaming-0": 0, "streaming-ffffffff": 0xFFFFFFFF}.get(variant)}
    contents = _riff(payload, **options)
    samples, rate = audio._decode_wav_numpy(contents)
    expected, expected_rate, status = audio.decode_wav_fn(tf.constant(contents))
    assert int(status) == audio.STATUS_OK and rate == int(expected_rate) == 8000
    assert samples.dtype == np.float32 and samples.shape == (frames, channels)
    np.testing.assert_array_equal(samples, expected.numpy())


def test_numpy_wav_reader_leaves_bad_files_to_the_graph_decoder(tmp_path):
    """Truncated, unsupported and headerless files get None, so read_audio's error is the graph
    decoder's status, naming the problem."""
    payload = np.arange(40, dtype="<i2").tobytes()
    assert audio._decode_wav_numpy(_riff(payload, drop=10)) is None  # truncated
    assert audio._decode_wav_numpy(_riff(payload, tag=2)) is None  # ADPCM
    assert audio._decode_wav_numpy(b"RIFF\x04\x00\x00\x00WAVE") is None
    path = tmp_path / "short.wav"
    path.write_bytes(_riff(payload, drop=10))
    with pytest.raises(audio.AudioError, match="truncated"):
        audio.read_audio(path)
