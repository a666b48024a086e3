"""tf.data input pipelines: audio files (or packed shards) to padded waveform batches.

`make_dataset` yields `({"waveform": (batch, clip_samples) float32,
"length": (batch,) int32}, labels (batch, num_classes) float32)`. Waveforms
are mono, at `spec.sample_rate`, zero-padded after `length` valid samples (the
model's fbank ignores the padding through `length`).

Before the first batch every file is scanned once (`validate_audio`), so a bad
file is reported by name before training starts, never as a crash deep inside
tf.data, and skipping bad files is counted, never silent.

Randomness (training order, crop offsets, mixup) is a pure function of
`(seed, epoch)`: stateless ops seeded by the epoch number. An epoch's batches
can therefore be reproduced from its number alone, which makes resuming exact.
"""

import collections
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from kc2f.data import audio as audio_lib
from kc2f.data.manifest import Example
from kc2f.data.registry import get_dataset_spec

logger = logging.getLogger(__name__)

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


def _check_examples(examples):
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


def validate_audio(examples, spec, *, max_seconds=audio_lib.MAX_SECONDS, num_parallel_calls=AUTOTUNE):
    """Scans every file once and reports the unusable ones.

    Decodes all files in parallel (tf.data) and checks, per file: it exists,
    is not empty, has a readable header, is audio (WAV/FLAC/Ogg Vorbis/MP3), is
    not truncated, has at least one sample and at most `max_seconds`, has no
    NaN/Inf and is not all zeros.

    Args:
        examples: list of `Example`.
        spec: `DatasetSpec` or registry name (reserved for per-dataset checks).
        max_seconds: longer files are "too_long" (absurd lengths).
        num_parallel_calls: decode parallelism.

    Returns:
        `BadAudioReport` with per-file rates/frames/channels and the bad files.
    """
    _check_examples(examples)
    get_dataset_spec(spec)
    n = len(examples)
    report = BadAudioReport(n, rates=np.zeros(n, np.int64), frames=np.zeros(n, np.int64),
                            channels=np.zeros(n, np.int64))

    def bad(i, reason, message=None):
        e = examples[i]
        report.bad.append(BadAudio(e.path, e.source, reason, message or _REASON_TEXT[reason]))
        report._bad_index.append((i, reason))

    to_decode = []
    for i, e in enumerate(examples):
        try:
            size = os.stat(e.path).st_size
        except OSError:
            bad(i, "missing")
            continue
        if size == 0:
            bad(i, "empty")
        else:
            to_decode.append(i)

    seen = set()
    if to_decode:
        ds = tf.data.Dataset.from_tensor_slices(
            (np.asarray(to_decode, np.int64), [examples[i].path for i in to_decode])
        )
        ds = ds.map(_scan_map, num_parallel_calls=num_parallel_calls, deterministic=False)
        # A stream tensorflow-io cannot decode raises inside the op; the file is then
        # missing from the output and re-read eagerly below to get its message.
        ds = ds.ignore_errors().prefetch(AUTOTUNE)
        results = []
        for index, status, rate, frames, channels, finite, peak in ds.as_numpy_iterator():
            results.append((int(index), int(status), int(rate), int(frames), int(channels),
                            bool(finite), float(peak)))
        for index, status, rate, frames, channels, finite, peak in sorted(results):
            seen.add(index)
            if status != audio_lib.STATUS_OK:
                reason = audio_lib.STATUS_REASONS[status]
                with open(examples[index].path, "rb") as f:
                    head = f.read(8)
                bad(index, reason, audio_lib.describe_status(status, head))
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
    for index in to_decode:
        if index not in seen:
            try:
                audio_lib.read_audio(examples[index].path)
                message = "could not be decoded inside tf.data"
            except audio_lib.AudioError as e:
                message = e.reason
            bad(index, "corrupt", message)
    order = sorted(range(len(report.bad)), key=lambda k: report._bad_index[k][0])
    report.bad = [report.bad[k] for k in order]
    report._bad_index = [report._bad_index[k] for k in order]
    return report


# ---------------------------------------------------------------------------
# make_dataset


def _label_matrix(examples, label_names):
    """Label indices per example, padded with -1: `(num_examples, max_labels)` int32."""
    index = {name: i for i, name in enumerate(label_names)}
    width = max(len(e.labels) for e in examples)
    matrix = np.full((len(examples), width), -1, np.int32)
    for row, e in enumerate(examples):
        for col, label in enumerate(e.labels):
            if label not in index:
                raise ValueError(f"{e.source}: label {label!r} of {e.path} is not in label_names")
            matrix[row, col] = index[label]
    return matrix


