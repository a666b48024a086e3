"""K-fold cross-validation: one run per held-out fold, then the mean ± std of the per-fold metric.

AST (https://arxiv.org/abs/2104.01778) reports ESC-50 as 5-fold
cross-validation accuracy: one model per fold, trained on the other four and
tested on the held-out one ([AST-code] `egs/esc50/run_esc.sh`), the per-fold
accuracies averaged (`egs/esc50/get_esc_result.py`). kc2f's headline is the
metric of the model each fold's run delivers (`model.keras`: the last epoch's,
or the weight average of `--average-checkpoints`), chosen without looking at
the held-out fold. `get_esc_result.py` instead takes every fold at the one
epoch whose accuracy, averaged over the folds, is highest; that figure is
written beside it (`ast_epoch_selection`), as it selects on the test folds.

Layout of `out_dir`:

    fold1/ ... fold5/     one run directory per held-out fold
    cv.json               `summarize`'s dict
    cv.md                 the per-fold table and the mean ± std, Markdown (percent)
"""

import pathlib

import numpy as np

from kc2f.data import registry
from kc2f.training.run_directory import RunDirectory, write_json_atomic
from kc2f.training.trainer import fit, plan_run

FOLDS = (1, 2, 3, 4, 5)
JSON_FILE = "cv.json"
MARKDOWN_FILE = "cv.md"


def fold_dir(out_dir, fold):
    """The run directory of held-out fold `fold`: `out_dir/fold<k>`."""
    return pathlib.Path(out_dir) / f"fold{fold}"


def delivered_metric(summary):
    """The metric of the model a run delivers: the weight average's if it has one, else the last epoch's."""
    return summary.get("averaged_metric", summary["final_metric"])


def run_cross_validation(base_config, out_dir, folds=FOLDS, log=print, verbose=0):
    """Trains one run per held-out fold, then writes and returns the cross-validation summary.

    Each fold's run is `kc2f.training.trainer.fit` of `base_config` with
    `fold` set, in `out_dir/fold<k>`: a finished fold is reused and an
    interrupted one resumed, so re-running the same call trains only what is
    missing; a fold directory holding a run with other options is an error
    (`RunError`), never mixed into the mean.

    Args:
        base_config: the shared `RunConfig` (a dataset with folds: ESC-50);
            `fold` must be unset.
        out_dir: the cross-validation directory (created).
        folds: held-out folds to run (default all five).
        log: function taking one line of text.
        verbose: Keras progress-bar verbosity passed to `fit`.

    Returns:
        `summarize`'s dict, also written to `cv.json` and `cv.md`.
    """
    spec = registry.get_dataset_spec(base_config.dataset)
    if spec.layout != "esc50":
        raise ValueError(f"kc2f cv runs ESC-50's folds; dataset '{spec.name}' has none. "
                         f"Received: dataset={base_config.dataset!r}")
    if base_config.fold is not None:
        raise ValueError(f"kc2f cv sets the held-out fold of each run itself; remove the 'fold' option. "
                         f"Received: fold={base_config.fold}")
    folds = [int(fold) for fold in folds]
    if not folds or len(set(folds)) != len(folds) or not set(folds) <= set(FOLDS):
        raise ValueError(f"folds must be distinct values of {list(FOLDS)}. Received: folds={folds}")
    configs = [base_config.replace(fold=fold) for fold in folds]
    for config in configs:  # every option checked before training
        plan_run(config)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, (fold, config) in enumerate(zip(folds, configs), 1):
        log(f"[cv {index}/{len(folds)}] held-out fold {fold} -> {fold_dir(out_dir, fold)}")
        fit(config, run_dir=fold_dir(out_dir, fold), verbose=verbose, log=log)
    result = summarize(out_dir, folds)
    write_json_atomic(out_dir / JSON_FILE, result)
    (out_dir / MARKDOWN_FILE).write_text(format_markdown(result))
    log(format_markdown(result))
    return result


def summarize(out_dir, folds=FOLDS):
    """Mean and standard deviation over the folds' finished runs.

    Args:
        out_dir: the cross-validation directory.
        folds: the folds to include (each `out_dir/fold<k>` must be finished).

    Returns:
        dict: `metric`; `folds` (per fold: `fold`, `run_dir`, `metric`, the
        delivered model's, and `model`, which one that is); `mean` and `std`
        of those metrics (NumPy, population std `ddof=0`); and
        `ast_epoch_selection` (`epoch`, `per_fold`, `mean`, `std`): every fold
        at the epoch with the highest fold-averaged metric, as [AST-code]
        `egs/esc50/get_esc_result.py` reports ESC-50.
    """
    rows, histories, metric = [], [], None
    for fold in folds:
        run = RunDirectory(fold_dir(out_dir, fold))
        summary = run.read_summary()
        if summary is None:
            raise ValueError(f"{run} has not finished (no {run.SUMMARY}); run the same kc2f cv command again.")
        metric = summary["metric"]
        rows.append({"fold": fold, "run_dir": str(run), "metric": delivered_metric(summary),
                     "model": summary.get("delivered_model", "last epoch")})
        histories.append([row["val_metric"] for row in run.read_history()])
    values = np.array([row["metric"] for row in rows], np.float64)
    epochs = min(len(history) for history in histories)
    curves = np.array([history[:epochs] for history in histories], np.float64)
    best = int(np.argmax(curves.mean(axis=0)))
    return {
        "metric": metric,
        "folds": rows,
        "mean": float(values.mean()),
        "std": float(values.std()),
        "ast_epoch_selection": {
            "epoch": best + 1,
            "per_fold": [float(v) for v in curves[:, best]],
            "mean": float(curves[:, best].mean()),
            "std": float(curves[:, best].std()),
        },
    }


def format_markdown(result):
    """The per-fold table and the mean ± std (percent), as Markdown."""
    metric = result["metric"]
    selection = result["ast_epoch_selection"]
    lines = [f"| fold | {metric} (%) | model |", "|---|---|---|"]
    lines += [f"| {row['fold']} | {100 * row['metric']:.2f} | {row['model']} |" for row in result["folds"]]
    lines += [
        "",
        (f"{metric}: {100 * result['mean']:.2f} ± {100 * result['std']:.2f} % over {len(result['folds'])} folds "
         "(mean ± population std of the delivered models)."),
        (f"AST's epoch selection (epoch {selection['epoch']}, best fold-averaged {metric}; selects on the "
         f"held-out folds): {100 * selection['mean']:.2f} ± {100 * selection['std']:.2f} %."),
    ]
    return "\n".join(lines) + "\n"

