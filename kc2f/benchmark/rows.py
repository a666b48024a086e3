"""The result a benchmark returns (its JSON): the header, one row per configuration, the ratios."""

import statistics

import keras

from kc2f.benchmark.backend import compute_dtype, device_name, dtype_label, jit_label, precision_scope
from kc2f.benchmark.memory import peak_memory_bytes
from kc2f.benchmark.peak import measure_matmul_peak, throughput


def measure_rows(spec, mode, measure_row, format_row, log=None):
    """`measure_row(spec, size, method, factor)` for every configuration of `spec`, under its
    precision, after measuring the matmul peak; returns the result dict (`rows`, `mode`).

    `log`, if given, gets `format_row(result, row)` for each row as it is measured.
    """
    with precision_scope(spec.precision) as precision:
        matmul = measure_matmul_peak(compute_dtype(precision))
        result = new_result(precision, spec.jit, matmul, mode=mode)
        for size, method, factor in spec.configurations():
            row = measure_row(spec, size, method, factor)
            result["rows"].append(row)
            if log:
                log(format_row(result, row))
    return result


def new_result(precision, jit, matmul, **extra):
    """The result's header with no rows yet; `extra` keys follow the standard ones."""
    result = {
        "tool": "kc2f",
        "backend": keras.backend.backend(),
        "device": device_name(),
        "precision": precision,
        "jit": jit,
        "matmul_peak_tflops": matmul["flops_per_s"] / 1e12 if matmul else None,
        "matmul": matmul,
        "rows": [],
    }
    result.update(extra)
    return result


def make_row(model, size, spec, times, first, flops, peak_flops_per_s, **extra):
    """The row of one timed configuration: `times` of the steps, `first` the compiling step."""
    step_s = statistics.median(times)
    samples_per_s, tflops, mfu = throughput(spec.batch, step_s, flops, peak_flops_per_s)
    row = {
        "size": size.name,
        "hidden_dim": size.hidden_dim,
        "depth": size.depth,
        "num_heads": size.num_heads,
        "method": model.method,
        "factor": model.factor,
        "tokens": model_tokens(model),
        "batch": spec.batch,
        "seconds": spec.seconds,
        "frames": spec.target_frames,
        "input": "synthetic",
        "steps": len(times),
        "step_ms": 1e3 * step_s,
        "step_ms_mean": 1e3 * statistics.fmean(times),
        "step_ms_min": 1e3 * min(times),
        "compile_s": first,
        "samples_per_s": samples_per_s,
        "train_flops_per_sample": flops,
        "tflops": tflops,
        "mfu": mfu,
        "peak_memory_bytes": peak_memory_bytes(),
        "jit": jit_label(model),
        "compute_dtype": dtype_label(model),
        "step_ratio": None,
        "flops_ratio": None,
    }
    row.update(extra)
    return row


def add_ratios(rows):
    """Adds `step_ratio` and `flops_ratio` against the C=1 row of the same group.

    A group is the same size, batch and clip (`size`, `hidden_dim`, `depth`,
    `num_heads`, `batch`, `frames`, `input`): at C=1 every method is the same
    model, so one C=1 row serves all methods. Rows without a C=1 partner get `None`.
    """

    def group(row):
        return tuple(row.get(k) for k in ("size", "hidden_dim", "depth", "num_heads", "batch", "frames", "input"))

    references = {group(r): r for r in rows if r["factor"] == 1}
    for row in rows:
        ref = references.get(group(row))
        if ref is None:
            row["step_ratio"] = row["flops_ratio"] = None
            continue
        row["step_ratio"] = row["step_ms"] / ref["step_ms"]
        row["flops_ratio"] = row["train_flops_per_sample"] / ref["train_flops_per_sample"]
    return rows


def model_tokens(model):
    """Tokens of a row: the AST's with its prefix tokens (as the PyTorch reference prints), else the family's."""
    if hasattr(model, "position_embedding"):
        return int(model.position_embedding.num_tokens)
    from kc2f.families import family_of

    return int(family_of(model).tokens(model))
