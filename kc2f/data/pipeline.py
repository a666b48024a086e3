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

import logging

import numpy as np
import tensorflow as tf

from kc2f.data import audio as audio_lib
from kc2f.data import packing
from kc2f.data.audio import read_mono_wav
from kc2f.data.bad_audio import (  # noqa: F401  (BadAudio*, validate_audio: the pipeline's API)
    BAD_AUDIO_REASONS,
    BadAudio,
    BadAudioError,
    BadAudioReport,
    check_examples,
    validate_audio,
)
from kc2f.data.clip_tensors import balanced_weights, crop_start, decode_resample_fn, label_matrix
from kc2f.data.registry import get_dataset_spec

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
# Clips a cache fill reads back at a time (see `_file_elements`).
_CACHE_FILL_BATCH = 256



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
    start_step=0,
    audio_report=None,
    num_parallel_calls=AUTOTUNE,
    cache_store=None,
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
        start_step: with `repeat=True`, start the stream of epochs `epoch,
            epoch+1, ...` at this batch (a step-based run resumed after
            `start_step` optimizer steps gets the batches the uninterrupted
            run got next, whether or not its intervals are whole epochs).
        audio_report: a `BadAudioReport` from `validate_audio` on the same
            examples, to skip the scan.
        num_parallel_calls: decode parallelism.
        cache_store: with `cache`, a dict that keeps the decoded clips: a later
            call with the same dict and the same clips reuses them instead of
            decoding every file again (the trainer keeps one per run, so each
            phase's pipeline reads the first phase's decode).

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
    if not isinstance(start_step, (int, np.integer)) or start_step < 0 or (start_step and not repeat):
        raise ValueError(f"start_step must be a non-negative integer, used with repeat=True. "
                         f"Received: start_step={start_step!r}, repeat={repeat}")
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
                start = crop_start(u, n, clip, 1, training)
                return _finish_example(wave[start:start + clip], label_row, clip, num_classes)

            return records.map(finish, num_parallel_calls=num_parallel_calls, deterministic=True)
    else:
        check_examples(examples)
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
        label_rows = label_matrix(kept, label_names)
        rates = report.rates[keep]
        rate_list = sorted(set(int(r) for r in rates))
        rate_index = np.searchsorted(rate_list, rates).astype(np.int32)
        paths = np.asarray([e.path for e in kept], dtype=object)
        num = len(kept)
        cdf = None
        if training and spec.balanced_sampling:
            cdf = tf.constant(np.cumsum(balanced_weights(label_rows, num_classes)), tf.float64)
        element_fn = _file_elements(paths, rate_index, rate_list, label_rows, spec, training,
                                    clip, num_classes, cache, num_parallel_calls, cache_store)

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
        per_epoch = steps_per_epoch(num, batch_size, drop_remainder)
        if start_step and not per_epoch:
            raise ValueError(f"start_step needs at least one batch per epoch: {num} examples, "
                             f"batch_size={batch_size}. Received: start_step={start_step}")
        first, skip = divmod(int(start_step), per_epoch) if start_step else (0, 0)
        ds = tf.data.Dataset.range(epoch + first, 2**62).flat_map(one_epoch)
        if skip:
            ds = ds.skip(skip)
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
                   cache, num_parallel_calls, cache_store=None):
    """Returns `element_fn(index, u)` building one example from files (or the RAM cache, kept in
    `cache_store` when one is given)."""
    labels_t = tf.constant(label_matrix)
    if not cache:
        paths_t = tf.constant(paths.astype(str))
        rates_t = tf.constant(rate_index)
        decode = decode_resample_fn(rate_list, spec.sample_rate, clip, training)

        def element_fn(index, u):
            wave = decode(paths_t[index], rates_t[index], u)
            return _finish_example(wave, labels_t[index], clip, num_classes)

        return element_fn

    # cache=True: every file decoded and resampled once, at full length, into one flat
    # array; examples are then slices of it, cropped exactly as from files.
    key = (tuple(paths), tuple(rate_index.tolist()), tuple(rate_list), spec.sample_rate, clip)
    if cache_store is not None and cache_store.get("key") == key:
        # The tensor itself: copying the clips into a new one cost ~0.3 s a phase (the demo's).
        flat_t, lengths = cache_store["flat"], cache_store["lengths"]
    else:
        flat, lengths = _decode_for_cache(paths, rate_index, rate_list, spec.sample_rate, clip, training,
                                          num_parallel_calls)
        flat_t = tf.constant(flat)
        del flat
        if cache_store is not None:
            cache_store.update(key=key, flat=flat_t, lengths=lengths)
    offsets_t = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    lengths_t = tf.constant(lengths)
    ups_t = tf.constant([audio_lib.get_resampler(r, spec.sample_rate).up for r in rate_list],
                        tf.int32)
    rates_t = tf.constant(rate_index)

    def element_fn(index, u):
        n_out = tf.cast(lengths_t[index], tf.int32)
        start = crop_start(u, n_out, clip, ups_t[rates_t[index]], training)
        begin = offsets_t[index] + tf.cast(start, tf.int64)
        wave = flat_t[begin:begin + tf.cast(tf.minimum(clip, n_out - start), tf.int64)]
        return _finish_example(wave, labels_t[index], clip, num_classes)

    return element_fn


