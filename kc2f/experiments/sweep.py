"""The paper's sweep: a baseline, then every method × factor list, then the tables and plots.

*From Coarse to Fine* (https://arxiv.org/abs/2401.08415) compares each
compression method and factor list against a full-resolution baseline trained
with the same seed and epoch budget (Table 2: metric, FLOPs and time saved when
the final phase first reaches the baseline's best; Table 3: best metric). Every
run trains all its epochs; both tables are read from the histories.

Layout of `out_dir` (other tools rely on these names):

    baseline/                   factors [1]
    <method>-<factors>/         e.g. maxpool-2-1, fshift-4-1, patch-pi-4-2-1 (the fixed switch)
    <method>-<factors>-<switch>/  an adaptive phase switch, e.g. maxpool-2-1-plateau
    tables.md                   both tables, Markdown (metric in percent)
    table2.csv, table3.csv      the rows, for machines
    tables.json                 `kc2f.experiments.report.build_report`'s dict
    metric_vs_flops.png, metric_vs_time.png, step_time_per_phase.png
"""

import json
import pathlib

from kc2f.experiments import report as report_lib
from kc2f.experiments.plots import make_plots
from kc2f.families import default_family, get_family
from kc2f.options import parse_ints
from kc2f.training.phase_switch import SWITCH_RULES
from kc2f.training.trainer import fit, plan_run

DEFAULT_METHODS = ("maxpool", "fshift", "avgpool", "patch-bl", "patch-pi")
DEFAULT_FACTOR_LISTS = ((2, 1), (4, 1))
THREE_PHASE = (4, 2, 1)
BASELINE = "baseline"


def run_name(method, factors, switch="fixed"):
    """Directory name of a run in a sweep: `baseline`, `<method>-<factors joined by '-'>`
    (the fixed switch) or that plus `-<switch>` (an adaptive one)."""
    factors = [int(f) for f in factors]
    if factors == [1]:
        return BASELINE
    name = f"{method}-{'-'.join(str(f) for f in factors)}"
    return name if switch == "fixed" else f"{name}-{switch}"


def _parse_names(text, known, what):
    """`"a,b"` (or a list) -> `["a", "b"]`, each one of `known`, without repeats; `what` names them."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    names = [m.strip() for m in items if str(m).strip()]
    if not names:
        raise ValueError(f"{what}s must name at least one of {', '.join(known)}. Received: {text!r}")
    for name in names:
        if name not in known:
            raise ValueError(f"Unknown {what} {name!r}; choose from {', '.join(known)}.")
    return list(dict.fromkeys(names))


def parse_switches(text):
    """`"fixed,plateau"` (or a list) -> `["fixed", "plateau"]`, each a phase-switch rule."""
    return _parse_names(text, SWITCH_RULES, "switch")


def parse_methods(text, model=None):
    """`"maxpool,fshift"` (or a list) -> `["maxpool", "fshift"]`, checked against the methods of the family
    `model` (None: the default family)."""
    family = default_family() if model is None else get_family(model)
    return _parse_names(text, family.methods, "method")


def parse_factor_lists(text):
    """`"2,1;4,1;2"` (or a list of lists) -> `[[2, 1], [4, 1], [2]]`: coarse-to-fine schedules, or coarse-only runs."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(";")
    lists = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        factors = list(parse_ints(item, "factors"))
        coarse_only = len(factors) == 1 and factors[0] > 1
        descending = len(factors) >= 2 and factors[-1] == 1 and all(a > b for a, b in zip(factors, factors[1:]))
        if not (coarse_only or descending):
            raise ValueError(
                "Each factor list must be strictly descending and end in 1 (e.g. '2,1;4,1;4,2,1'), or be "
                f"a single factor > 1 (a coarse-only run, e.g. '2'; the baseline runs anyway). Received: {item!r}"
            )
        if factors not in lists:
            lists.append(factors)
    if not lists:
        raise ValueError(f"factor lists must not be empty. Received: {text!r}")
    return lists


