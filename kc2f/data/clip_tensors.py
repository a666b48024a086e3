"""Per-clip tensors shared by file lists and packed shards: labels, sampling weights, decoding."""

import numpy as np
import tensorflow as tf

from kc2f.data import audio as audio_lib


def label_matrix(examples, label_names):
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


def balanced_weights(labels, num_classes):
    """AST's AudioSet sampling weight per clip: sum over its labels of 1000 / (count + 0.01)."""
    counts = np.zeros(num_classes)
    valid = labels >= 0
    np.add.at(counts, labels[valid], 1)
    per_label = np.where(valid, 1000.0 / (counts[np.maximum(labels, 0)] + 0.01), 0.0)
    return per_label.sum(axis=1)



def crop_start(u, n_out, clip, granularity, training):
    """Crop start: uniform in [0, n_out - clip] (training) or 0, on a multiple of `granularity`."""
    if not training:
        return tf.constant(0, tf.int32)
    span = tf.maximum(n_out - clip, 0)
    start = tf.cast(tf.floor(u * tf.cast(span + 1, tf.float32)), tf.int32)
    start = tf.minimum(start, span)
    return start - start % granularity



def decode_resample_fn(rate_list, target_rate, clip, training, keep_full=False):
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
                start = crop_start(u, n_out, clip, r.up, training)
                return r.compiled(mono, start, clip)
            return run

        return tf.switch_case(tf.cast(rate_index, tf.int32), [branch(r) for r in resamplers])

    return fn

