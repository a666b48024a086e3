"""The paper's Table 6 row: coarse-to-fine SSAST pretraining against full-resolution pretraining.

*From Coarse to Fine* (https://arxiv.org/abs/2401.08415), Table 6: SSAST
pretrained 100K steps at Fshift 4 then 500K at full resolution, against the
baseline SSAST's 800K full-resolution steps; the row gives the pretraining FLOPs and time
saved and the downstream metric of each model after the same fine-tuning,
with its difference Δ to the full-resolution-pretrained one.
"""

import io

from kc2f.experiments.report import build_report, format_text, load_run, run_name
from kc2f.families import get_family


def _best(history):
    return max(row["val_metric"] for row in history)


def is_pretraining_run(run):
    """Whether a loaded run (`report.load_run`) is a self-supervised pretraining run."""
    try:
        return get_family(run["config"].get("model")).pretrains
    except ValueError:  # a family this installation does not have
        return False


def table6(run_dirs, baseline_dir, fine_tuned=(), baseline_fine_tuned=None):
    """Table 6 rows of pretraining runs `run_dirs` against the pretraining run `baseline_dir`.

    Args:
        run_dirs: pretraining runs (e.g. Fshift 4 → 1).
        baseline_dir: the full-resolution pretraining run of the same step budget.
        fine_tuned: the fine-tuned run of each of `run_dirs`, in order (or none).
        baseline_fine_tuned: the fine-tuned run of `baseline_dir` (needed with
            `fine_tuned`).

    Returns:
        dict: `metric` (the fine-tuned runs' metric name), `baseline` and `rows`,
        each row with `name`, `flops_save_pct`, `time_save_pct`, the pretraining
        `steps`, `masked_accuracy` (best of the final phase, on the evaluation split) and, given the
        fine-tuned runs, `downstream` (best metric) and `delta`.

    Raises:
        ValueError: a run that is not a pretraining run, or fine-tuned runs
            that do not pair up.
    """
    baseline = load_run(baseline_dir)
    runs = [load_run(d) for d in run_dirs]
    for run in [baseline, *runs]:
        if not is_pretraining_run(run):
            raise ValueError(f"{run['run_dir']} is not a pretraining run (model "
                             f"{run['config'].get('model')!r}); give runs of kc2f pretrain.")
    fine_tuned = list(fine_tuned)
    if fine_tuned and (len(fine_tuned) != len(runs) or baseline_fine_tuned is None):
        raise ValueError(f"Give one --fine-tuned run per pretraining run ({len(runs)}) and "
                         f"--baseline-fine-tuned. Received: {len(fine_tuned)} fine-tuned run(s), "
                         f"baseline_fine_tuned={baseline_fine_tuned}")
    tuned = [load_run(d) for d in fine_tuned]
    tuned_base = load_run(baseline_fine_tuned) if baseline_fine_tuned is not None else None

    def row(run, tuned_run):
        last, base = run["history"][-1], baseline["history"][-1]
        steps = run["config"].get("steps_per_epoch") or 0
        entry = {
            "name": run_name(run).replace("baseline", "full resolution"),
            "run_dir": run["run_dir"],
            "steps": steps * len(run["history"]),
            "flops_save_pct": 100.0 * (1.0 - last["cumulative_flops"] / base["cumulative_flops"]),
            "time_save_pct": 100.0 * (1.0 - last["cumulative_seconds"] / base["cumulative_seconds"]),
            "train_flops": last["cumulative_flops"],
            "train_seconds": last["cumulative_seconds"],
            # At full resolution only: a coarse grid has fewer masked patches to tell apart (an easier task).
            "masked_accuracy": _best([r for r in run["history"] if r["factor"] == run["history"][-1]["factor"]]),
        }
        if tuned_run is not None:
            entry["fine_tuned_run_dir"] = tuned_run["run_dir"]
            entry["downstream"] = _best(tuned_run["history"])
            entry["delta"] = entry["downstream"] - _best(tuned_base["history"])
        return entry

    metric = (tuned_base or {}).get("summary", {}).get("metric", "metric") if tuned_base else "metric"
    return {
        "metric": metric,
        "baseline": row(baseline, tuned_base),
        "rows": [row(run, tuned[i] if tuned else None) for i, run in enumerate(runs)],
    }


def format_table6(report, scale=100.0):
    """The Table 6 rows as Markdown (metrics in percent)."""
    out = io.StringIO()
    metric = report["metric"]
    out.write("Table 6 (self-supervised pretraining: savings against the baseline pretraining run)\n\n")
    out.write(f"| pretraining | steps | FLOPs save % | time save % | masked-patch acc | fine-tuned {metric} (Δ) |\n"
              "|---|---|---|---|---|---|\n")
    for row in [report["baseline"], *report["rows"]]:
        tuned = (f"{scale * row['downstream']:.2f} ({scale * row['delta']:+.2f})" if "downstream" in row else "-")
        out.write(f"| {row['name']} | {row['steps']} | {row['flops_save_pct']:.2f} | {row['time_save_pct']:.2f} | "
                  f"{scale * row['masked_accuracy']:.2f} | {tuned} |\n")
    return out.getvalue()


def build_any_report(run_dirs, baseline_dir, fine_tuned=(), baseline_fine_tuned=None):
    """`build_report`'s tables, or, when `baseline_dir` is a pretraining run, `{"table6": ...}`.

    See `table6` for the pretraining rows.
    """
    if is_pretraining_run(load_run(baseline_dir)):
        return {"table6": table6(run_dirs, baseline_dir, fine_tuned, baseline_fine_tuned)}
    if fine_tuned or baseline_fine_tuned:
        raise ValueError("--fine-tuned and --baseline-fine-tuned are for pretraining runs (kc2f pretrain); "
                         f"--baseline {baseline_dir} is a supervised run.")
    return build_report(run_dirs, baseline_dir)


def format_any_text(tables):
    """`format_text`, or the Table 6 text for `build_any_report`'s pretraining tables."""
    if "table6" in tables:
        return format_table6(tables["table6"])
    return format_text(tables, tables["metric"])
