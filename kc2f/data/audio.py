"""Audio decoding, mono mixing and resampling, in TensorFlow graph ops.

Everything here runs inside `tf.data` (graph mode, parallel, no Python and no
GIL per clip), and eagerly through `load_audio` for prediction and statistics.

* WAV is parsed with core TF ops (`tf.io.decode_raw` on the `data` chunk):
  PCM 8 (unsigned) / 16 / 24 / 32 bit, IEEE float 32 / 64 bit, plain or
  `WAVE_FORMAT_EXTENSIBLE`, any chunk order, any channel count. Neither
  `tf.audio.decode_wav` (16-bit only) nor `tfio.audio.decode_wav` (needs the
  dtype in advance, misreads 32-bit PCM as float) covers that.
* FLAC, Ogg (Vorbis, Opus, FLAC) and MP3 are decoded by libsndfile (the
  `soundfile` package, whose wheels bundle it, MP3 included) through
  `tf.numpy_function`; the format is recognised and its header checked in-graph.
* Resampling is an exact polyphase FIR, the same filter and alignment as
  `scipy.signal.resample_poly` (Kaiser window, beta 5, half-length 10 * max(up,
  down)), written as one strided frame + matmul per rate pair. Rate pairs whose
  polyphase matrix would be too large evaluate the same windowed-sinc filter at
  each output's position instead.

Decoding never raises for a malformed header: it returns a status code
(`STATUS_*`), so the pre-training scan (`kc2f.data.pipeline.validate_audio`)
can name every bad file and why.
"""

import functools
import math
import os

import numpy as np
import tensorflow as tf

STATUS_OK = 0
STATUS_NOT_AUDIO = 1
STATUS_CORRUPT = 2
STATUS_TRUNCATED = 3
STATUS_UNSUPPORTED = 4
STATUS_EMPTY = 5
STATUS_UNDECODABLE = 6  # the header reads, libsndfile cannot decode the stream

# Stable reason keys (used in reports, counts and messages) per decode status.
STATUS_REASONS = {
    STATUS_NOT_AUDIO: "not_audio",
    STATUS_CORRUPT: "corrupt",
    STATUS_TRUNCATED: "truncated",
    STATUS_UNSUPPORTED: "unsupported",
    STATUS_EMPTY: "empty",
    STATUS_UNDECODABLE: "corrupt",
}

# Above this many filter coefficients (e.g. 44101 Hz -> 16000 Hz, up/down in the
# tens of thousands) the exact polyphase matrix is too large; the filter is then
# evaluated per output (`Resampler._direct`).
_MAX_POLYPHASE_COEFFICIENTS = 4_000_000


