"""`kc2f bench` in one call: the measurement its options ask for, and its text."""

from kc2f.benchmark.compare_minimal import compare_minimal as _compare_minimal
from kc2f.benchmark.compare_minimal import format_compare
from kc2f.benchmark.files import benchmark_files, recipe_spec
from kc2f.benchmark.max_batch import find_max_batch as _find_max_batch
from kc2f.benchmark.output import format_lines, format_max_batch
from kc2f.benchmark.synthetic import run_benchmark


def run(spec, *, from_files=None, dataset="folder", split="train", find_max_batch=False, max_batch=4096,
        log=None, compare_minimal=False, breakdown=False, profile=None):
    """Runs one benchmark of `spec`; returns `(result, text)`: the JSON-able dict and its table.

    Args:
        spec: the `BenchSpec`.
        from_files: time the step fed from the audio files under this directory
            (`benchmark_files`, under the `dataset` recipe and `split`).
        find_max_batch: report the largest batch that fits, up to `max_batch`
            (`find_max_batch`), instead of timing.
        log: called with a line per finished row (and the input), if given.
        compare_minimal: time kc2f's step against the same arithmetic in plain
            `keras.ops` (`compare_minimal.compare_minimal`), interleaved.
        breakdown: time the step's parts, each compiled on its own
            (`breakdown.measure_breakdown`).
        profile: trace the step of every factor into this directory and list
            its top ops (`profile.measure_profile`).

    Otherwise times the step on synthetic waveforms (`run_benchmark`). With
    `from_files`, the other measurements time the step of the files' recipe
    (`recipe_spec`: its clip, sample rate, frames, mel bins and classes) on
    synthetic waveforms of that shape.
    """
    if from_files and (compare_minimal or profile or breakdown or find_max_batch):
        spec = recipe_spec(spec, from_files, dataset=dataset, split=split, log=log)
    if compare_minimal:
        result = _compare_minimal(spec, log=log)
        return result, format_compare(result)
    if profile:
        from kc2f.benchmark.profile import format_profile, measure_profile

        result = measure_profile(spec, profile, log=log)
        return result, format_profile(result)
    if breakdown:
        from kc2f.benchmark.breakdown import format_breakdown, measure_breakdown

        result = measure_breakdown(spec, log=log)
        return result, format_breakdown(result)
    if find_max_batch:
        result = _find_max_batch(spec, max_batch=max_batch, log=log)
        return result, format_max_batch(result)
    if from_files:
        if log:
            log(f"from files: {from_files} (dataset recipe {dataset!r}, split {split!r})")
        result = benchmark_files(spec, from_files, dataset=dataset, split=split, log=log)
    else:
        result = run_benchmark(spec, log=log)
    return result, format_lines(result)
