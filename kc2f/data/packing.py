"""Packed shards: decoded audio at the target rate in sharded TFRecords.

For AudioSet-scale datasets, opening millions of small files per epoch costs
more than decoding them. `pack_dataset` decodes every usable file once (after
the same scan as training, `validate_audio`), resamples it to the dataset's
rate, mono, and writes it with its labels into `num_shards` TFRecord files plus
an `index.json`. `open_packed(directory)` returns a `PackedDataset` that
`make_dataset` reads like a list of examples.

Record features: `audio` (bytes: int16 little-endian PCM, or float32),
`labels` (int64 label indices), `source` (bytes: the original path).

Training order over packed shards: shard order is permuted per epoch and
records pass through a shuffle buffer seeded by `(seed, epoch)`, so an epoch
is still reproducible from its number (shards cannot be read in random order,
so this is a windowed, not a global, shuffle).
"""

import json
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kc2f.data.bad_audio import BadAudioError, validate_audio
from kc2f.data.clip_tensors import balanced_weights, decode_resample_fn, label_matrix
from kc2f.data.progress_bar import ProgressBar
from kc2f.data.registry import get_dataset_spec

INDEX_FILE = "index.json"
_SHUFFLE_BUFFER = 2048


@dataclass(frozen=True)
class PackedDataset:
    """Packed shards of one split, as written by `pack_dataset`.

    Attributes:
        directory: the shard directory.
        files: shard paths, in order.
        counts: records per shard.
        sample_rate: rate of the stored audio, Hz.
        label_names: class list.
        dtype: `"int16"` or `"float32"`.
        audio_summary: the scan summary of the source files (what was skipped).
        mean_weight: mean balanced-sampling weight of the records.
        bad_audio: the scan's result carried with the shards: `{reason: count}`
            of the source files left out (empty when none was), so that
            training on the shards needs no scan of the source files.
    """

    directory: str
    files: tuple
    counts: tuple
    sample_rate: int
    label_names: tuple
    dtype: str
    audio_summary: str
    mean_weight: float = 1.0
    bad_audio: dict = None

    @property
    def num_examples(self):
        return int(sum(self.counts))

    def __len__(self):
        return self.num_examples


