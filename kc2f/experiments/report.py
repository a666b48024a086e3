"""The paper's Table 2 (budget) and Table 3 (convergence) rows from run histories, or one run's summary."""

import csv
import io
import pathlib

from kc2f.training.baseline_match import baseline_mismatch, describe
from kc2f.training.run_config import selection_split
from kc2f.training.run_directory import RunDirectory, write_json_atomic, write_text_atomic

REPORT_FILES = ("report.json", "report.csv", "report.md")


def load_run(run_dir):
    """Reads a run's history, config and summary (empty while unfinished) into a dict."""
    run = RunDirectory(run_dir)
    history = run.read_history()
    config = run.read_config() if run.has(run.CONFIG) else {}
    summary = run.read_summary() or {}
    labels = run.read_labels() if run.has(run.LABELS) else None
    return {"run_dir": str(run), "history": history, "config": config, "summary": summary,
            "labels": labels, "finished": run.is_finished()}


def _description(run):
    return describe(run["config"], run.get("labels"), run["summary"].get("metric"))


def run_name(run):
    config = run["config"]
    factors = config.get("factors") or sorted({row["factor"] for row in run["history"]}, reverse=True)
    if list(factors) == [1]:
        name = "baseline"
    elif len(factors) == 1:
        # The paper's Table 1 "Pool2" beside "Pool21": trained and evaluated at C only.
        name = f"{config.get('method', '?')} {factors[0]} (coarse only)"
    else:
        name = f"{config.get('method', '?')} {'→'.join(str(f) for f in factors)}"
        if config.get("switch", "fixed") != "fixed":
            name += f" ({config['switch']})"
    if not run.get("finished", True):
        name += f" (unfinished, {len(run['history'])} epochs)"
    return name


def _factors(run):
    factors = run["config"].get("factors")
    return list(factors) if factors else sorted({row["factor"] for row in run["history"]}, reverse=True)


def phase_ends(history):
    """The last epoch (1-based) of each phase (each run of one factor) in a run's history, e.g. `[8, 30]`."""
    return [row["epoch"] for row, after in zip(history, [*history[1:], None])
            if after is None or after["factor"] != row["factor"]]


def _best(history):
    # The first epoch with the best metric: the baseline's cost is paid up to there.
    best = max(row["val_metric"] for row in history)
    return next(row for row in history if row["val_metric"] == best)


def table2_row(run, baseline):
    """Budget-mode row: metric when the run first reaches the baseline's best.

    *From Coarse to Fine* (https://arxiv.org/abs/2401.08415), Table 2: the final
    phase stops at the first epoch whose validation metric reaches the
    baseline's best; FLOPs and wall-time saved are `1 - run / baseline`, with
    the baseline's cumulative cost counted up to its best epoch. Only epochs of
    the final phase count (C = 1, or C of a coarse-only run). A run that never reaches the baseline gets
    `reached = False` and its savings at its best epoch.

    Time saved, three ways: `time_save_pct`, the headline, is the wall time a
    user waits for, training, compilation, phase switches and every epoch's
    evaluation (`time_counts` says `"train+eval"`; runs recorded without
    `eval_seconds` fall back to the training part, `"train"`);
    `train_time_save_pct` counts the time column alone (`cumulative_seconds`);
    `steady_time_save_pct` takes compilation out of that.

    Returns:
        dict: name, metric, delta, flops_save_pct, time_save_pct, time_counts,
        train_time_save_pct, reached, epoch,
        baseline_metric, baseline_epoch, phase_ends (the epoch each phase
        ended at, `phase_ends`; an adaptive switch decides them), and
        `steady_time_save_pct`: the time saved with each run's compilation
        (`compile_seconds` of its rows) taken out of both sides, `None` for
        runs recorded before kc2f timed compilation.
    """
    base = _best(baseline["history"])
    final_factor = min(row["factor"] for row in run["history"])
    final = [row for row in run["history"] if row["factor"] == final_factor]
    hit = next((row for row in final if row["val_metric"] >= base["val_metric"]), None)
    row = hit if hit is not None else _best(run["history"])
    train_save = _save(row["cumulative_seconds"], base["cumulative_seconds"])
    wall_save = _save(_wall_seconds(run["history"], row["epoch"]), _wall_seconds(baseline["history"], base["epoch"]))
    return {
        "name": run_name(run),
        "run_dir": run["run_dir"],
        "metric": row["val_metric"],
        "delta": row["val_metric"] - base["val_metric"],
        "flops_save_pct": 100.0 * (1.0 - row["cumulative_flops"] / base["cumulative_flops"]),
        # The headline: wall time with evaluation; runs recorded without it fall back to training.
        "time_save_pct": train_save if wall_save is None else wall_save,
        "time_counts": "train" if wall_save is None else "train+eval",
        "train_time_save_pct": train_save,
        "reached": hit is not None,
        "epoch": row["epoch"],
        "baseline_metric": base["val_metric"],
        "baseline_epoch": base["epoch"],
        "phase_ends": "/".join(str(e) for e in phase_ends(run["history"])),
        "steady_time_save_pct": _steady_time_save(run["history"], row["epoch"], baseline["history"], base["epoch"]),
    }