def plan(base_config, methods, factor_lists, switches=None):
    """`[(name, config)]` of the sweep: the baseline first, then each method × factor list × switch.

    Every run shares the base config (seed, epochs, data, model); only `method`,
    `factors`, `switch` and, where needed, `phase_epochs` differ, so fixed and
    adaptive schedules are compared on the same data, seeds and total epochs
    (`switches` defaults to the base config's `switch`). An explicit
    `phase_epochs` applies to the factor lists with as many phases; the other
    runs (the baseline included) get its sum as `epochs` and split it by
    `initial_fraction`, so every run has the same epoch budget.
    """
    base = base_config
    phase_epochs = base.phase_epochs
    if phase_epochs is not None:
        total = sum(phase_epochs)
        if base.epochs is not None and base.epochs != total:
            raise ValueError(f"phase_epochs {list(phase_epochs)} must add up to epochs {base.epochs}.")
        base = base.replace(epochs=total)
    switches = parse_switches(switches if switches is not None else [base.switch])
    runs = []

    def add(method, factors, switch):
        config = base.replace(factors=tuple(factors), switch=switch)
        if method is not None:
            config = config.replace(method=method)
        if (phase_epochs is not None and len(phase_epochs) != len(factors)) or switch != "fixed":
            config = config.replace(phase_epochs=None)
        if list(factors) == [1] and config.baseline is not None:
            raise ValueError("A sweep trains its own baseline; remove the 'baseline' option.")
        runs.append((run_name(config.method, factors, switch), config))

    # The baseline keeps the base config's method and the fixed switch: only C=1 is trained,
    # and the config stays the same whatever --methods or --switch a later call names (so it is reused).
    add(None, [1], "fixed")
    for method in methods:
        for factors in factor_lists:
            for switch in switches:
                add(method, factors, switch)
    return runs


def run_sweep(base_config, out_dir, methods=DEFAULT_METHODS, factor_lists=DEFAULT_FACTOR_LISTS,
              log=print, verbose=0, plots=True, switches=None):
    """Trains the baseline and every `method × factor list × switch`, then writes the tables and plots.

    Each run lives in `out_dir/baseline`, `out_dir/<method>-<factors>` (e.g.
    `maxpool-2-1`) or, for an adaptive switch, `out_dir/<method>-<factors>-<switch>`
    (e.g. `maxpool-2-1-plateau`). A finished run is reused and an interrupted one resumed by
    `kc2f.training.trainer.fit`, so re-running the same sweep only trains what
    is missing; a directory holding a run with another config is an error
    (`RunError`) rather than silently mixed into the tables.

    Args:
        base_config: the shared `RunConfig`; `method`/`factors` are overridden.
        out_dir: sweep directory (created).
        methods: compression methods (names or a comma-separated string).
        factor_lists: e.g. `[[2, 1], [4, 1]]` or `"2,1;4,1"`.
        switches: phase-switch rules to compare, e.g. `["fixed", "plateau"]`
            or `"fixed,plateau"` (default: the base config's `switch`).
        log: function taking one line of text.
        verbose: Keras progress-bar verbosity passed to `fit`.
        plots: also write the PNG plots (needs matplotlib).

    Returns:
        dict: out_dir, baseline (run dir), runs (name, run_dir, method, factors,
        summary), report (`build_report`'s dict), files (written paths).
    """
    methods = parse_methods(methods, base_config.model)
    factor_lists = parse_factor_lists(factor_lists)
    out_dir = pathlib.Path(out_dir)
    runs = plan(base_config, methods, factor_lists, switches)
    for _, config in runs:  # every config checked before training
        plan_run(config)
    out_dir.mkdir(parents=True, exist_ok=True)

    results = []
    for index, (name, config) in enumerate(runs, 1):
        run_dir = out_dir / name
        log(f"[sweep {index}/{len(runs)}] {name}: method {config.method}, "
            f"factors {','.join(map(str, config.factors))}, switch {config.switch} -> {run_dir}")
        summary = fit(config, run_dir=run_dir, verbose=verbose, log=log)
        results.append({"name": name, "run_dir": str(run_dir), "method": config.method,
                        "factors": list(config.factors), "switch": config.switch, "summary": summary})

    baseline_dir = out_dir / BASELINE
    others = [r["run_dir"] for r in results if r["name"] != BASELINE]
    tables = report_lib.build_report(others, baseline_dir)
    files = write_tables(tables, out_dir)
    if plots:
        files += make_plots([baseline_dir, *others], out_dir, baseline_dir=baseline_dir)
    log(report_lib.format_text(tables, tables["metric"]))
    log("Wrote " + ", ".join(str(pathlib.Path(f).name) for f in files) + f" to {out_dir}")
    return {"out_dir": str(out_dir), "baseline": str(baseline_dir), "runs": results,
            "report": tables, "files": [str(f) for f in files]}


def write_tables(tables, out_dir):
    """Writes `tables.md`, `table2.csv`, `table3.csv` and `tables.json`; returns the paths."""
    out_dir = pathlib.Path(out_dir)
    paths = {
        "tables.md": report_lib.format_text(tables, tables["metric"]),
        "table2.csv": report_lib.format_csv(tables["table2"]),
        "table3.csv": report_lib.format_csv(tables["table3"]),
        "tables.json": json.dumps(tables, indent=2) + "\n",
    }
    written = []
    for name, text in paths.items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written
