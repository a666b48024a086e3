"""Whether the input pipeline keeps up: the step fed from audio files vs on one resident batch.

The one part of the benchmark that needs TensorFlow (tf.data) and `kc2f.data`.
They are imported inside `benchmark_files`, not at the top: `kc2f bench` must
run in a JAX- or PyTorch-only install, where only this mode is unavailable.
"""

import dataclasses
import functools
import statistics

import keras

from kc2f.benchmark.backend import release
from kc2f.benchmark.errors import BenchError
from kc2f.benchmark.measure import measure_configurations
from kc2f.benchmark.memory import reset_peak_memory
from kc2f.benchmark.rows import make_row
from kc2f.benchmark.step import TrainStep, build_model, compile_model, time_steps, training_flops


def benchmark_files(spec, data_dir, *, dataset="folder", split="train", log=None):
    """The step fed from the files under `data_dir` vs the same step on one resident batch.

    Indexes `data_dir` with `kc2f.data.manifest.build_index` under the registry's
    `dataset` recipe, builds the training `tf.data` pipeline
    (`kc2f.data.pipeline.make_dataset`: decode, crop/pad, augmentation as in
    `kc2f fit`), and times every configuration of `spec` with the recipe's clip,
    sample rate, frames, mel bins, fbank statistics, SpecAugment and loss in
    place of the synthetic clip's:

    - `synthetic_step_ms`: the step on the pipeline's first batch kept on the device;
    - `step_ms`: the step fed with a new batch from the pipeline every step
      (waiting for the pipeline and the host-to-device copy included).

    `input_slowdown = step_ms / synthetic_step_ms`: about 1 when the input side
    keeps up, larger when training is input-bound.
    """
    # Deferred: TensorFlow (tf.data, behind kc2f.data) is optional under JAX and PyTorch.
    from kc2f.data import pipeline

    spec, recipe, examples, label_names = _indexed(spec, data_dir, dataset, split)
    data = pipeline.make_dataset(
        examples, label_names, recipe, batch_size=spec.batch, training=True, seed=spec.seed,
        drop_remainder=True, repeat=True,
    )

    # Opened at the first row, after the first matmul peak: its prefetching would slow that measurement.
    @functools.cache
    def batches():
        iterator = iter(data) if keras.backend.backend() == "tensorflow" else data.as_numpy_iterator()
        return iterator, next(iterator)

    def measure(size, method, factor, peak_flops_per_s):
        iterator, first_batch = batches()
        model = compile_model(build_model(size, method, factor, spec), spec)
        flops = training_flops(model)
        reset_peak_memory()
        step = TrainStep(model, first_batch)
        try:
            first, resident = time_steps(step, spec.steps, spec.warmup)
            _, fed = time_steps(step, spec.steps, spec.warmup, next_data=lambda: next(iterator))
        finally:
            step.close()
        synthetic_ms = 1e3 * statistics.median(resident)
        row = make_row(model, size, spec, fed, first, flops, peak_flops_per_s, input="files",
                       synthetic_step_ms=synthetic_ms, input_slowdown=1e3 * statistics.median(fed) / synthetic_ms)
        release(model)
        return row

    return measure_configurations(
        spec, measure, log=log, dataset=recipe.name, data_dir=str(data_dir), split=split, clips=len(examples)
    )


def recipe_spec(spec, data_dir, *, dataset="folder", split="train", log=None):
    """`spec` with the input of the files under `data_dir` under the registry's `dataset` recipe.

    For the measurements that time a step on synthetic waveforms (`--profile`,
    `--breakdown`, `--compare-minimal`, `--find-max-batch`): given
    `--from-files`, they time the step of that recipe's clip, sample rate,
    frames, mel bins, fbank statistics, SpecAugment and classes (the classes
    counted in the files), as `benchmark_files` does, instead of the synthetic
    clip's defaults.
    """
    spec, recipe, examples, label_names = _indexed(spec, data_dir, dataset, split)
    if log:
        log(f"input of {data_dir} ({len(examples)} {split} clips, {len(label_names)} classes) under the "
            f"{recipe.name!r} recipe: {spec.seconds:g} s at {spec.sample_rate} Hz, {spec.frames} frames, "
            f"{spec.num_mel_bins} mel bins; the step runs on synthetic waveforms of that shape")
    return spec


def _indexed(spec, data_dir, dataset, split):
    """`(spec with the recipe's input, recipe, examples, label names)` of the files under `data_dir`."""
    # Deferred: kc2f.data (the index) is needed only with --from-files.
    from kc2f.data import manifest, registry

    recipe = registry.get_dataset_spec(dataset)
    examples, label_names = manifest.build_index(recipe, str(data_dir), split)
    if len(examples) < spec.batch:
        raise BenchError(
            f"{data_dir} has {len(examples)} {split} clips, fewer than one batch. Received: batch={spec.batch}"
        )
    return _dataset_spec(spec, recipe, len(label_names)), recipe, examples, label_names


def _dataset_spec(spec, recipe, num_classes):
    """`spec` with the clip, front end, SpecAugment and labels of the dataset `recipe`."""
    for factor in spec.factors:
        if recipe.target_frames % factor:
            raise BenchError(
                f"The {recipe.name} recipe has {recipe.target_frames} frames, not divisible by every factor. "
                f"Received: factor={factor}"
            )
    return dataclasses.replace(
        spec, seconds=recipe.clip_seconds, sample_rate=recipe.sample_rate, frames=recipe.target_frames,
        num_classes=num_classes, num_mel_bins=recipe.num_mel_bins, fbank_mean=recipe.mean,
        fbank_std=recipe.std, freqm=recipe.freqm, timem=recipe.timem, multilabel=recipe.multilabel,
    )