class AudioError(Exception):
    """An audio file cannot be used.

    Args:
        path: the file.
        reason: what is wrong, in words.
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# ---------------------------------------------------------------------------
# Byte helpers (graph mode). `contents` is a scalar tf.string.


def _bytes(contents, start, n):
    """`n` bytes at `start` as int64, zero-filled past the end (never raises)."""
    size = tf.strings.length(contents, unit="BYTE")
    start = tf.clip_by_value(tf.cast(start, tf.int32), 0, size)
    piece = tf.strings.substr(contents, start, n, unit="BYTE")
    values = tf.cast(tf.io.decode_raw(piece, tf.uint8), tf.int64)
    return tf.pad(values, [[0, n - tf.size(values)]])


def _le(contents, start, n):
    """Little-endian unsigned integer of `n` bytes at `start` (int64)."""
    weights = tf.constant([256**i for i in range(n)], tf.int64)
    return tf.reduce_sum(_bytes(contents, start, n) * weights)


def _tag(contents, start, n=4):
    size = tf.strings.length(contents, unit="BYTE")
    start = tf.clip_by_value(tf.cast(start, tf.int32), 0, size)
    return tf.strings.substr(contents, start, n, unit="BYTE")


def _result(samples, rate, status):
    return (
        tf.reshape(tf.cast(samples, tf.float32), [-1, tf.shape(samples)[-1]]),
        tf.cast(rate, tf.int32),
        tf.constant(status, tf.int32) if isinstance(status, int) else tf.cast(status, tf.int32),
    )


def _failed(status):
    return _result(tf.zeros([0, 1], tf.float32), 0, status)


# ---------------------------------------------------------------------------
# WAV


def _decode_wav(contents):
    size = tf.cast(tf.strings.length(contents, unit="BYTE"), tf.int64)

    # Walk the RIFF chunks: fmt and data can come in any order, after LIST/fact/... chunks.
    def cond(pos, fmt_pos, data_pos, data_size, step):
        return (pos + 8 <= size) & (data_pos < 0) & (step < 256)

    def body(pos, fmt_pos, data_pos, data_size, step):
        chunk = _tag(contents, pos)
        chunk_size = _le(contents, pos + 4, 4)
        fmt_pos = tf.where(tf.equal(chunk, "fmt "), pos + 8, fmt_pos)
        is_data = tf.equal(chunk, "data")
        data_pos = tf.where(is_data, pos + 8, data_pos)
        data_size = tf.where(is_data, chunk_size, data_size)
        return pos + 8 + chunk_size + chunk_size % 2, fmt_pos, data_pos, data_size, step + 1

    minus1 = tf.constant(-1, tf.int64)
    _, fmt_pos, data_pos, data_size, _ = tf.while_loop(
        cond, body, (tf.constant(12, tf.int64), minus1, minus1, tf.constant(0, tf.int64), 0)
    )
    header_ok = tf.equal(_tag(contents, 8), "WAVE") & (fmt_pos >= 0) & (fmt_pos + 16 <= size)
    header_ok &= data_pos >= 0

    tag = _le(contents, fmt_pos, 2)
    tag = tf.where(tf.equal(tag, 0xFFFE), _le(contents, fmt_pos + 24, 2), tag)  # EXTENSIBLE
    channels = _le(contents, fmt_pos + 2, 2)
    rate = _le(contents, fmt_pos + 4, 4)
    block_align = _le(contents, fmt_pos + 12, 2)
    header_ok &= (channels >= 1) & (rate >= 1) & (block_align >= 1)
    width = block_align // tf.maximum(channels, 1)  # container bytes per sample
    header_ok &= tf.equal(width * channels, block_align)

    # Branch index: 0 u8, 1 s16, 2 s24, 3 s32, 4 f32, 5 f64, 6 unsupported.
    is_pcm, is_float = tf.equal(tag, 1), tf.equal(tag, 3)
    code = tf.case(
        [
            (is_pcm & tf.equal(width, 1), lambda: 0),
            (is_pcm & tf.equal(width, 2), lambda: 1),
            (is_pcm & tf.equal(width, 3), lambda: 2),
            (is_pcm & tf.equal(width, 4), lambda: 3),
            (is_float & tf.equal(width, 4), lambda: 4),
            (is_float & tf.equal(width, 8), lambda: 5),
        ],
        default=lambda: 6,
    )

    available = tf.maximum(size - data_pos, 0)
    # 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back:
    # "until the end of the file", not truncation.
    streaming = tf.equal(data_size, 0) | tf.equal(data_size, 0xFFFFFFFF)
    declared = tf.where(streaming, available, data_size)
    truncated = declared > available
    num_bytes = tf.minimum(declared, available)
    num_bytes -= num_bytes % tf.maximum(block_align, 1)

    def decode():
        data = tf.strings.substr(
            contents, tf.cast(data_pos, tf.int32), tf.cast(num_bytes, tf.int32), unit="BYTE"
        )

        def s24():
            b = tf.reshape(tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32), [-1, 3])
            value = b[:, 0] + b[:, 1] * 256 + b[:, 2] * 65536
            value = tf.where(value >= 2**23, value - 2**24, value)
            return tf.cast(value, tf.float32) / 2.0**23

        branches = [
            lambda: (tf.cast(tf.io.decode_raw(data, tf.uint8), tf.float32) - 128.0) / 128.0,
            lambda: tf.cast(tf.io.decode_raw(data, tf.int16, little_endian=True), tf.float32)
            / 32768.0,
            s24,
            lambda: tf.cast(tf.io.decode_raw(data, tf.int32, little_endian=True), tf.float32)
            / 2.0**31,
            lambda: tf.io.decode_raw(data, tf.float32, little_endian=True),
            lambda: tf.cast(tf.io.decode_raw(data, tf.float64, little_endian=True), tf.float32),
        ]
        flat = tf.switch_case(tf.minimum(code, 5), branches)
        samples = tf.reshape(flat, [-1, tf.cast(channels, tf.int32)])
        status = tf.where(truncated, STATUS_TRUNCATED, STATUS_OK)
        return _result(samples, rate, status)

    return tf.case(
        [
            (tf.logical_not(header_ok), lambda: _failed(STATUS_CORRUPT)),
            (tf.equal(code, 6), lambda: _failed(STATUS_UNSUPPORTED)),
        ],
        default=decode,
    )


# ---------------------------------------------------------------------------
# FLAC / Ogg (Vorbis, Opus, FLAC) / MP3 through libsndfile (the `soundfile` package)


# What libsndfile raises for a stream it cannot read (soundfile.LibsndfileError is a RuntimeError).
_SOUNDFILE_ERRORS = (RuntimeError, EOFError)


def read_compressed(contents):
    """Decodes a FLAC, Ogg or MP3 file's bytes with libsndfile, in NumPy.

    libsndfile (bundled in `soundfile`'s wheels, MP3 included) replaces
    tensorflow-io, whose last release loads only with TensorFlow 2.16. Integer
    streams are read as left-justified int32 and scaled by 2**-31, so a 16-bit
    FLAC decodes to exactly the samples of the same PCM in a WAV (x / 32768).

    Args:
        contents: the whole file, `bytes`.

    Returns:
        `(samples, rate)`: float32 `(frames, channels)` and the rate in Hz.

    Raises:
        soundfile.LibsndfileError: libsndfile cannot read the stream.
    """
    import io

    import soundfile

    with soundfile.SoundFile(io.BytesIO(bytes(contents))) as f:
        if f.subtype.startswith("PCM_"):
            samples = (f.read(dtype="int32", always_2d=True) / 2.0**31).astype(np.float32)
        else:  # float and lossy streams decode to floats
            samples = f.read(dtype="float32", always_2d=True)
        return samples, f.samplerate


def decode_compressed_numpy(contents):
    """`read_compressed` as `(samples, rate, status)`, never raising (for `tf.numpy_function`)."""
    try:
        samples, rate = read_compressed(contents)
    except _SOUNDFILE_ERRORS:
        return np.zeros((0, 1), np.float32), np.int32(0), np.int32(STATUS_UNDECODABLE)
    return samples, np.int32(rate), np.int32(STATUS_OK)


def _decode_compressed(contents):
    samples, rate, status = tf.numpy_function(
        decode_compressed_numpy, [contents], [tf.float32, tf.int32, tf.int32], stateful=False
    )
    samples.set_shape([None, None])
    rate.set_shape([])
    status.set_shape([])
    return samples, rate, status


def _decode_flac(contents):
    # STREAMINFO is always the first metadata block: bytes 18..21 pack the rate (20 bits).
    b = _bytes(contents, 18, 4)
    rate = b[0] * 4096 + b[1] * 16 + b[2] // 16
    ok = tf.strings.length(contents, unit="BYTE") >= 42
    ok &= tf.equal(_bytes(contents, 4, 1)[0] % 128, 0) & (rate > 0)
    return tf.cond(ok, lambda: _decode_compressed(contents), lambda: _failed(STATUS_CORRUPT))


def _decode_ogg(contents):
    # First Ogg page: 27-byte header + segment table, then the codec's identification
    # packet: "\x01vorbis", "OpusHead" or "\x7fFLAC" (Ogg FLAC). Speex and others: unsupported.
    start = 27 + _le(contents, 26, 1)
    codec = _tag(contents, start, 8)
    known = (tf.equal(tf.strings.substr(codec, 0, 7), "\x01vorbis") | tf.equal(codec, "OpusHead")
             | tf.equal(tf.strings.substr(codec, 0, 5), "\x7fFLAC"))
    return tf.cond(known, lambda: _decode_compressed(contents), lambda: _failed(STATUS_UNSUPPORTED))


# NumPy, not a tf.constant: an op at import time would start TensorFlow's runtime before a
# multi-worker strategy can configure its collectives (kc2f.training.distribution).
_MP3_RATES = np.array(
    [[11025, 12000, 8000], [0, 0, 0], [22050, 24000, 16000], [44100, 48000, 32000]], np.int64
)


def _decode_mp3(contents):
    # Skip an ID3v2 tag (syncsafe size), then read the first frame header.
    has_id3 = tf.equal(_tag(contents, 0, 3), "ID3")
    tag_size = tf.reduce_sum(_bytes(contents, 6, 4) * tf.constant([2**21, 2**14, 2**7, 1], tf.int64))
    footer = tf.where(tf.equal(_bytes(contents, 5, 1)[0] // 16 % 2, 1), 10, 0)
    offset = tf.where(has_id3, 10 + tag_size + tf.cast(footer, tf.int64), 0)
    h = _bytes(contents, offset, 3)
    sync = tf.equal(h[0], 255) & tf.equal(h[1] // 32, 7)
    version, rate_index = h[1] // 8 % 4, h[2] // 4 % 4
    rate = tf.where(rate_index < 3, tf.constant(_MP3_RATES)[version, tf.minimum(rate_index, 2)], 0)
    return tf.cond(sync & (rate > 0), lambda: _decode_compressed(contents), lambda: _failed(STATUS_CORRUPT))


def decode_audio(contents):
    """Decodes an audio file's bytes (graph-compatible, never raises on bad headers).

    The format is recognised from its magic bytes, not the file name.

    Args:
        contents: scalar `tf.string`, the whole file.

    Returns:
        `(samples, rate, status)`: `samples` float32 `(frames, channels)` in
        [-1, 1] for integer formats; `rate` int32 Hz; `status` int32, one of
        `STATUS_OK`, `STATUS_TRUNCATED` (samples hold what the file has) or a
        failure (`STATUS_NOT_AUDIO`, `STATUS_CORRUPT`, `STATUS_UNSUPPORTED`,
        `STATUS_EMPTY`, `STATUS_UNDECODABLE`; `samples` is then empty and `rate` 0).
    """
    size = tf.strings.length(contents, unit="BYTE")
    magic = _tag(contents, 0)
    first = _bytes(contents, 0, 2)
    is_mp3 = tf.equal(_tag(contents, 0, 3), "ID3") | (
        tf.equal(first[0], 255) & tf.equal(first[1] // 32, 7)
    )
    return tf.case(
        [
            (tf.equal(size, 0), lambda: _failed(STATUS_EMPTY)),
            (tf.equal(magic, "RIFF"), lambda: _decode_wav(contents)),
            (tf.equal(magic, "fLaC"), lambda: _decode_flac(contents)),
            (tf.equal(magic, "OggS"), lambda: _decode_ogg(contents)),
            (is_mp3, lambda: _decode_mp3(contents)),
        ],
        default=lambda: _failed(STATUS_NOT_AUDIO),
    )


def to_mono(samples):
    """Averages the channels: `(frames, channels)` -> `(frames,)`."""
    return tf.reduce_mean(samples, axis=-1)


# ---------------------------------------------------------------------------
# Resampling


def kaiser_lowpass(num_taps, cutoff, beta=5.0):
    """`scipy.signal.firwin(num_taps, cutoff, window=('kaiser', beta))` in NumPy.

    `cutoff` is relative to Nyquist; the filter is scaled to unit DC gain.
    """
    h = _kaiser_sinc(num_taps, cutoff, beta)
    return h / h.sum()


def _kaiser_sinc(num_taps, cutoff, beta=5.0):
    """firwin's Kaiser-windowed sinc before its scaling to unit DC gain (which divides by its sum)."""
    m = np.arange(num_taps, dtype=np.float64) - (num_taps - 1) / 2.0
    return cutoff * np.sinc(cutoff * m) * np.kaiser(num_taps, beta)


class Resampler:
    """Exact polyphase resampling between two fixed rates, as `scipy.signal.resample_poly`.

    With `up/down = rate_out/rate_in` in lowest terms and the Kaiser FIR `h` of
    `resample_poly` (zero-phase, zero-padded edges), output sample `m` is
    `sum_j x[j] h[K + m*down - j*up]`, `K = 10 * max(up, down)`. Writing
    `m = b*up + r`, block `b` of `up` outputs only needs the input window
    starting at `b*down`, always with the same weights: one strided frame of the
    input times a fixed `(window, up)` matrix.

    Args:
        rate_in: input rate, Hz.
        rate_out: output rate, Hz.
    """

    def __init__(self, rate_in, rate_out):
        rate_in, rate_out = int(rate_in), int(rate_out)
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(
                f"Sample rates must be positive. Received: rate_in={rate_in}, rate_out={rate_out}"
            )
        g = math.gcd(rate_in, rate_out)
        self.rate_in, self.rate_out = rate_in, rate_out
        self.up, self.down = rate_out // g, rate_in // g
        self.identity = self.up == self.down
        if self.identity:
            return
        self.half = half = 10 * max(self.up, self.down)
        self.i_min = -(half // self.up)  # ceil(-half / up)
        self.i_max = ((self.up - 1) * self.down + half) // self.up
        self.window = self.i_max - self.i_min + 1
        self.exact = self.window * self.up <= _MAX_POLYPHASE_COEFFICIENTS
        if not self.exact:
            return
        h = kaiser_lowpass(2 * half + 1, 1.0 / max(self.up, self.down)) * self.up
        i = np.arange(self.i_min, self.i_max + 1)[:, None]
        r = np.arange(self.up)[None, :]
        offset = half + r * self.down - i * self.up
        valid = (offset >= 0) & (offset <= 2 * half)
        self.matrix = np.where(valid, h[np.clip(offset, 0, 2 * half)], 0.0).astype(np.float32)

    @functools.cached_property
    def gain(self):
        """firwin's unit-DC-gain scale over the whole filter, which `_direct` divides by."""
        return float(_kaiser_sinc(2 * self.half + 1, 1.0 / max(self.up, self.down)).sum())

    @property
    def compiled(self):
        """`self.__call__` as a `tf.function(x, start, length)`, traced once per rate pair.

        tf.data pipelines call it as a function, so building a new pipeline does
        not re-trace the resampler.
        """
        if getattr(self, "_compiled", None) is None:
            self._compiled = tf.function(
                lambda x, start, length: self(x, start, length),
                input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32),
                                 tf.TensorSpec([], tf.int32)],
            )
        return self._compiled

    def output_length(self, num_samples):
        """`ceil(num_samples * up / down)`, as `resample_poly` (works on tensors too)."""
        return (num_samples * self.up + self.down - 1) // self.down

    def __call__(self, x, start=0, length=None):
        """Resamples `x` and returns outputs `[start, start + length)`.

        Only the input needed for those outputs is touched, so a random crop of
        a long file costs the crop, not the file.

        Args:
            x: float32 `(samples,)`.
            start: first output sample; must be a multiple of `self.up` (a
                block boundary), int or scalar int tensor.
            length: number of outputs, default all remaining; clipped to the
                resampled length.

        Returns:
            float32 `(length,)`.
        """
        x = tf.convert_to_tensor(x, tf.float32)
        n_in = tf.shape(x)[0]
        n_out = self.output_length(n_in)
        start = tf.cast(start, tf.int32)
        length = n_out - start if length is None else tf.minimum(tf.cast(length, tf.int32), n_out - start)
        length = tf.maximum(length, 0)
        if self.identity:
            return x[start:start + length]
        if not self.exact:
            return self._direct(x, start, length)
        first_block = start // self.up
        blocks = (length + self.up - 1) // self.up
        # Zero context on both sides (resample_poly pads with zeros), then the input
        # window of the blocks asked for.
        padded = tf.pad(x, [[-self.i_min, self.window + self.down]])
        begin = first_block * self.down
        segment = padded[begin:begin + (blocks - 1) * self.down + self.window]
        segment = tf.pad(segment, [[0, tf.maximum(self.window - tf.shape(segment)[0], 0)]])
        frames = tf.signal.frame(segment, self.window, self.down)[:blocks]
        y = tf.reshape(tf.matmul(frames, self.matrix), [-1])
        return y[:length]


    def _direct(self, x, start, length):
        """Outputs `[start, start + length)` with the filter evaluated at each output's position.

        Output `m` sits at input position `t = m * rate_in / rate_out` (integer part
        and fraction computed exactly in int64). `resample_poly`'s filter, read in
        input samples, is `c sinc(c tau) kaiser(c tau / 10) / gain` with
        `c = min(1, rate_out / rate_in)` and `gain` firwin's normalisation; at the
        positions where the polyphase matrix samples it, the two agree
        (tests/data/test_audio.py).
        """
        c = min(1.0, self.rate_out / self.rate_in)
        taps = int(math.ceil(10.0 / c))  # the filter is zero beyond |tau| = 10 / c
        m = tf.cast(start, tf.int64) + tf.range(tf.cast(length, tf.int64))
        base = m * self.rate_in // self.rate_out
        frac = tf.cast(m * self.rate_in % self.rate_out, tf.float64) / self.rate_out
        k = tf.range(-taps, taps + 2, dtype=tf.int64)
        j = base[:, None] + k[None, :]
        tau = c * (frac[:, None] - tf.cast(k, tf.float64)[None, :])
        u = tf.clip_by_value(tau / 10.0, -1.0, 1.0)
        beta = tf.constant(5.0, tf.float64)
        window = tf.math.bessel_i0(beta * tf.sqrt(1.0 - u * u)) / tf.math.bessel_i0(beta)
        at_zero = tf.equal(tau, 0.0)
        pi_tau = np.pi * tf.where(at_zero, tf.ones_like(tau), tau)  # no 0/0 where sinc is 1
        sinc = tf.where(at_zero, tf.ones_like(tau), tf.sin(pi_tau) / pi_tau)
        weights = tf.where(tf.abs(tau) <= 10.0, c / self.gain * sinc * window, tf.zeros_like(tau))
        n = tf.cast(tf.shape(x)[0], tf.int64)
        inside = (j >= 0) & (j < n)
        values = tf.where(inside, tf.gather(x, tf.clip_by_value(j, 0, tf.maximum(n - 1, 0))), 0.0)
        return tf.cast(tf.reduce_sum(tf.cast(values, tf.float64) * weights, axis=1), tf.float32)