def _decode_for_cache(paths, rate_index, rate_list, sample_rate, clip, training, num_parallel_calls):
    """`(flat, lengths)`: every clip decoded at `sample_rate`, full length, end to end in one
    float32 array, and each clip's length.

    Mono WAV files already at the rate are read by NumPy (`read_mono_wav`: 0.1 ms a clip,
    against ~1 ms through the graph decoder in tf.data on 2 CPU cores); the others go through
    the graph decoder and resampler, read back in ragged batches (one Python step per clip
    cost ~0.5 ms of a clip's ~1.3 ms). Both give the same samples (tests/data).
    """
    waves = [None] * len(paths)
    rest = []
    for i, path in enumerate(paths):
        read = read_mono_wav(path) if rate_list[rate_index[i]] == sample_rate else None
        if read is not None and read[1] == sample_rate:
            waves[i] = read[0]
        else:
            rest.append(i)
    if rest:
        decode = decode_resample_fn(rate_list, sample_rate, clip, training, keep_full=True)
        ds = tf.data.Dataset.from_tensor_slices((paths[rest].astype(str), rate_index[rest]))
        ds = ds.map(lambda p, r: decode(p, r, 0.0), num_parallel_calls=num_parallel_calls, deterministic=True)
        position = iter(rest)
        for batch in ds.ragged_batch(_CACHE_FILL_BATCH):
            values, row_lengths = batch.flat_values.numpy(), batch.row_lengths().numpy()
            for wave in np.split(values, np.cumsum(row_lengths)[:-1]):
                waves[next(position)] = wave
    lengths = np.asarray([wave.size for wave in waves], np.int64)
    flat = np.concatenate([np.zeros(0, np.float32), *waves]).astype(np.float32, copy=False)
    return flat, lengths


def steps_per_epoch(num_examples, batch_size, drop_remainder):
    """Batches in one epoch of `num_examples` (for `repeat=True` datasets)."""
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def placeholder_batches(dataset, batch_size=None):
    """An endless dataset of zero batches with `dataset`'s structure, dtypes and shapes.

    What compiles a model's steps ahead of its data (`PhasePrecompiler`): a
    step traced on it is the step the real batches run. The batch dimension is
    the dataset's own when it is static, else `batch_size`.

    Args:
        dataset: a `tf.data.Dataset` of batches (`make_dataset`'s).
        batch_size: the batch dimension where the dataset leaves it unknown
            (an evaluation split whose last batch is short).

    Returns:
        A `tf.data.Dataset`, or `None` when a dimension other than the batch
        one is unknown (then no step can be compiled ahead of the data).
    """
    def zeros(spec):
        shape = spec.shape.as_list()
        if shape and shape[0] is None:
            shape[0] = batch_size
        if None in shape:
            return None
        return tf.zeros(shape, spec.dtype)

    batch = tf.nest.map_structure(zeros, dataset.element_spec)
    if any(part is None for part in tf.nest.flatten(batch)):
        return None
    return tf.data.Dataset.from_tensors(batch).repeat()