def _balanced_weights(label_matrix, num_classes):
    """AST's AudioSet sampling weight per clip: sum over its labels of 1000 / (count + 0.01)."""
    counts = np.zeros(num_classes)
    valid = label_matrix >= 0
    np.add.at(counts, label_matrix[valid], 1)
    per_label = np.where(valid, 1000.0 / (counts[np.maximum(label_matrix, 0)] + 0.01), 0.0)
    return per_label.sum(axis=1)


def _epoch_seed(seed, epoch):
    """Stateless seed of one epoch: a function of (seed, epoch) only."""
    return tf.random.experimental.stateless_fold_in(
        tf.stack([tf.constant(seed, tf.int64), tf.constant(0x6B633266, tf.int64)]),
        tf.cast(epoch, tf.int64),
    )


def _epoch_order(num, seed_e, training, cdf):
    if not training:
        return tf.range(num, dtype=tf.int64)
    if cdf is not None:
        # Weighted sampling with replacement by inverse CDF: O(n log n), any dataset size.
        u = tf.random.stateless_uniform([num], seed=tf.random.experimental.stateless_fold_in(
            seed_e, 1), dtype=tf.float64) * cdf[-1]
        return tf.minimum(tf.searchsorted(cdf, u, side="right"), num - 1)
    return tf.random.experimental.stateless_shuffle(
        tf.range(num, dtype=tf.int64), seed=tf.random.experimental.stateless_fold_in(seed_e, 2)
    )


def _crop_start(u, n_out, clip, granularity, training):
    """Crop start: uniform in [0, n_out - clip] (training) or 0, on a multiple of `granularity`."""
    if not training:
        return tf.constant(0, tf.int32)
    span = tf.maximum(n_out - clip, 0)
    start = tf.cast(tf.floor(u * tf.cast(span + 1, tf.float32)), tf.int32)
    start = tf.minimum(start, span)
    return start - start % granularity


def _finish_example(wave, label_row, clip, num_classes):
    length = tf.shape(wave)[0]
    wave = tf.pad(wave, [[0, clip - length]])
    wave = tf.ensure_shape(wave, [clip])
    # -1 padding one-hot encodes to a zero row; the extra zero row keeps the max
    # defined for a record without labels.
    one_hot = tf.one_hot(label_row, num_classes, dtype=tf.float32)
    labels = tf.reduce_max(tf.concat([one_hot, tf.zeros([1, num_classes])], 0), axis=0)
    return {"waveform": wave, "length": length}, labels


def _mixup(features, labels, seed_b, probability):
    """In-batch mixup (AST): with probability p, example i becomes lam x_i + (1 - lam) x_j.

    `j` is another example of the batch, `lam ~ Beta(10, 10)`; labels are mixed with
    the same weights (so single-label targets still sum to 1) and `length` is the
    longer of the two.
    """
    batch = tf.shape(labels)[0]
    seeds = [tf.random.experimental.stateless_fold_in(seed_b, k) for k in range(4)]
    apply = tf.random.stateless_uniform([batch], seed=seeds[0]) < probability
    apply &= batch > 1
    shift = tf.random.stateless_uniform([batch], seed=seeds[1], minval=1,
                                        maxval=tf.maximum(batch, 2), dtype=tf.int32)
    partner = (tf.range(batch) + shift) % batch  # never the example itself
    g1 = tf.random.stateless_gamma([batch], seed=seeds[2], alpha=10.0)
    g2 = tf.random.stateless_gamma([batch], seed=seeds[3], alpha=10.0)
    lam = tf.where(apply, g1 / (g1 + g2), 1.0)
    wave = features["waveform"]
    mixed = lam[:, None] * wave + (1.0 - lam[:, None]) * tf.gather(wave, partner)
    length = tf.where(apply, tf.maximum(features["length"], tf.gather(features["length"], partner)),
                      features["length"])
    labels = lam[:, None] * labels + (1.0 - lam[:, None]) * tf.gather(labels, partner)
    return {"waveform": mixed, "length": length}, labels


def _decode_resample_fn(rate_list, target_rate, clip, training, keep_full=False):
    """Graph fn: (path, rate index, u) -> waveform at target rate (cropped unless keep_full)."""
    resamplers = [audio_lib.get_resampler(r, target_rate) for r in rate_list]

    def fn(path, rate_index, u):
        samples, _, status = audio_lib.decode_audio_fn(tf.io.read_file(path))
        check = tf.debugging.Assert(
            tf.equal(status, audio_lib.STATUS_OK),
            ["kc2f: audio file could not be decoded (status", status,
             "); did it change after the scan?", path],
        )
        with tf.control_dependencies([check]):
            mono = audio_lib.to_mono(samples)

        def branch(r):
            def run():
                if keep_full:
                    return r.compiled(mono, 0, 2**31 - 1)
                n_out = r.output_length(tf.shape(mono)[0])
                start = _crop_start(u, n_out, clip, r.up, training)
                return r.compiled(mono, start, clip)
            return run

        return tf.switch_case(tf.cast(rate_index, tf.int32), [branch(r) for r in resamplers])

    return fn


