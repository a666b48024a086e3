"""A baseline from other data, splits, metric or classes is refused, naming both sides,
by `kc2f report`, `kc2f fit --baseline` and the function they share."""

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.training.baseline_match import baseline_mismatch, describe
from kc2f.training.run_config import RunConfig
from kc2f.training.run_error import RunError
from kc2f.training.trainer import fit
from tests.conftest import write_run

HISTORY = [dict(epoch=1, factor=1, val_metric=0.5, cumulative_flops=100.0, cumulative_seconds=1.0)]
C2F = [dict(epoch=1, factor=2, val_metric=0.4, cumulative_flops=50.0, cumulative_seconds=0.5),
       dict(epoch=2, factor=1, val_metric=0.6, cumulative_flops=150.0, cumulative_seconds=1.5)]


def _run(path, factors, dataset="fsdd", labels=("a", "b"), metric="accuracy", history=None, **config):
    return write_run(path, config={"factors": factors, "method": "maxpool", "dataset": dataset, **config},
                     history=history or (HISTORY if factors == [1] else C2F),
                     summary={"metric": metric}, labels=list(labels))


def test_the_comparison_names_every_difference_and_ignores_what_is_unknown():
    ours = describe({"dataset": "fsdd", "eval_split": "test"}, ["a", "b"], "accuracy")
    assert baseline_mismatch(ours, ours) is None
    theirs = describe({"dataset": "esc50", "eval_split": "test", "val_fraction": 0.1}, ["a", "c"], "mAP")
    assert baseline_mismatch(ours, theirs) == (
        "dataset 'fsdd' vs 'esc50', selection split 'test' vs 'val', metric 'accuracy' vs 'mAP', "
        "classes (2 vs 2, 2 not in both)")
    assert baseline_mismatch(describe({"dataset": "fsdd"}), describe({"dataset": "fsdd"}, ["x"], "mAP")) is None


@pytest.mark.parametrize("change, named", [
    ({"dataset": "esc50"}, "dataset 'fsdd' vs 'esc50'"),
    ({"labels": ("a", "b", "c")}, "classes (2 vs 3"),
    ({"metric": "mAP"}, "metric 'accuracy' vs 'mAP'"),
    ({"eval_split": "valid"}, "eval split 'test' vs 'valid'"),
])
def test_report_refuses_a_baseline_that_measures_something_else(tmp_path, change, named):
    run = _run(tmp_path / "c2f", [2, 1])
    baseline = _run(tmp_path / "base", [1], **change)
    result = CliRunner().invoke(main, ["report", str(run), "--baseline", str(baseline)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert named in result.output and str(baseline) in result.output and str(run) in result.output
    same = _run(tmp_path / "same", [1])
    assert CliRunner().invoke(main, ["report", str(run), "--baseline", str(same)]).exit_code == 0


def test_fit_refuses_a_baseline_of_another_dataset_before_writing(tmp_path):
    baseline = _run(tmp_path / "base", [1], dataset="esc50")
    config = RunConfig(dataset="synthetic", data_dir=str(tmp_path / "data"), factors=(2, 1), epochs=2,
                       baseline=str(baseline))
    with pytest.raises(RunError, match="dataset 'synthetic' vs 'esc50'"):
        fit(config, run_dir=tmp_path / "run", verbose=0, log=lambda line: None)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()
