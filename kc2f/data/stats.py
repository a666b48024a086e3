"""Fbank normalisation statistics of a dataset.

AST normalises fbank features as `(x - mean) / (2 std)` with one mean and one
std per dataset. Its reference code computes them from the training loader
with SpecAugment and mixup switched on and counts zero-padded frames, both of
which bias the values (docs/method.md#reference-code-defects). `compute_stats` uses clean audio
(no augmentation, no mixup, start crop) and only the frames computed from
real samples.

Run as a module to print the values for a registry dataset:

    kc2f stats --dataset fsdd --data-dir ../shared/data/fsdd --split train
"""

import math

import numpy as np

from kc2f.data.manifest import build_index
from kc2f.data.pipeline import make_dataset, validate_audio
from kc2f.data.progress_bar import ProgressBar
from kc2f.data.registry import INPUT_FIELDS, get_dataset_spec, input_spec
from kc2f.layers.kaldi_fbank import KaldiFbank


def compute_stats(examples, spec, *, batch_size=64, max_examples=None, label_names=None,
                  on_bad_audio="error", audio_report=None, show_progress=None):
    """Mean and standard deviation of the log-mel fbank over a set of clips.

    Uses `kc2f.layers.kaldi_fbank.KaldiFbank` (the model's own front-end) at
    `spec.sample_rate` with `spec.num_mel_bins`, on clips of `spec.clip_seconds`
    cropped at the start; padded frames are excluded. Accumulates in float64.

    Args:
        examples: list of `Example` (usually the train split).
        spec: `DatasetSpec` or registry name.
        batch_size: clips per fbank batch.
        max_examples: use only the first N examples (in file order).
        label_names: class list; default: the sorted labels of `examples`.
        on_bad_audio: `"error"` or `"skip"` (as in `make_dataset`).
        audio_report: a `BadAudioReport` of `examples`, to skip the scan.
        show_progress: progress bars (scan, fbank pass) on stderr (`None`:
            when stderr is a terminal).

    Returns:
        `(mean, std)` as Python floats.
    """
    spec = get_dataset_spec(spec)
    if max_examples is not None:
        if not isinstance(max_examples, int) or max_examples < 1:
            raise ValueError(f"max_examples must be a positive integer. Received: max_examples={max_examples!r}")
        examples = list(examples)[:max_examples]
        audio_report = None
    if label_names is None:
        label_names = sorted({label for e in examples for label in e.labels})
    # The class count does not matter here; a spec without one accepts any label list.
    spec_any = spec.replace(num_classes=None)
    if audio_report is None:
        audio_report = validate_audio(examples, spec, show_progress=show_progress)
    ds = make_dataset(examples, label_names, spec_any, batch_size=batch_size, training=False,
                      mixup=0.0, on_bad_audio=on_bad_audio, audio_report=audio_report)
    fbank = KaldiFbank(sample_rate=spec.sample_rate, num_mel_bins=spec.num_mel_bins,
                       target_frames=spec.target_frames)
    total, total_sq, count = 0.0, 0.0, 0
    with ProgressBar("fbank statistics", audio_report.num_good, unit="clips",
                     show_progress=show_progress) as progress:
        for features, _ in ds.as_numpy_iterator():
            total, total_sq, count = _accumulate(fbank, features, total, total_sq, count)
            progress.advance(len(features["length"]))
    if count == 0:
        raise ValueError("No fbank frames: every clip is shorter than one frame. "
                         f"Received: {len(examples)} examples")
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0))
    return float(mean), float(std)


def _accumulate(fbank, features, total, total_sq, count):
    """Adds one batch's valid fbank frames to the float64 sums."""
    x = np.asarray(fbank(features), dtype=np.float64)  # (batch, frames, bins)
    length = features["length"].astype(np.int64)
    valid = np.where(length >= fbank.window_length,
                     (length - fbank.window_length) // fbank.hop_length + 1, 0)
    mask = np.arange(x.shape[1])[None, :] < valid[:, None]
    frames = x[mask]  # (valid frames, bins)
    return total + frames.sum(), total_sq + np.square(frames).sum(), count + frames.size


def dataset_stats(name, data_dir=None, split="train", max_examples=None, show_progress=None, **inputs):
    """`compute_stats` over a registered dataset's split; returns `(mean, std, clips)`.

    This is what `kc2f stats` prints and what a run uses when the registry has
    no statistics for its dataset.

    Args:
        **inputs: the run's input options (`registry.INPUT_FIELDS`: `sample_rate`,
            `clip_seconds`, `num_mel_bins`...) where they differ from the recipe:
            the statistics depend on the fbank's bins and the clip's crop.
    """
    unknown = sorted(set(inputs) - set(INPUT_FIELDS))
    if unknown:
        raise ValueError(f"Unknown input option(s) {unknown}; known: {list(INPUT_FIELDS)}. Received: {unknown}")
    spec = input_spec(name, inputs)
    examples, label_names = build_index(spec, data_dir, split)
    mean, std = compute_stats(examples, spec, max_examples=max_examples, label_names=label_names,
                              show_progress=show_progress)
    count = len(examples) if max_examples is None else min(max_examples, len(examples))
    return mean, std, count
