"""The scan before training: every clip decoded once, unusable ones listed with their reason.

`validate_audio` reads every file of a split once, so a bad file is reported by
name before training starts, never as a crash deep inside tf.data, and skipping
bad files is counted, never silent. Each decoded file's result is kept in the
scan cache (`kc2f.data.scan_cache`), so a resumed run, or the next run on the
same files, decodes only the files that changed.
"""

import collections
import os
import time
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from kc2f.data import audio as audio_lib
from kc2f.data.manifest import Example
from kc2f.data.progress_bar import ProgressBar
from kc2f.data.registry import get_dataset_spec
from kc2f.data.scan_cache import ScanCache

AUTOTUNE = tf.data.AUTOTUNE

# Order in which reasons are listed in reports.
BAD_AUDIO_REASONS = (
    "missing",
    "empty",
    "not_audio",
    "corrupt",
    "truncated",
    "unsupported",
    "no_samples",
    "nan_inf",
    "silent",
    "too_long",
)
_REASON_TEXT = {
    "missing": "file does not exist",
    "empty": "file is empty (0 bytes)",
    "no_samples": "no audio samples (0 frames)",
    "nan_inf": "contains NaN or Inf samples",
    "silent": "all samples are zero (silence)",
}


@dataclass(frozen=True)
class BadAudio:
    """One unusable file: `reason` is a key of `BAD_AUDIO_REASONS`, `message` says more."""

    path: str
    source: str
    reason: str
    message: str


@dataclass
class BadAudioReport:
    """Result of scanning every file of a dataset once (`validate_audio`).

    Attributes:
        num_examples: examples scanned.
        bad: one `BadAudio` per unusable file, in example order.
        rates: per example, the file's sample rate (0 for bad files).
        frames: per example, the file's number of frames at its own rate.
        channels: per example, the file's channel count.
    """

    num_examples: int
    bad: list = field(default_factory=list)
    rates: np.ndarray = None
    frames: np.ndarray = None
    channels: np.ndarray = None

    @property
    def counts(self):
        """`{reason: count}` of bad files, only the reasons that occur."""
        counter = collections.Counter(b.reason for b in self.bad)
        return {r: counter[r] for r in BAD_AUDIO_REASONS if counter[r]}

    @property
    def bad_indices(self):
        return {i for i, _ in self._bad_index}

    @property
    def good_mask(self):
        mask = np.ones(self.num_examples, bool)
        for i, _ in self._bad_index:
            mask[i] = False
        return mask

    @property
    def num_good(self):
        return int(self.good_mask.sum())

    def summary(self):
        """One line for the run log, e.g. `"3000 files: 2998 ok, 2 skipped (missing 1, silent 1)"`."""
        if not self.bad:
            return f"{self.num_examples} audio files: all ok"
        counts = ", ".join(f"{r} {n}" for r, n in self.counts.items())
        return (f"{self.num_examples} audio files: {self.num_good} ok, {len(self.bad)} bad "
                f"({counts})")

    def __post_init__(self):
        self._bad_index = []
        self.decoded = None  # files decoded by the scan (the others came from the scan cache)


class BadAudioError(ValueError):
    """Some audio files are unusable; the message lists every one with its reason."""

    def __init__(self, report, max_listed=100):
        self.report = report
        lines = [f"  - {b.path} ({b.source}): {b.message}" if b.source != b.path
                 else f"  - {b.path}: {b.message}" for b in report.bad[:max_listed]]
        if len(report.bad) > max_listed:
            lines.append(f"  ... and {len(report.bad) - max_listed} more")
        super().__init__(
            f"{len(report.bad)} of {report.num_examples} audio files cannot be used "
            f"({', '.join(f'{r}: {n}' for r, n in report.counts.items())}):\n"
            + "\n".join(lines)
            + "\nFix or remove them, or pass on_bad_audio='skip' to train without them."
        )


def check_examples(examples):
    if not isinstance(examples, (list, tuple)) or not all(isinstance(e, Example) for e in examples):
        raise ValueError(
            "examples must be a list of kc2f.data.Example (from build_index). Received: "
            f"examples={type(examples).__name__}"
        )
    if not examples:
        raise ValueError("examples is empty: the split has no audio files. Received: examples=[]")


def _scan_map(index, path):
    contents = tf.io.read_file(path)
    samples, rate, status = audio_lib.decode_audio_fn(contents)
    finite = tf.reduce_all(tf.math.is_finite(samples))
    # The [0.0] keeps the max defined for files with no samples.
    peak = tf.reduce_max(tf.concat([tf.reshape(tf.abs(samples), [-1]), [0.0]], 0))
    return index, status, rate, tf.shape(samples)[0], tf.shape(samples)[1], finite, peak


def _decode_files(paths, num_parallel_calls, progress):
    """`{position: (status, rate, frames, channels, finite, peak)}` of the files decoded in tf.data.

    A file whose decoding raises inside tf.data (a read error) is missing from
    the result; the caller reads it again eagerly for its message.
    """
    results = {}
    if not paths:
        return results
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths), dtype=np.int64), list(paths)))
    ds = ds.map(_scan_map, num_parallel_calls=num_parallel_calls, deterministic=False)
    ds = ds.ignore_errors().prefetch(AUTOTUNE)
    for index, status, rate, frames, channels, finite, peak in ds.as_numpy_iterator():
        results[int(index)] = (int(status), int(rate), int(frames), int(channels), bool(finite), float(peak))
        progress.advance()
    return results