def _wall_seconds(history, epoch):
    """What a user waits for up to `epoch`: the time column (training, compilation, phase switches)
    plus every epoch's evaluation; `None` for runs recorded without `eval_seconds`."""
    rows = _up_to(history, epoch)
    if not rows or any(row.get("eval_seconds") is None for row in rows):
        return None
    return rows[-1]["cumulative_seconds"] + sum(row["eval_seconds"] for row in rows)


def _up_to(history, epoch):
    return [row for row in history if row["epoch"] <= epoch]


def _save(run_cost, base_cost):
    """`100 · (1 − run / base)`, or `None` when either is unknown (or the base is 0)."""
    return None if run_cost is None or not base_cost else 100.0 * (1.0 - run_cost / base_cost)


def _steady_seconds(history, epoch):
    """Cumulative seconds up to `epoch` less the compilation in them; `None` without the timer's rows."""
    rows = _up_to(history, epoch)
    if any(row.get("compile_seconds") is None for row in rows):
        return None
    return rows[-1]["cumulative_seconds"] - sum(row["compile_seconds"] for row in rows)


def _steady_time_save(history, epoch, base_history, base_epoch):
    run, base = _steady_seconds(history, epoch), _steady_seconds(base_history, base_epoch)
    if run is None or not base:
        return None
    return 100.0 * (1.0 - run / base)


def table3_row(run, baseline):
    """Convergence-mode row: best metric over all epochs and its difference to the baseline's."""
    best, base = _best(run["history"]), _best(baseline["history"])
    return {
        "name": run_name(run),
        "run_dir": run["run_dir"],
        "best_metric": best["val_metric"],
        "delta": best["val_metric"] - base["val_metric"],
        "epoch": best["epoch"],
        "total_flops": run["history"][-1]["cumulative_flops"],
        "total_seconds": run["history"][-1]["cumulative_seconds"],
        "phase_ends": "/".join(str(e) for e in phase_ends(run["history"])),
    }


def build_report(run_dirs, baseline_dir):
    """Table 2 and Table 3 rows of `run_dirs` against `baseline_dir`."""
    baseline = load_run(baseline_dir)
    if _factors(baseline) != [1]:
        raise ValueError(
            f"--baseline {baseline_dir} is not a baseline run (factors {_factors(baseline)}); "
            "give a run trained with --factors 1."
        )
    runs = [load_run(d) for d in run_dirs]
    for run in runs:
        mismatch = baseline_mismatch(_description(run), _description(baseline))
        if mismatch:
            raise ValueError(f"--baseline {baseline_dir} does not measure what {run['run_dir']} measures "
                             f"({mismatch}): its savings would mean nothing. Give a baseline trained on "
                             "the same data, splits and classes.")
    splits = {selection_split(run["config"]) for run in [baseline, *runs]}
    return {
        "metric": baseline["summary"].get("metric", "metric"),
        "split": "/".join(sorted(splits)),
        "baseline": table3_row(baseline, baseline) | {"name": run_name(baseline)},
        "table2": [table2_row(run, baseline) for run in runs],
        "table3": [table3_row(run, baseline) for run in runs],
    }


def run_summary_row(run):
    """One run's headline numbers: metric and best epoch on its selection split, cost, test metric at best."""
    history, summary = run["history"], run["summary"]
    best = _best(history)
    return {
        "name": run_name(run),
        "run_dir": run["run_dir"],
        "split": selection_split(run["config"]),
        "best_metric": best["val_metric"],
        "epoch": best["epoch"],
        "epochs": len(history),
        "final_metric": history[-1]["val_metric"],
        # Only a run with a validation split measures the test split separately, at its best epoch.
        "test_metric_at_best": summary.get("test_metric_at_best"),
        "total_flops": history[-1]["cumulative_flops"],
        "total_seconds": history[-1]["cumulative_seconds"],
        "phase_ends": "/".join(str(e) for e in phase_ends(history)),
    }