def make_dataset(
    examples,
    label_names,
    spec,
    *,
    batch_size,
    training,
    seed=0,
    epoch=0,
    on_bad_audio="error",
    mixup=None,
    cache=False,
    drop_remainder=None,
    repeat=False,
    audio_report=None,
    num_parallel_calls=AUTOTUNE,
):
    """Builds the input pipeline of one split.

    Args:
        examples: list of `Example` (from `build_index`), or a
            `kc2f.data.packing.PackedDataset` (from `open_packed`).
        label_names: class list (from `build_index`); its length is the width
            of the label vectors.
        spec: `DatasetSpec` or registry name (sample rate, clip length,
            balanced sampling, default mixup).
        batch_size: examples per batch.
        training: `True`: order shuffled (or, with `spec.balanced_sampling`,
            sampled with replacement by label weight), random crop of long
            clips, mixup. `False`: file order, crop at the start, no mixup.
        seed: base seed.
        epoch: epoch number; order, crops and mixup depend only on
            `(seed, epoch)`, so resuming at epoch `e` reproduces it exactly.
        on_bad_audio: `"error"` raises `BadAudioError` listing every unusable
            file with its reason; `"skip"` leaves them out and logs exact
            counts per reason (also in `dataset.kc2f_audio_report`).
        mixup: mixup probability, default `spec.mixup` in training and 0 in
            evaluation.
        cache: decode and resample every file once into memory (small
            datasets; use `kc2f.data.packing` for large ones).
        drop_remainder: drop the last partial batch; default `training`.
        repeat: `False`: one epoch. `True`: epochs `epoch, epoch+1, ...` without
            end (use with `steps_per_epoch(...)`; Keras re-iterating a finite
            dataset would replay the same epoch order).
        audio_report: a `BadAudioReport` from `validate_audio` on the same
            examples, to skip the scan.
        num_parallel_calls: decode parallelism.

    Returns:
        `tf.data.Dataset` of `({"waveform": (batch, clip_samples) float32,
        "length": (batch,) int32}, labels (batch, num_classes) float32)` with
        `clip_samples = round(spec.clip_seconds * spec.sample_rate)`.
    """
    spec = get_dataset_spec(spec)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    if on_bad_audio not in ("error", "skip"):
        raise ValueError(f"on_bad_audio must be 'error' or 'skip'. Received: on_bad_audio={on_bad_audio!r}")
    if not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer. Received: epoch={epoch!r}")
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer. Received: seed={seed!r}")
    if mixup is None:
        mixup = spec.mixup if training else 0.0
    if not 0.0 <= mixup <= 1.0:
        raise ValueError(f"mixup must be a probability in [0, 1]. Received: mixup={mixup!r}")
    if drop_remainder is None:
        drop_remainder = bool(training)
    label_names = list(label_names)
    num_classes = len(label_names)
    if spec.num_classes is not None and num_classes != spec.num_classes:
        raise ValueError(f"Dataset '{spec.name}' has {spec.num_classes} classes. Received: "
                         f"len(label_names)={num_classes}")
    clip = spec.clip_samples

    from kc2f.data import packing

    if isinstance(examples, packing.PackedDataset):
        if examples.sample_rate != spec.sample_rate:
            raise ValueError(
                f"Packed shards in {examples.directory} are at {examples.sample_rate} Hz but "
                f"dataset '{spec.name}' needs {spec.sample_rate} Hz. Received: "
                f"examples={examples.directory}"
            )
        if list(examples.label_names) != label_names:
            raise ValueError(f"label_names differ from those stored in {examples.directory}. "
                             "Received: label_names={label_names[:5]}...")
        if cache:
            raise ValueError("cache=True is for file lists; packed shards are already decoded. "
                             "Received: cache=True with packed shards")
        report, num = None, examples.num_examples

        def elements(seed_e):
            records = packing.read_records(examples, seed_e, training, spec.balanced_sampling)

            def finish(pos, wave, label_row):
                u = tf.random.stateless_uniform(
                    [], seed=tf.random.experimental.stateless_fold_in(seed_e, 1000 + pos))
                n = tf.shape(wave)[0]
                start = _crop_start(u, n, clip, 1, training)
                return _finish_example(wave[start:start + clip], label_row, clip, num_classes)

            return records.map(finish, num_parallel_calls=num_parallel_calls, deterministic=True)
    else:
        _check_examples(examples)
        if audio_report is None:
            audio_report = validate_audio(examples, spec, num_parallel_calls=num_parallel_calls)
        elif audio_report.num_examples != len(examples):
            raise ValueError(
                f"audio_report covers {audio_report.num_examples} examples, not {len(examples)}. "
                "Received: audio_report from other examples"
            )
        report = audio_report
        if report.bad:
            if on_bad_audio == "error":
                raise BadAudioError(report)
            logger.warning("Skipping bad audio: %s", report.summary())
        keep = np.flatnonzero(report.good_mask)
        if keep.size == 0:
            raise BadAudioError(report)
        kept = [examples[i] for i in keep]
        label_matrix = _label_matrix(kept, label_names)
        rates = report.rates[keep]
        rate_list = sorted(set(int(r) for r in rates))
        rate_index = np.searchsorted(rate_list, rates).astype(np.int32)
        paths = np.asarray([e.path for e in kept], dtype=object)
        num = len(kept)
        cdf = None
        if training and spec.balanced_sampling:
            cdf = tf.constant(np.cumsum(_balanced_weights(label_matrix, num_classes)), tf.float64)
        element_fn = _file_elements(paths, rate_index, rate_list, label_matrix, spec, training,
                                    clip, num_classes, cache, num_parallel_calls)

        def elements(seed_e):
            order = _epoch_order(num, seed_e, training, cdf)
            positions = tf.data.Dataset.from_tensor_slices((tf.range(num, dtype=tf.int64), order))
            return positions.map(
                lambda pos, idx: element_fn(idx, tf.random.stateless_uniform(
                    [], seed=tf.random.experimental.stateless_fold_in(seed_e, 1000 + pos))),
                num_parallel_calls=num_parallel_calls, deterministic=True)

    def one_epoch(e):
        seed_e = _epoch_seed(seed, e)
        ds = elements(seed_e).batch(batch_size, drop_remainder=drop_remainder)
        if mixup > 0.0:
            ds = ds.enumerate().map(
                lambda b, xy: _mixup(xy[0], xy[1],
                                     tf.random.experimental.stateless_fold_in(seed_e, -1 - b), mixup),
                num_parallel_calls=num_parallel_calls, deterministic=True)
        return ds

    if repeat:
        ds = tf.data.Dataset.range(epoch, 2**62).flat_map(one_epoch)
    else:
        ds = one_epoch(tf.constant(epoch, tf.int64))
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    # Multi-worker tf.distribute: every worker builds the same batches from
    # (seed, epoch) and keeps its share of each (there are no files to split).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options)
    try:
        ds.kc2f_audio_report = report
        ds.kc2f_num_examples = num
    except AttributeError:  # some Dataset subclasses refuse attributes; the log has it
        pass
    return ds


