"""Plots of run histories: metric vs training FLOPs and time, step time per phase.

Uses matplotlib's object-oriented API on the Agg canvas (no pyplot, no display,
no global backend switch), reading only each run's `history.json` (and
`config.json` / `summary.json` for names and the metric).
"""

import collections
import pathlib

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kc2f.experiments.report import load_run, run_name

PLOTS = ("metric_vs_flops.png", "metric_vs_time.png", "step_time_per_phase.png")


def _figure(width=7.0, height=4.5):
    figure = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _labels(runs):
    names = [run_name(run) for run in runs]
    counts = collections.Counter(names)
    # Two runs with the same method and factors (e.g. two seeds): add the directory name.
    return [f"{name} ({pathlib.Path(run['run_dir']).name})" if counts[name] > 1 else name
            for name, run in zip(names, runs)]


def _is_baseline(run):
    return run_name(run).startswith("baseline")


def _metric_plot(runs, labels, baseline, metric, x_key, x_label, x_scale, path):
    figure = _figure()
    axes = figure.add_subplot()
    switch_labelled = False
    for run, label in zip(runs, labels):
        history = run["history"]
        xs = [row[x_key] / x_scale for row in history]
        ys = [100.0 * row["val_metric"] for row in history]
        style = dict(color="black", linestyle="--") if _is_baseline(run) else {}
        (line,) = axes.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=label, **style)
        # Mark the first epoch of each new phase: where the model switched to a finer input.
        switches = [i for i in range(1, len(history)) if history[i]["phase"] != history[i - 1]["phase"]]
        if switches:
            axes.scatter([xs[i] for i in switches], [ys[i] for i in switches], marker="D", s=60,
                         facecolors="none", edgecolors=line.get_color(), linewidths=1.8, zorder=3,
                         label=None if switch_labelled else "phase switch")
            switch_labelled = True
    if baseline is not None:
        best = 100.0 * max(row["val_metric"] for row in baseline["history"])
        axes.axhline(best, color="grey", linestyle=":", linewidth=1.2, label=f"baseline best {best:.2f}")
    axes.set_xlabel(x_label)
    axes.set_ylabel(f"validation {metric} (%)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    figure.savefig(path)
    return path


def _step_time_plot(runs, labels, path):
    figure = _figure(width=max(7.0, 1.1 * len(runs) + 3.0))
    axes = figure.add_subplot()
    num_phases = max(max(row["phase"] for row in run["history"]) for run in runs)
    width = 0.8 / num_phases
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for phase in range(1, num_phases + 1):
        xs, heights, texts = [], [], []
        for index, run in enumerate(runs):
            rows = [row for row in run["history"] if row["phase"] == phase]
            if not rows:
                continue
            # Mean wall-clock training time per sample over the phase's epochs, in ms.
            ms = [1000.0 * row["train_seconds"] / max(row["samples"], 1) for row in rows]
            xs.append(index + (phase - 1 - (num_phases - 1) / 2) * width)
            heights.append(sum(ms) / len(ms))
            texts.append(f"C={rows[0]['factor']}")
        bars = axes.bar(xs, heights, width=width * 0.95, color=colors[(phase - 1) % len(colors)],
                        label=f"phase {phase}")
        for bar, text in zip(bars, texts):
            axes.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize="x-small")
    axes.set_xticks(range(len(runs)))
    axes.set_xticklabels(labels, rotation=30, ha="right", fontsize="small")
    axes.set_ylabel("mean training time per sample (ms)")
    axes.set_title("Training step time per phase")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    figure.savefig(path)
    return path


def make_plots(run_dirs, out_dir, baseline_dir=None):
    """Writes the three plots of `run_dirs` into `out_dir`; returns their paths.

    * `metric_vs_flops.png`: validation metric vs cumulative training FLOPs, one
      line per run, phase switches marked (hollow diamonds at the first epoch of
      each new phase), the baseline's best metric as a horizontal line;
    * `metric_vs_time.png`: the same vs cumulative wall-clock training seconds;
    * `step_time_per_phase.png`: bars of the mean training time per sample of
      each phase of each run (the first epoch of a phase includes compilation).

    Args:
        run_dirs: run directories (with `history.json`); the baseline may be among them.
        out_dir: directory to write to (created).
        baseline_dir: the baseline run, drawn as a dashed line and its best as a
            horizontal line (default: a run named baseline among `run_dirs`, if any).

    Returns:
        list of `pathlib.Path`.
    """
    run_dirs = [pathlib.Path(d) for d in run_dirs]
    baseline = load_run(baseline_dir) if baseline_dir is not None else None
    runs = [load_run(d) for d in run_dirs]
    if baseline is not None and all(d.resolve() != pathlib.Path(baseline_dir).resolve() for d in run_dirs):
        runs.insert(0, baseline)
    if not runs:
        raise ValueError("make_plots needs at least one run directory.")
    if baseline is None:
        baseline = next((run for run in runs if _is_baseline(run)), None)
    labels = _labels(runs)
    metric = ((baseline or runs[0])["summary"].get("metric")
              or runs[0]["summary"].get("metric") or "metric")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flops = max(row["cumulative_flops"] for run in runs for row in run["history"])
    exponent = min(18, (len(str(int(max(flops, 1)))) - 1) // 3 * 3)
    unit = {0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}[exponent]
    return [
        _metric_plot(runs, labels, baseline, metric, "cumulative_flops",
                     f"cumulative training FLOPs ({unit}FLOP)" if unit else "cumulative training FLOPs",
                     10.0 ** exponent, out_dir / PLOTS[0]),
        _metric_plot(runs, labels, baseline, metric, "cumulative_seconds",
                     "cumulative wall-clock training time (s)", 1.0, out_dir / PLOTS[1]),
        _step_time_plot(runs, labels, out_dir / PLOTS[2]),
    ]
