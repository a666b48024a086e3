"""`kc2f bench --compare-minimal`: kc2f's training step against its minimal twin's, interleaved in one process.

For every size × method × factor of the `BenchSpec`, kc2f's model and its
minimal twin (`ModelFamily.minimal_twin`, the same arithmetic in plain
`keras.ops`; the AST's is `MinimalAst`) are compiled the
same way (`compile_model`: Adam with AST's settings, cross-entropy on logits,
the spec's jit) and fed the same device-resident batch. After `warmup` steps of
each, the timed steps alternate between the two, the order flipping every
round, so that a busy moment of a shared machine slows both alike.

The pair is built and timed twice, once kc2f's model first and once the
minimal one first: on 2 CPU cores (JAX, XLA) the model built first in a
process ran its step markedly faster than the one built second (kc2f/minimal
0.64 built minimal-first, 1.57 built kc2f-first, same configuration), an
artefact of the process, not of either model. The row's `ratio` is the
geometric mean of the two orders' ratios (median minimal step time / median
kc2f step time), i.e. kc2f's throughput over the minimal step's: 1.0 means
kc2f's layers cost nothing beyond the arithmetic, below 1 shows their
overhead. `ratio_kc2f_first` and `ratio_minimal_first` are the two halves.
"""

import math
import statistics
import time

from kc2f.benchmark.backend import release
from kc2f.benchmark.errors import BenchError
from kc2f.benchmark.rows import measure_rows
from kc2f.benchmark.step import TrainStep, build_model, compile_model, synthetic_batch
from kc2f.families import family_of


def _timed(step):
    start = time.perf_counter()
    loss = step()
    elapsed = time.perf_counter() - start
    if loss != loss or loss in (float("inf"), float("-inf")):
        raise BenchError(f"The loss is not finite: {loss}")
    return elapsed


def _minimal_twin(model, spec):
    twin = family_of(model).minimal_twin(model, seed=spec.seed)
    if twin is None:
        raise BenchError(f"--compare-minimal: model family {spec.model!r} has no minimal twin "
                         "(ModelFamily.minimal_twin).")
    return twin


def _timed_pair(spec, size, method, factor, kc2f_first):
    """`(kc2f model's token count, {name: first step s}, {name: [step s]})` of one build order."""
    data = synthetic_batch(spec.batch, spec.samples, spec.num_classes, spec.seed)

    def build_kc2f():
        return compile_model(build_model(size, method, factor, spec), spec)

    if kc2f_first:
        kc2f_model = build_kc2f()
        minimal_model = compile_model(_minimal_twin(kc2f_model, spec), spec)
        names = ("kc2f", "minimal")
    else:
        # The minimal twin needs a kc2f model's shapes: a throwaway one, released before the pair is built.
        probe = build_model(size, method, factor, spec)
        minimal_model = _minimal_twin(probe, spec)
        del probe
        minimal_model = compile_model(minimal_model, spec)
        kc2f_model = build_kc2f()
        names = ("minimal", "kc2f")
    models = {"kc2f": kc2f_model, "minimal": minimal_model}
    steps = {name: TrainStep(models[name], data) for name in names}
    times = {name: [] for name in names}
    first = {}
    try:
        for name in names:
            first[name] = _timed(steps[name])
            for _ in range(spec.warmup - 1):
                _timed(steps[name])
        for i in range(spec.steps):
            for name in (names if i % 2 == 0 else names[::-1]):
                times[name].append(_timed(steps[name]))
    finally:
        for step in steps.values():
            step.close()
    tokens = int(kc2f_model.position_embedding.num_tokens)
    release(kc2f_model)
    release(minimal_model)
    return tokens, first, times


def compare_row(spec, size, method, factor):
    """kc2f's step and the minimal step of one configuration, interleaved, in both build orders; the row."""
    halves = {}
    for kc2f_first in (True, False):
        tokens, first, times = _timed_pair(spec, size, method, factor, kc2f_first)
        kc2f_s, minimal_s = statistics.median(times["kc2f"]), statistics.median(times["minimal"])
        halves["kc2f_first" if kc2f_first else "minimal_first"] = {
            "kc2f_step_ms": 1e3 * kc2f_s, "minimal_step_ms": 1e3 * minimal_s, "ratio": minimal_s / kc2f_s,
            "kc2f_compile_s": first["kc2f"], "minimal_compile_s": first["minimal"],
            "kc2f_step_ms_all": [1e3 * t for t in times["kc2f"]],
            "minimal_step_ms_all": [1e3 * t for t in times["minimal"]],
        }
    a, b = halves["kc2f_first"], halves["minimal_first"]
    kc2f_ms = math.sqrt(a["kc2f_step_ms"] * b["kc2f_step_ms"])
    minimal_ms = math.sqrt(a["minimal_step_ms"] * b["minimal_step_ms"])
    return {
        "size": size.name, "hidden_dim": size.hidden_dim, "depth": size.depth, "num_heads": size.num_heads,
        "method": method, "factor": factor, "tokens": tokens,
        "batch": spec.batch, "seconds": spec.seconds, "frames": spec.target_frames, "steps": spec.steps,
        "kc2f_step_ms": kc2f_ms, "minimal_step_ms": minimal_ms,
        "kc2f_compile_s": a["kc2f_compile_s"], "minimal_compile_s": a["minimal_compile_s"],
        "kc2f_samples_per_s": 1e3 * spec.batch / kc2f_ms, "minimal_samples_per_s": 1e3 * spec.batch / minimal_ms,
        "ratio": math.sqrt(a["ratio"] * b["ratio"]),
        "ratio_kc2f_first": a["ratio"], "ratio_minimal_first": b["ratio"],
        "orders": halves,
    }


def compare_minimal(spec, *, log=None):
    """`compare_row` for every configuration of `spec`; returns the result dict (`rows`)."""
    return measure_rows(spec, "compare-minimal", compare_row, format_compare_row, log)


def format_compare_row(result, row):
    return (
        f"kc2f[{result['backend']}] compare-minimal size={row['size']} method={row['method']} C={row['factor']} "
        f"tokens={row['tokens']} batch={row['batch']} kc2f_step_ms={row['kc2f_step_ms']:.1f} "
        f"minimal_step_ms={row['minimal_step_ms']:.1f} kc2f/minimal_throughput={row['ratio']:.3f} "
        f"(kc2f_first={row['ratio_kc2f_first']:.3f} minimal_first={row['ratio_minimal_first']:.3f}) "
        f"compile_s={row['kc2f_compile_s']:.1f}/{row['minimal_compile_s']:.1f}"
    )


def format_compare(result):
    header = (f"# kc2f bench --compare-minimal backend={result['backend']} jit={result['jit']} "
              f"precision={result['precision']} device={result['device'].replace(' ', '_')} "
              "(timed steps interleaved, both build orders; ratio = kc2f throughput / minimal keras.ops "
              "throughput, geometric mean of the orders)")
    return "\n".join([header] + [format_compare_row(result, row) for row in result["rows"]])