_RESAMPLERS = {}


def get_resampler(rate_in, rate_out):
    """A cached `Resampler` for the rate pair."""
    key = (int(rate_in), int(rate_out))
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = Resampler(*key)
    return _RESAMPLERS[key]


def resample(x, rate_in, rate_out):
    """Resamples a mono float32 signal, as `scipy.signal.resample_poly(x, up, down)`.

    Args:
        x: `(samples,)` float32 tensor or array.
        rate_in: its rate, Hz (Python int).
        rate_out: wanted rate, Hz (Python int).

    Returns:
        float32 tensor `(ceil(samples * rate_out / rate_in),)`.
    """
    return get_resampler(rate_in, rate_out)(x)


# ---------------------------------------------------------------------------
# Eager helpers


# The decoders use explicit graph control flow (tf.case, tf.cond, tf.while_loop) only, so
# autograph has nothing to convert; without it, tracing costs a third (measured on 2 cores).
@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def decode_audio_fn(contents):
    """`decode_audio` traced once; tf.data maps call it instead of re-tracing the decoder."""
    return decode_audio(contents)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def decode_wav_fn(contents):
    """The WAV branch of `decode_audio` alone: eager reads of WAV files trace only this."""
    return _decode_wav(contents)


MAX_SECONDS = 600.0  # "absurd length": nothing kc2f trains on is longer than 10 minutes.

