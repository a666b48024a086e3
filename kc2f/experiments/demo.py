"""`kc2f demo`: the paper's claim shown on the embedded data, in minutes on a CPU.

*From Coarse to Fine* (https://arxiv.org/abs/2401.08415) trains an AST first on
time-compressed input, then at full resolution, and reports the accuracy and the
training FLOPs and time saved against a full-resolution baseline (its Tables 2
and 3). The demo runs that comparison on the embedded synthetic set
(`kc2f.data.synthetic`, generated on first use, nothing downloaded): a baseline
and a maxpool 2→1 run with the same seed, epochs and recipe, through
`kc2f.experiments.sweep.run_sweep`, which also writes the tables and the plot
of accuracy against training FLOPs.

The recipe (`DEMO_OPTIONS`, also `configs/synthetic.yaml`) is the reference
step-decay schedule made short: the rate decays ×0.7 every epoch from each
phase's third, so that both runs settle within the 14 epochs; the
coarse-to-fine run's phases get the paper's split (25%, rounded: 4 + 10
epochs). The patches are 16 mel bins by 8 frames (64 tokens at full
resolution, 32 at C = 2) and the batch 32, so that the transformer, which the
method compresses, is most of a step: the C = 2 step costs about 0.67× the
C = 1 step, against 0.75-0.79× with 16 × 16 patches and batch 16 (the recipe
until 2026-12-07; docs/method.md "The demo's recipe"). The test split is 200
clips a class (1600), four times the synthetic set's default, so that the
baseline's best, a maximum over its epochs, is an accuracy measured rather than
a noisy one-epoch peak: the budget point (Table 2) hangs on it.
"""

import pathlib

from kc2f.experiments.plots import PLOTS
from kc2f.experiments.sweep import run_sweep
from kc2f.training.run_config import RunConfig

DEMO_METHOD = "maxpool"
DEMO_FACTORS = (2, 1)
DEMO_OPTIONS = {
    "dataset": "synthetic",
    "clips_per_class": 200,
    "test_clips_per_class": 200,
    "hidden_dim": 128,
    "depth": 2,
    "num_heads": 4,
    "patch_size": [16, 8],
    "epochs": 14,
    "batch_size": 32,
    "lr": 1e-3,
    "warmup_steps": 100,
    "decay_start_epoch": 2,
    "decay_every": 1,
    "decay_rate": 0.7,
    "cache": True,
}


def demo_config(sets=(), **overrides):
    """The demo's `RunConfig`: `DEMO_OPTIONS`, then `sets` (`--set key=value` texts), then
    `overrides` (any `RunConfig` or model option; `None` values are left out)."""
    return RunConfig.from_sources(None, sets, defaults=DEMO_OPTIONS, **overrides)


def run_demo(out_dir="runs/demo", *, log=print, verbose=0, sets=(), **overrides):
    """Trains the demo's baseline and maxpool 2→1 run; re-running resumes or reuses them.

    Args:
        out_dir: the sweep directory: `baseline/`, `maxpool-2-1/`, `tables.md`,
            `table2.csv`, `table3.csv`, `tables.json` and the plots.
        log: function taking one line of text (progress, then the tables).
        verbose: Keras progress-bar verbosity.
        sets: `--set key=value` texts replacing the demo's options (e.g.
            `("decay_rate=0.85", "hidden_dim=256")`; docs/method.md "The demo's
            recipe" lists recipes tried this way).
        **overrides: `RunConfig` options replacing the demo's (e.g. `data_dir`, `seed`).

    Returns:
        `run_sweep`'s dict, with `plot`: the path of `metric_vs_flops.png`.
    """
    result = run_sweep(demo_config(sets, **overrides), out_dir, [DEMO_METHOD], [list(DEMO_FACTORS)],
                       log=log, verbose=verbose)
    result["plot"] = str(pathlib.Path(out_dir) / PLOTS[0])
    return result
