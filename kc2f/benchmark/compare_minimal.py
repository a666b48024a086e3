"""`kc2f bench --compare-minimal`: kc2f's training step against `MinimalAst`'s, interleaved in one process.

For every size × method × factor of the `BenchSpec`, kc2f's model and its
`MinimalAst` twin (the same arithmetic in plain `keras.ops`) are compiled the
same way (`compile_model`: Adam with AST's settings, cross-entropy on logits,
the spec's jit) and fed the same device-resident batch. After `warmup` steps of
each, the timed steps alternate between the two, the order flipping every
round, so that a busy moment of a shared machine slows both alike. The row's
`ratio` is kc2f's throughput over the minimal step's (median minimal step
time / median kc2f step time): 1.0 means kc2f's layers cost nothing beyond
the arithmetic, below 1 shows their overhead.
"""

import statistics
import time

from kc2f.benchmark.backend import compute_dtype, precision_scope, release
from kc2f.benchmark.errors import BenchError
from kc2f.benchmark.minimal_ast import MinimalAst
from kc2f.benchmark.peak import measure_matmul_peak
from kc2f.benchmark.rows import new_result
from kc2f.benchmark.step import TrainStep, build_model, compile_model, synthetic_batch


def _timed(step):
    start = time.perf_counter()
    loss = step()
    elapsed = time.perf_counter() - start
    if loss != loss or loss in (float("inf"), float("-inf")):
        raise BenchError(f"The loss is not finite: {loss}")
    return elapsed


def compare_row(spec, size, method, factor):
    """Times kc2f's step and the minimal step of one configuration, interleaved; returns the row."""
    kc2f_model = compile_model(build_model(size, method, factor, spec), spec)
    minimal_model = MinimalAst.like(kc2f_model, seed=spec.seed)
    compile_model(minimal_model, spec)
    data = synthetic_batch(spec.batch, spec.samples, spec.num_classes, spec.seed)
    steps = {"kc2f": TrainStep(kc2f_model, data), "minimal": TrainStep(minimal_model, data)}
    times = {"kc2f": [], "minimal": []}
    first = {}
    try:
        for name, step in steps.items():
            first[name] = _timed(step)
            for _ in range(spec.warmup - 1):
                _timed(step)
        for i in range(spec.steps):
            order = ("kc2f", "minimal") if i % 2 == 0 else ("minimal", "kc2f")
            for name in order:
                times[name].append(_timed(steps[name]))
    finally:
        for step in steps.values():
            step.close()
    kc2f_s, minimal_s = statistics.median(times["kc2f"]), statistics.median(times["minimal"])
    row = {
        "size": size.name, "hidden_dim": size.hidden_dim, "depth": size.depth, "num_heads": size.num_heads,
        "method": method, "factor": factor, "tokens": int(kc2f_model.position_embedding.num_tokens),
        "batch": spec.batch, "seconds": spec.seconds, "frames": spec.target_frames, "steps": spec.steps,
        "kc2f_step_ms": 1e3 * kc2f_s, "minimal_step_ms": 1e3 * minimal_s,
        "kc2f_compile_s": first["kc2f"], "minimal_compile_s": first["minimal"],
        "kc2f_samples_per_s": spec.batch / kc2f_s, "minimal_samples_per_s": spec.batch / minimal_s,
        "ratio": minimal_s / kc2f_s,
        "kc2f_step_ms_all": [1e3 * t for t in times["kc2f"]],
        "minimal_step_ms_all": [1e3 * t for t in times["minimal"]],
    }
    release(kc2f_model)
    release(minimal_model)
    return row


def compare_minimal(spec, *, log=None):
    """`compare_row` for every configuration of `spec`; returns the result dict (`rows`)."""
    with precision_scope(spec.precision) as precision:
        matmul = measure_matmul_peak(compute_dtype(precision))
        result = new_result(precision, spec.jit, matmul, mode="compare-minimal")
        for size, method, factor in spec.configurations():
            row = compare_row(spec, size, method, factor)
            result["rows"].append(row)
            if log:
                log(format_compare_row(result, row))
    return result


def format_compare_row(result, row):
    return (
        f"kc2f[{result['backend']}] compare-minimal size={row['size']} method={row['method']} C={row['factor']} "
        f"tokens={row['tokens']} batch={row['batch']} kc2f_step_ms={row['kc2f_step_ms']:.1f} "
        f"minimal_step_ms={row['minimal_step_ms']:.1f} kc2f/minimal_throughput={row['ratio']:.3f} "
        f"compile_s={row['kc2f_compile_s']:.1f}/{row['minimal_compile_s']:.1f}"
    )


def format_compare(result):
    header = (f"# kc2f bench --compare-minimal backend={result['backend']} jit={result['jit']} "
              f"precision={result['precision']} device={result['device'].replace(' ', '_')} "
              "(timed steps interleaved; ratio = kc2f throughput / minimal keras.ops throughput)")
    return "\n".join([header] + [format_compare_row(result, row) for row in result["rows"]])