_WAV_DTYPES = {(1, 1): "u1", (1, 2): "<i2", (1, 3): None, (1, 4): "<i4", (3, 4): "<f4", (3, 8): "<f8"}
_WAV_SCALE = {(1, 1): 128.0, (1, 2): 32768.0, (1, 3): 2.0**23, (1, 4): 2.0**31}


def _decode_wav_numpy(contents):
    """`_decode_wav`'s result for a well-formed WAV, in NumPy; `None` for anything else.

    The same chunk walk, formats and scaling as the graph decoder, without its
    trace (0.4 s of CPU on 2 cores, a tenth of `kc2f predict`'s cold start on one
    file). A header it does not accept, an unsupported format or a truncated file
    returns `None`, and `read_audio` asks the graph decoder, whose status names
    the problem; tests/data check that both give identical samples.
    """
    size = len(contents)
    if size < 12 or contents[:4] != b"RIFF" or contents[8:12] != b"WAVE":
        return None
    pos, fmt_pos, data_pos, data_size = 12, -1, -1, 0
    for _ in range(256):
        if pos + 8 > size or data_pos >= 0:
            break
        chunk, chunk_size = contents[pos:pos + 4], int.from_bytes(contents[pos + 4:pos + 8], "little")
        if chunk == b"fmt ":
            fmt_pos = pos + 8
        elif chunk == b"data":
            data_pos, data_size = pos + 8, chunk_size
        pos += 8 + chunk_size + chunk_size % 2
    if fmt_pos < 0 or fmt_pos + 16 > size or data_pos < 0:
        return None

    def field(offset, n):
        return int.from_bytes(contents[fmt_pos + offset:fmt_pos + offset + n].ljust(n, b"\0"), "little")

    tag = field(0, 2)
    if tag == 0xFFFE:  # EXTENSIBLE
        tag = field(24, 2)
    channels, rate, block_align = field(2, 2), field(4, 4), field(12, 2)
    if channels < 1 or rate < 1 or block_align < 1 or block_align % channels:
        return None
    key = (tag, block_align // channels)
    if key not in _WAV_DTYPES:
        return None
    available = max(size - data_pos, 0)
    declared = available if data_size in (0, 0xFFFFFFFF) else data_size
    if declared > available:
        return None
    num_bytes = declared - declared % block_align
    data = contents[data_pos:data_pos + num_bytes]
    if key == (1, 3):
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] + b[:, 1] * 256 + b[:, 2] * 65536
        flat = np.where(value >= 2**23, value - 2**24, value).astype(np.float32) / np.float32(2.0**23)
    elif key == (1, 1):
        flat = (np.frombuffer(data, np.uint8).astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
    else:
        flat = np.frombuffer(data, _WAV_DTYPES[key]).astype(np.float32)
        if key in _WAV_SCALE:
            flat = flat / np.float32(_WAV_SCALE[key])
    return flat.reshape(-1, channels), rate


def read_audio(path):
    """Reads and decodes a file eagerly, at its own rate and channel count.

    Args:
        path: audio file (WAV, FLAC, Ogg Vorbis/Opus/FLAC, MP3).

    Returns:
        `(samples, rate)`: float32 NumPy `(frames, channels)` and the rate in Hz.

    Raises:
        AudioError: missing, empty, unreadable or corrupt file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, not an audio file")
    if not os.path.isfile(path):
        raise AudioError(path, "file does not exist")
    with open(path, "rb") as f:
        contents = f.read()
    if not contents:
        raise AudioError(path, "file is empty (0 bytes)")
    decoded = _decode_wav_numpy(contents)
    if decoded is not None:
        return decoded
    decoder = decode_wav_fn if contents[:4] == b"RIFF" else decode_audio_fn
    samples, rate, status = decoder(tf.constant(contents))
    status = int(status)
    if status == STATUS_UNDECODABLE:
        try:
            read_compressed(contents)
        except _SOUNDFILE_ERRORS as e:
            raise AudioError(path, f"corrupt audio stream: {e}") from None
    if status not in (STATUS_OK,):
        raise AudioError(path, describe_status(status, contents))
    return samples.numpy(), int(rate)


def read_mono_wav(path):
    """`(samples, rate)` of a mono WAV file the NumPy decoder reads, else `None`.

    What the graph decoder gives for it (float32 `(frames,)`, same scaling),
    without TensorFlow: filling an in-memory cache of thousands of short WAV
    clips this way costs a fraction of a graph decode each. `None` for any
    other file (not WAV, several channels, a format or header the NumPy
    decoder leaves to the graph one, unreadable): the caller decodes it as usual.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None  # not a WAV: the caller's decoder reads it, once
            contents = head + f.read()
    except OSError:
        return None
    decoded = _decode_wav_numpy(contents)
    if decoded is None or decoded[0].shape[1] != 1:
        return None
    return decoded[0][:, 0], decoded[1]


def describe_status(status, contents=b""):
    """A sentence for a decode status (used in errors and reports)."""
    if status == STATUS_NOT_AUDIO:
        return (f"not an audio file (starts with {bytes(contents[:8])!r}); "
                "expected WAV, FLAC, Ogg (Vorbis, Opus, FLAC) or MP3")
    return {
        STATUS_CORRUPT: "corrupt or truncated header",
        STATUS_TRUNCATED: "truncated: the header declares more audio data than the file holds",
        STATUS_UNSUPPORTED: "unsupported encoding (WAV other than PCM 8/16/24/32-bit or float "
                            "32/64-bit, or Ogg other than Vorbis, Opus and FLAC)",
        STATUS_EMPTY: "file is empty (0 bytes)",
        STATUS_UNDECODABLE: "corrupt audio stream: the header reads but libsndfile cannot decode it",
    }.get(status, f"decode status {status}")


def load_audio(path, sample_rate):
    """Loads a file as a mono float32 waveform at `sample_rate`.

    Used by prediction and statistics. Channels are averaged; the signal is
    resampled exactly as `scipy.signal.resample_poly`.

    Args:
        path: audio file (WAV, FLAC, Ogg Vorbis/Opus/FLAC, MP3).
        sample_rate: wanted rate, Hz.

    Returns:
        float32 NumPy array `(samples,)`.

    Raises:
        AudioError: the file is missing, empty, not audio, corrupt, truncated,
            has no samples or contains NaN/Inf.
        ValueError: `sample_rate` is not a positive integer.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer. Received: sample_rate={sample_rate!r}")
    samples, rate = read_audio(path)
    if samples.shape[0] == 0:
        raise AudioError(path, "no audio samples (0 frames)")
    if not np.all(np.isfinite(samples)):
        raise AudioError(path, "contains NaN or Inf samples")
    mono = samples.mean(axis=1, dtype=np.float32)
    return np.asarray(resample(mono, rate, int(sample_rate)), dtype=np.float32)
