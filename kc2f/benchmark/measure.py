"""The timing loop shared by the synthetic and the file-fed benchmark.

Every configuration of a `BenchSpec` is timed under its precision policy; the
matmul peak is measured before the first row and after every row, and the best
measurement is the peak (a busy or still-clocking-up device reads low once),
so MFU is recomputed against it at the end.
"""

from kc2f.benchmark.backend import compute_dtype, precision_scope
from kc2f.benchmark.output import format_row
from kc2f.benchmark.peak import best_matmul, measure_matmul_peak, set_peak
from kc2f.benchmark.rows import add_ratios, new_result


def measure_configurations(spec, measure, *, log=None, **header):
    """Times every configuration of `spec` with `measure`; returns the result dict.

    Args:
        spec: the `BenchSpec`.
        measure: `measure(size, method, factor, peak_flops_per_s)` → the row of
            one configuration (see `rows.make_row`).
        log: called with each finished row's line, if given.
        **header: extra keys of the result, after the standard ones.
    """
    with precision_scope(spec.precision) as precision:
        matmul = measure_matmul_peak(compute_dtype(precision))
        result = new_result(precision, spec.jit, matmul, **header)
        for size, method, factor in spec.configurations():
            row = measure(size, method, factor, matmul["flops_per_s"])
            result["rows"].append(row)
            add_ratios(result["rows"])
            if log:
                log(format_row(result, row))
            matmul = best_matmul(matmul, measure_matmul_peak(compute_dtype(precision)))
        set_peak(result, matmul)
    if result["rows"]:
        result["jit"] = result["rows"][0]["jit"]
    return result