def build_run_summaries(run_dirs):
    """`kc2f report RUN...` without a baseline: one summary row per run."""
    runs = [load_run(d) for d in run_dirs]
    metrics = {run["summary"].get("metric") for run in runs} - {None}
    return {"metric": "/".join(sorted(metrics)) or "metric", "runs": [run_summary_row(run) for run in runs]}


def format_summaries(report, scale=100.0):
    """The single-run summaries as a Markdown table; each metric says its split (val or test)."""
    metric = report["metric"]
    out = io.StringIO()
    out.write(f"| run | best {metric} | epoch | final | test {metric} at best | TFLOP | train s | phase ends |\n"
              "|---|---|---|---|---|---|---|---|\n")
    for row in report["runs"]:
        test = row["test_metric_at_best"]
        out.write(
            f"| {row['name']} | {scale * row['best_metric']:.2f} ({row['split']}) | {row['epoch']}/{row['epochs']} | "
            f"{scale * row['final_metric']:.2f} ({row['split']}) | "
            f"{'n/a' if test is None else f'{scale * test:.2f}'} | {row['total_flops'] / 1e12:.3f} | "
            f"{row['total_seconds']:.1f} | {row['phase_ends']} |\n"
        )
    return out.getvalue()


def write_report(report, out_dir, text):
    """Writes `report.json`, `report.csv` and `report.md` (`text`) into `out_dir`, each atomically.

    The CSV has one row per table row; with a baseline a `table` column says
    which table (2 or 3) it belongs to. Returns the paths written.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "runs" in report:
        rows = report["runs"]
    elif "table6" in report:
        rows = [{"table": 6, **row} for row in (report["table6"]["baseline"], *report["table6"]["rows"])]
    else:
        rows = [{"table": 2, **row} for row in report["table2"]] + [{"table": 3, **row} for row in report["table3"]]
    paths = [out_dir / name for name in REPORT_FILES]
    write_json_atomic(paths[0], report)
    write_text_atomic(paths[1], format_csv(rows))
    write_text_atomic(paths[2], text)
    return paths


def format_text(report, metric_name="metric", scale=100.0):
    """The two tables as Markdown, metric in percent (as the paper prints them).

    The metric is labelled with the split it is on (`val` or `test`) when the
    report knows it.
    """
    out = io.StringIO()
    if report.get("split"):
        metric_name = f"{report['split']} {metric_name}"
    base = report["baseline"]
    note = "" if base["name"] == "baseline" else f" [{base['name']}]"
    out.write(f"Baseline{note}: {metric_name} {scale * base['best_metric']:.2f} at epoch {base['epoch']}\n\n")
    out.write("Table 2 (budget: stop at the baseline's best)\n\n")
    out.write(f"| run | {metric_name} (Δ) | FLOPs save % | time save % | steady time save % | epoch | phase ends |\n"
              "|---|---|---|---|---|---|---|\n")
    counts = set()
    for row in report["table2"]:
        note = "" if row["reached"] else " (not reached)"
        steady = row.get("steady_time_save_pct")
        counts.add(row.get("time_counts", "train"))
        out.write(
            f"| {row['name']} | {scale * row['metric']:.2f} ({scale * row['delta']:+.2f}){note} | "
            f"{row['flops_save_pct']:.2f} | {row['time_save_pct']:.2f} | "
            f"{'n/a' if steady is None else f'{steady:.2f}'} | {row['epoch']} | {row['phase_ends']} |\n"
        )
    out.write("\ntime save %: wall time to that epoch, " + (
        "training, compilation and evaluation" if counts == {"train+eval"} else
        "training and compilation (evaluation not recorded for every run)")
        + "; steady: training less compilation (README, \"What the time columns count\").\n")
    out.write("\nTable 3 (convergence: best over all epochs)\n\n")
    out.write(f"| run | best {metric_name} | Δ | epoch | phase ends |\n|---|---|---|---|---|\n")
    for row in report["table3"]:
        out.write(
            f"| {row['name']} | {scale * row['best_metric']:.2f} | {scale * row['delta']:+.2f} | {row['epoch']} | "
            f"{row['phase_ends']} |\n"
        )
    return out.getvalue()


def format_csv(rows):
    """CSV of a list of row dicts."""
    out = io.StringIO()
    if rows:
        fields = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(out, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
