"""librosa-style log-mel spectrogram (torchlibrosa's, as HTS-AT computes it), inside the model."""

import keras
import numpy as np
from keras import ops

from kc2f.layers.kaldi_fbank import frame_signal

# Slaney's mel scale (librosa.hz_to_mel(htk=False)): linear below 1 kHz, logarithmic above.
_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def slaney_hz_to_mel(freq):
    """librosa's `hz_to_mel(htk=False)` for NumPy arrays (float64)."""
    freq = np.asarray(freq, dtype=np.float64)
    mel = freq / _SLANEY_F_SP
    log_part = _SLANEY_MIN_LOG_MEL + np.log(np.maximum(freq, 1e-300) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return np.where(freq >= _SLANEY_MIN_LOG_HZ, log_part, mel)


def slaney_mel_to_hz(mel):
    """librosa's `mel_to_hz(htk=False)`, the inverse of `slaney_hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    freq = _SLANEY_F_SP * mel
    log_part = _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (mel - _SLANEY_MIN_LOG_MEL))
    return np.where(mel >= _SLANEY_MIN_LOG_MEL, log_part, freq)


def slaney_mel_filters(sample_rate, fft_length, num_mel_bins, low_freq, high_freq):
    """`librosa.filters.mel(htk=False, norm="slaney")` transposed: `(fft_length // 2 + 1, num_mel_bins)`.

    Triangles between `num_mel_bins + 2` points equally spaced on Slaney's mel
    scale from `low_freq` to `high_freq`, evaluated at the FFT bin frequencies
    and scaled by `2 / (upper − lower edge)` (equal area), float64.
    """
    bins = np.linspace(0.0, sample_rate / 2.0, fft_length // 2 + 1)
    edges = slaney_mel_to_hz(
        np.linspace(slaney_hz_to_mel(low_freq), slaney_hz_to_mel(high_freq), num_mel_bins + 2)
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T


@keras.saving.register_keras_serializable(package="kc2f")
class LogMelSpectrogram(keras.layers.Layer):
    """Log-mel spectrogram in dB, as torchlibrosa (and so HTS-AT) computes it.

    HTS-AT (Chen et al., 2022, https://arxiv.org/abs/2202.00874) feeds its Swin
    transformer with torchlibrosa's `Spectrogram(center=True,
    pad_mode="reflect", window="hann")` and `LogmelFilterBank(ref=1.0,
    amin=1e-10, top_db=None)`, i.e. librosa's `melspectrogram` and
    `power_to_db`: the clip is reflect-padded by `fft_length // 2` on both
    sides, framed every `hop_length` samples with a periodic Hann window of
    `fft_length` samples, its power spectrum `|rfft|²` is multiplied by
    Slaney-normalised mel filters (`slaney_mel_filters`) and turned into
    `10·log10(max(x, amin)) − 10·log10(max(amin, ref))`. The computation is
    float32, with `keras.ops` only. `keras.layers.MelSpectrogram` is not used:
    its filters are HTK-scale triangles without Slaney's area normalisation
    (docs/method.md#hts-at).

    A clip of `n` samples has `1 + n // hop_length` frames. With
    `target_frames` the clip is zero-padded (after its reflect padding) or
    cropped so that exactly that many frames come out, whatever the input
    length; samples past each clip's `length` are zeroed first, as HTS-AT's
    data loader zero-pads short clips. Only with `target_frames` may the
    number of samples be unknown until run time (an exported model's
    waveform input); the output equals that of the same clip at a static
    length.

    Args:
        sample_rate: sampling rate of the input, Hz.
        fft_length: window and FFT length in samples (1024 at 32 kHz in HTS-AT).
        hop_length: frame shift in samples (320 at 32 kHz; the `fshift`
            compression multiplies it by the factor).
        num_mel_bins: mel filters (64 in HTS-AT).
        low_freq, high_freq: edges of the filter bank, Hz (50 and 14000).
        target_frames: output frames (`None`: `1 + samples // hop_length`).
        amin: floor of the power before the log (1e-10).
        ref: reference power of 0 dB (1.0).

    Input: waveforms `(batch, samples)`, or `{"waveform": (batch, samples),
    "length": (batch,)}`. Output: `(batch, frames, num_mel_bins)` float32, dB.
    """

    def __init__(
        self,
        sample_rate=32000,
        fft_length=1024,
        hop_length=320,
        num_mel_bins=64,
        low_freq=50.0,
        high_freq=14000.0,
        target_frames=None,
        amin=1e-10,
        ref=1.0,
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        for name, value in (("sample_rate", sample_rate), ("fft_length", fft_length),
                            ("hop_length", hop_length), ("num_mel_bins", num_mel_bins)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if fft_length < 2:
            raise ValueError(f"fft_length must be at least 2. Received: fft_length={fft_length}")
        if not 0.0 <= low_freq < high_freq <= sample_rate / 2.0:
            raise ValueError(
                "LogMelSpectrogram needs 0 <= low_freq < high_freq <= sample_rate / 2. Received: "
                f"low_freq={low_freq}, high_freq={high_freq}, sample_rate={sample_rate}"
            )
        if target_frames is not None and (not isinstance(target_frames, int) or target_frames <= 0):
            raise ValueError(
                f"target_frames must be a positive integer or None. Received: target_frames={target_frames}"
            )
        if not amin > 0:
            raise ValueError(f"amin must be positive. Received: amin={amin}")
        if not ref > 0:
            raise ValueError(f"ref must be positive. Received: ref={ref}")
        self.sample_rate = sample_rate
        self.fft_length = fft_length
        self.hop_length = hop_length
        self.num_mel_bins = num_mel_bins
        self.low_freq = float(low_freq)
        self.high_freq = float(high_freq)
        self.target_frames = target_frames
        self.amin = float(amin)
        self.ref = float(ref)
        n = np.arange(fft_length, dtype=np.float64)
        # Periodic Hann (scipy get_window("hann", n, fftbins=True)), as librosa and torchlibrosa.
        self._window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / fft_length)).astype("float32")
        self._filters = slaney_mel_filters(
            sample_rate, fft_length, num_mel_bins, self.low_freq, self.high_freq
        ).astype("float32")
        self._db_offset = 10.0 * np.log10(max(self.amin, self.ref))

    def num_frames(self, num_samples):
        """Frames of a clip of `num_samples` samples (centred frames: `1 + n // hop`)."""
        return 1 + num_samples // self.hop_length

    def call(self, inputs):
        if isinstance(inputs, dict):
            waveform, length = inputs["waveform"], inputs.get("length")
        else:
            waveform, length = inputs, None
        x = ops.cast(waveform, "float32")
        num_samples = ops.shape(x)[1]
        static = isinstance(num_samples, int)
        if not static and self.target_frames is None:
            raise ValueError(
                "LogMelSpectrogram needs a static number of samples per clip when target_frames is None."
            )
        pad = self.fft_length // 2
        if static and num_samples <= pad:
            raise ValueError(
                f"Reflect padding by {pad} samples needs clips longer than that. "
                f"Received: samples={num_samples}"
            )
        if length is not None:
            length = ops.minimum(ops.cast(length, "int32"), num_samples)
            x = x * ops.cast(ops.arange(num_samples)[None, :] < length[:, None], "float32")
        # Reflect padding (numpy/torch "reflect": the edge sample is not repeated). The
        # tail is gathered by index so that a clip length known only at run time (an
        # exported model's input) pads exactly as a static one.
        head = ops.flip(x[:, 1 : pad + 1], axis=1)
        tail_index = ops.maximum(num_samples - 2 - ops.arange(pad, dtype="int32"), 0)
        tail = ops.take(x, tail_index, axis=1)
        x = ops.concatenate([head, x, tail], axis=1)
        frames = self.num_frames(num_samples) if self.target_frames is None else self.target_frames
        x = frame_signal(x, frames, self.hop_length, self.fft_length) * self._window  # (batch, frames, fft_length)
        real, imag = ops.rfft(x, fft_length=self.fft_length)
        mel = ops.matmul(real * real + imag * imag, self._filters)
        return 10.0 * ops.log10(ops.maximum(mel, self.amin)) - self._db_offset

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["waveform"]
        frames = self.target_frames
        if frames is None and input_shape[1] is not None:
            frames = self.num_frames(input_shape[1])
        return (input_shape[0], frames, self.num_mel_bins)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config.update(
            sample_rate=self.sample_rate,
            fft_length=self.fft_length,
            hop_length=self.hop_length,
            num_mel_bins=self.num_mel_bins,
            low_freq=self.low_freq,
            high_freq=self.high_freq,
            target_frames=self.target_frames,
            amin=self.amin,
            ref=self.ref,
        )
        return config
