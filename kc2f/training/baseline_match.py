"""Whether a baseline run measures the same thing as a run compared with it.

A coarse-to-fine run is compared with its baseline (`kc2f report --baseline`,
`kc2f fit --baseline`, sweeps): its FLOPs and time saved, and the metric it must
reach, only mean something when both runs were scored on the same data, split,
metric and classes.
"""

from kc2f.training.run_config import selection_split


def describe(config, labels=None, metric=None):
    """What a comparison checks of one run: its `config.json` mapping, class names, metric name."""
    return {
        "dataset": config.get("dataset"),
        "eval split": config.get("eval_split", "test"),
        "selection split": selection_split(config),
        "metric": metric,
        "classes": None if labels is None else sorted(labels),
    }


def baseline_mismatch(run, baseline):
    """`"dataset 'a' vs 'b', ..."` where the two `describe` results differ, or `None`.

    A value unknown on either side (`None`, e.g. an unfinished run's metric) is not compared.
    """
    differences = []
    for key, ours in run.items():
        theirs = baseline.get(key)
        if ours is None or theirs is None or ours == theirs:
            continue
        if key == "classes":
            differences.append(f"classes ({len(ours)} vs {len(theirs)}, "
                               f"{len(set(ours) ^ set(theirs))} not in both)")
        else:
            differences.append(f"{key} {ours!r} vs {theirs!r}")
    return ", ".join(differences) or None
