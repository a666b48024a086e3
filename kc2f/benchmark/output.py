"""The text of a benchmark result: a header line and one `key=value` line per row.

Row lines start with the PyTorch reference's keys (`C=`, `tokens=`, `batch=`,
`step_ms=`, ...), so `tools/gpu_bench.sh` parses both outputs alike.
"""

from kc2f.benchmark.rows import add_ratios


def _fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def _fmt_memory(value):
    return "n/a" if value is None else f"{value / 2**30:.2f}GiB"


def format_header(result):
    peak = result.get("matmul_peak_tflops")
    matmul = result.get("matmul") or {}
    return (
        f"# kc2f bench backend={result['backend']} jit={result['jit']} precision={result['precision']} "
        f"device={result['device'].replace(' ', '_')} matmul_peak_tflops={_fmt(peak, '.4g')} "
        f"(matmul {matmul.get('dtype', '?')} {matmul.get('size', '?')}^2)"
    )


def format_row(result, row):
    """One line per row, with the PyTorch reference's keys first (`C=`, `tokens=`, ...)."""
    mfu = None if row["mfu"] is None else 100 * row["mfu"]
    line = (
        f"kc2f[{result['backend']}] size={row['size']} method={row['method']} C={row['factor']} "
        f"tokens={row['tokens']} batch={row['batch']} step_ms={row['step_ms']:.1f} "
        f"samples_per_s={row['samples_per_s']:.4g} tflops={row['tflops']:.4g} mfu={_fmt(mfu, '.1f')}% "
        f"step_ratio={_fmt(row['step_ratio'], '.3f')} flops_ratio={_fmt(row['flops_ratio'], '.3f')} "
        f"peak_mem={_fmt_memory(row['peak_memory_bytes'])} compile_s={row['compile_s']:.1f} "
        f"dtype={row['compute_dtype']}"
    )
    if row.get("input") == "files":
        line += (
            f" input=files synthetic_step_ms={row['synthetic_step_ms']:.1f} "
            f"input_slowdown={row['input_slowdown']:.2f}"
        )
    return line


def format_lines(result):
    """The header and one line per row (ratios recomputed over all rows)."""
    add_ratios(result["rows"])
    return "\n".join([format_header(result)] + [format_row(result, row) for row in result["rows"]])


def format_max_batch_row(result, row):
    bound = f">={row['max_batch']} (--max-batch cap)" if row["capped"] else str(row["max_batch"])
    return (
        f"kc2f[{result['backend']}] size={row['size']} method={row['method']} C={row['factor']} "
        f"tokens={row['tokens']} max_batch={bound} trials={','.join(map(str, row['trials']))}"
    )


def format_max_batch(result):
    header = (
        f"# kc2f bench --find-max-batch backend={result['backend']} precision={result['precision']} "
        f"device={result['device'].replace(' ', '_')}"
    )
    return "\n".join([header] + [format_max_batch_row(result, row) for row in result["rows"]])