def _file_elements(paths, rate_index, rate_list, label_matrix, spec, training, clip, num_classes,
                   cache, num_parallel_calls):
    """Returns `element_fn(index, u)` building one example from files (or the RAM cache)."""
    labels_t = tf.constant(label_matrix)
    if not cache:
        paths_t = tf.constant(paths.astype(str))
        rates_t = tf.constant(rate_index)
        decode = _decode_resample_fn(rate_list, spec.sample_rate, clip, training)

        def element_fn(index, u):
            wave = decode(paths_t[index], rates_t[index], u)
            return _finish_example(wave, labels_t[index], clip, num_classes)

        return element_fn

    # cache=True: every file decoded and resampled once, at full length, into one flat
    # array; examples are then slices of it, cropped exactly as from files.
    decode = _decode_resample_fn(rate_list, spec.sample_rate, clip, training, keep_full=True)
    ds = tf.data.Dataset.from_tensor_slices((paths.astype(str), rate_index))
    ds = ds.map(lambda p, r: decode(p, r, 0.0), num_parallel_calls=num_parallel_calls,
                deterministic=True)
    waves = list(ds.as_numpy_iterator())
    lengths = np.asarray([len(w) for w in waves], np.int64)
    offsets_t = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    lengths_t = tf.constant(lengths)
    flat_t = tf.constant(np.concatenate(waves).astype(np.float32) if waves else np.zeros(0, np.float32))
    ups_t = tf.constant([audio_lib.get_resampler(r, spec.sample_rate).up for r in rate_list],
                        tf.int32)
    rates_t = tf.constant(rate_index)

    def element_fn(index, u):
        n_out = tf.cast(lengths_t[index], tf.int32)
        start = _crop_start(u, n_out, clip, ups_t[rates_t[index]], training)
        begin = offsets_t[index] + tf.cast(start, tf.int64)
        wave = flat_t[begin:begin + tf.cast(tf.minimum(clip, n_out - start), tf.int64)]
        return _finish_example(wave, labels_t[index], clip, num_classes)

    return element_fn


def steps_per_epoch(num_examples, batch_size, drop_remainder):
    """Batches in one epoch of `num_examples` (for `repeat=True` datasets)."""
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)