def _failure_message(path, status):
    """The text of a file that did not decode: `status` from the decoder, `None` if tf.data raised."""
    if status in (None, audio_lib.STATUS_UNDECODABLE):  # the eager read has libsndfile's words
        try:
            audio_lib.read_audio(path)
            return "could not be decoded inside tf.data"
        except audio_lib.AudioError as e:
            return e.reason
    with open(path, "rb") as f:
        head = f.read(8)
    return audio_lib.describe_status(status, head)


# The stored status of a file whose decoding raised inside tf.data (reason "corrupt").
_STATUS_RAISED = -1


def validate_audio(examples, spec, *, max_seconds=audio_lib.MAX_SECONDS, num_parallel_calls=AUTOTUNE,
                   scan_cache=None, show_progress=None):
    """Scans every file once and reports the unusable ones.

    Decodes all files in parallel (tf.data) and checks, per file: it exists,
    is not empty, has a readable header, is audio (WAV/FLAC/Ogg Vorbis/MP3), is
    not truncated, has at least one sample and at most `max_seconds`, has no
    NaN/Inf and is not all zeros. A file whose path, size and modification
    time are in the scan cache (`kc2f.data.scan_cache.ScanCache`) is not
    decoded again: its stored result is classified the same way.

    Args:
        examples: list of `Example`.
        spec: `DatasetSpec` or registry name (reserved for per-dataset checks).
        max_seconds: longer files are "too_long" (absurd lengths).
        num_parallel_calls: decode parallelism.
        scan_cache: a `ScanCache`, `None` for `ScanCache.default()` (the kc2f
            cache directory), or `False` to decode every file.
        show_progress: progress bar on stderr (`None`: when stderr is a terminal).

    Returns:
        `BadAudioReport` with per-file rates/frames/channels and the bad files;
        `report.decoded` is the number of files decoded (not found in the cache).
    """
    check_examples(examples)
    get_dataset_spec(spec)
    n = len(examples)
    report = BadAudioReport(n, rates=np.zeros(n, np.int64), frames=np.zeros(n, np.int64),
                            channels=np.zeros(n, np.int64))

    def bad(i, reason, message=None):
        e = examples[i]
        report.bad.append(BadAudio(e.path, e.source, reason, message or _REASON_TEXT[reason]))
        report._bad_index.append((i, reason))

    keys = {}  # example index -> (path, size, mtime_ns)
    stat_ns = time.time_ns()  # before the stats: a file changed after it is never trusted
    for i, e in enumerate(examples):
        try:
            st = os.stat(e.path)
        except OSError:
            bad(i, "missing")
            continue
        if st.st_size == 0:
            bad(i, "empty")
        else:
            keys[i] = (e.path, st.st_size, st.st_mtime_ns)

    own_cache = scan_cache is None
    cache = ScanCache.default() if own_cache else (scan_cache or None)
    try:
        cached = cache.lookup(list(keys.values())) if cache is not None else {}
        results = {i: cached[key] for i, key in keys.items() if key in cached}
        to_decode = [i for i in keys if i not in results]
        report.decoded = len(to_decode)
        with ProgressBar("scan", len(keys), unit="clips", show_progress=show_progress) as progress:
            progress.advance(len(results))
            decoded = _decode_files([examples[i].path for i in to_decode], num_parallel_calls, progress)
            fresh = {}
            for position, index in enumerate(to_decode):
                result = decoded.get(position)
                if result is None:
                    result = (_STATUS_RAISED, 0, 0, 0, False, 0.0,
                              _failure_message(examples[index].path, None))
                    progress.advance()
                elif result[0] != audio_lib.STATUS_OK:
                    result = result + (_failure_message(examples[index].path, result[0]),)
                else:
                    result = result + (None,)
                results[index] = fresh[keys[index]] = result
        if cache is not None:
            cache.store(fresh, scanned_ns=stat_ns)
    finally:
        if own_cache and cache is not None:
            cache.close()

    for index in sorted(results):
        status, rate, frames, channels, finite, peak, message = results[index]
        if status == _STATUS_RAISED:
            bad(index, "corrupt", message)
            continue
        if status != audio_lib.STATUS_OK:
            bad(index, audio_lib.STATUS_REASONS[status], message)
            continue
        report.rates[index], report.frames[index] = rate, frames
        report.channels[index] = channels
        if frames == 0:
            bad(index, "no_samples")
        elif not finite:
            bad(index, "nan_inf")
        elif peak == 0.0:
            bad(index, "silent")
        elif frames / rate > max_seconds:
            bad(index, "too_long",
                f"absurd length: {frames / rate:.1f} s (more than {max_seconds:g} s)")
    order = sorted(range(len(report.bad)), key=lambda k: report._bad_index[k][0])
    report.bad = [report.bad[k] for k in order]
    report._bad_index = [report._bad_index[k] for k in order]
    return report


# ---------------------------------------------------------------------------
# make_dataset