def pack_dataset(examples, label_names, spec, out_dir, *, num_shards=None, dtype="int16",
                 on_bad_audio="error", examples_per_shard=1000, scan_cache=None,
                 show_progress=None):
    """Decodes, resamples and writes examples into sharded TFRecords.

    Args:
        examples: list of `Example`.
        label_names: class list.
        spec: `DatasetSpec` or name (target rate).
        out_dir: output directory (created; must not already hold an index).
        num_shards: number of shards, default `ceil(len / examples_per_shard)`.
        dtype: `"int16"` (half the size; clipped to [-1, 1)) or `"float32"` (exact).
        on_bad_audio: `"error"` or `"skip"`, as in `make_dataset`.
        examples_per_shard: used when `num_shards` is None.
        scan_cache: as in `validate_audio` (`None`: the kc2f cache directory).
        show_progress: progress bars of the scan and the writing on stderr
            (`None`: when stderr is a terminal).

    Returns:
        `PackedDataset` for the written shards.
    """
    spec = get_dataset_spec(spec)
    if dtype not in ("int16", "float32"):
        raise ValueError(f"dtype must be 'int16' or 'float32'. Received: dtype={dtype!r}")
    if os.path.exists(os.path.join(out_dir, INDEX_FILE)):
        raise ValueError(f"{out_dir} already holds packed shards. Received: out_dir={out_dir!r}")
    report = validate_audio(examples, spec, scan_cache=scan_cache, show_progress=show_progress)
    if report.bad and on_bad_audio == "error":
        raise BadAudioError(report)
    if on_bad_audio not in ("error", "skip"):
        raise ValueError(f"on_bad_audio must be 'error' or 'skip'. Received: on_bad_audio={on_bad_audio!r}")
    keep = np.flatnonzero(report.good_mask)
    kept = [examples[i] for i in keep]
    if not kept:
        raise BadAudioError(report)
    label_rows = label_matrix(kept, list(label_names))
    weights = balanced_weights(label_rows, len(label_names))
    rates = report.rates[keep]
    rate_list = sorted(set(int(r) for r in rates))
    rate_index = np.searchsorted(rate_list, rates).astype(np.int32)
    if num_shards is None:
        num_shards = max(1, -(-len(kept) // examples_per_shard))
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards must be a positive integer. Received: num_shards={num_shards!r}")
    num_shards = min(num_shards, len(kept))

    decode = decode_resample_fn(rate_list, spec.sample_rate, spec.clip_samples,
                                          training=False, keep_full=True)
    ds = tf.data.Dataset.from_tensor_slices(([e.path for e in kept], rate_index))
    ds = ds.map(lambda p, r: decode(p, r, 0.0), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True).prefetch(tf.data.AUTOTUNE)

    os.makedirs(out_dir, exist_ok=True)
    files = [os.path.join(out_dir, f"shard-{k:05d}-of-{num_shards:05d}.tfrecord")
             for k in range(num_shards)]
    bounds = np.linspace(0, len(kept), num_shards + 1).round().astype(int)
    counts = np.diff(bounds).tolist()
    writer, shard = None, -1
    with ProgressBar("pack", len(kept), unit="clips", show_progress=show_progress) as progress:
        for i, wave in enumerate(ds.as_numpy_iterator()):
            while i >= bounds[shard + 1]:
                if writer is not None:
                    writer.close()
                shard += 1
                writer = tf.io.TFRecordWriter(files[shard])
            if dtype == "int16":
                data = np.clip(np.round(wave * 32768.0), -32768, 32767).astype("<i2").tobytes()
            else:
                data = wave.astype("<f4").tobytes()
            labels = label_rows[i][label_rows[i] >= 0].astype(np.int64)
            record = tf.train.Example(features=tf.train.Features(feature={
                "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=labels)),
                "source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[kept[i].path.encode()])),
                "weight": tf.train.Feature(float_list=tf.train.FloatList(value=[weights[i]])),
            }))
            writer.write(record.SerializeToString())
            progress.advance()
    if writer is not None:
        writer.close()
    index = {
        "format": "kc2f-packed-v1",
        "dataset": spec.name,
        "sample_rate": spec.sample_rate,
        "dtype": dtype,
        "label_names": list(label_names),
        "shards": [os.path.basename(f) for f in files],
        "counts": counts,
        "audio_summary": report.summary(),
        # The scan's result travels with the shards: training on them scans nothing.
        "bad_audio": dict(report.counts),
        "scanned": report.num_examples,
        "mean_weight": float(weights.mean()),
    }
    with open(os.path.join(out_dir, INDEX_FILE), "w") as f:
        json.dump(index, f, indent=1)
    return open_packed(out_dir)


def open_packed(directory):
    """Opens shards written by `pack_dataset`.

    Raises:
        FileNotFoundError: no `index.json` or a listed shard is missing.
    """
    path = os.path.join(directory, INDEX_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No packed dataset in {directory} ({INDEX_FILE} not found)")
    with open(path) as f:
        index = json.load(f)
    files = tuple(os.path.join(directory, name) for name in index["shards"])
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"Packed dataset {directory} lacks shards: {missing}")
    return PackedDataset(os.path.abspath(directory), files, tuple(index["counts"]),
                         int(index["sample_rate"]), tuple(index["label_names"]), index["dtype"],
                         index.get("audio_summary", ""), float(index.get("mean_weight", 1.0)),
                         dict(index.get("bad_audio", {})))


def read_records(packed, seed_e, training, balanced_sampling=False):
    """Records of one epoch as `(position, waveform float32 (samples,), label indices int64)`.

    Args:
        packed: `PackedDataset`.
        seed_e: the epoch's stateless seed (int64 `(2,)`), see `kc2f.data.pipeline`.
        training: permute shards and shuffle records (seeded); else file order.
        balanced_sampling: each record appears Poisson(N * w / sum w) times, with
            `w` AST's label-frequency weight stored at packing time: the expected
            epoch size stays N and the sampling matches weighted sampling with
            replacement.
    """
    files = tf.constant(list(packed.files))
    if training:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(len(packed.files)), seed=tf.random.experimental.stateless_fold_in(seed_e, 3))
        files = tf.gather(files, order)
    # Evaluation reads shards one after the other (file order); training interleaves
    # a few to mix them before the shuffle buffer.
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=min(4, len(packed.files)) if training else 1,
        block_length=16, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    features = {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
        "weight": tf.io.FixedLenFeature([], tf.float32, default_value=1.0),
    }
    dtype = tf.int16 if packed.dtype == "int16" else tf.float32

    def parse(record):
        parsed = tf.io.parse_single_example(record, features)
        wave = tf.cast(tf.io.decode_raw(parsed["audio"], dtype, little_endian=True), tf.float32)
        if packed.dtype == "int16":
            wave = wave / 32768.0
        return wave, tf.sparse.to_dense(parsed["labels"], default_value=-1), parsed["weight"]

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training and balanced_sampling:
        mean_weight = packed.mean_weight

        def repeat(index, element):
            wave, labels, weight = element
            times = tf.random.stateless_poisson(
                [], seed=tf.random.experimental.stateless_fold_in(seed_e, 10_000_000 + index),
                lam=weight / mean_weight, dtype=tf.int64)
            return tf.data.Dataset.from_tensors((wave, labels, weight)).repeat(times)

        ds = ds.enumerate().flat_map(repeat)
    if training:
        ds = ds.shuffle(_SHUFFLE_BUFFER, seed=tf.cast(tf.random.experimental.stateless_fold_in(seed_e, 4)[0], tf.int64),
                        reshuffle_each_iteration=False)
    return ds.enumerate().map(lambda pos, e: (pos, e[0], e[1]))
