"""`--val-fraction`: a stratified, seeded hold-out of the training split selects; test is scored at the best epoch."""

import collections
import json

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.data.manifest import Example
from kc2f.data.registry import get_dataset_spec
from kc2f.training.evaluation import evaluate_run
from kc2f.training.preparation import stratified_holdout
from kc2f.training.run_config import RunConfig
from tests.conftest import TINY_MODEL, cli_sets


def _examples(counts):
    return [Example(f"/{label}/{i}.wav", (label,), f"/{label}/{i}.wav")
            for label, n in counts.items() for i in range(n)]


def test_holdout_is_stratified_disjoint_and_deterministic():
    examples = _examples({"a": 50, "b": 20, "c": 7, "d": 2, "e": 1})
    train, held = stratified_holdout(examples, 0.2, seed=3)
    held_counts = collections.Counter(e.labels[0] for e in held)
    # round(0.2·n) per class, at least one where a class has two clips, none from a single-clip class.
    assert held_counts == {"a": 10, "b": 4, "c": 1, "d": 1}
    assert not set(train) & set(held) and sorted(train + held, key=examples.index) == examples
    assert train == [e for e in examples if e in set(train)]  # index order kept
    assert stratified_holdout(examples, 0.2, seed=3) == (train, held)
    other = stratified_holdout(examples, 0.2, seed=4)[1]
    assert other != held and collections.Counter(e.labels[0] for e in other) == held_counts


def test_multilabel_clips_are_stratified_on_their_first_label():
    examples = [Example(f"/{i}.wav", ("x", "y") if i % 2 else ("y",), f"/{i}.wav") for i in range(20)]
    _, held = stratified_holdout(examples, 0.5, seed=0)
    assert collections.Counter(e.labels[0] for e in held) == {"x": 5, "y": 5}


def test_option_is_checked_and_only_speech_commands_and_voxceleb_bring_their_own():
    with pytest.raises(ValueError, match=r"Received: val_fraction=1.0"):
        RunConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match=r"eval_split must then be a test split"):
        RunConfig(val_fraction=0.1, eval_split="valid")
    assert RunConfig().selection_split == "test" and RunConfig(val_fraction=0.1).selection_split == "val"
    own = {name for name in ("speechcommands", "voxceleb", "fsdd", "esc50", "audioset", "synthetic")
           if get_dataset_spec(name).has_validation_split}
    assert own == {"speechcommands", "voxceleb"}


def test_fit_selects_on_validation_and_scores_test_at_the_best_epoch(tmp_path, synthetic_dir):
    run = tmp_path / "run"
    args = ["fit", "--dataset", "synthetic", "--data-dir", str(synthetic_dir), "--epochs", "1", "--batch-size", "8",
            "--val-fraction", "0.25", "--run-dir", str(run), "--quiet", "--json",
            *cli_sets(["max_train_examples=40", "max_eval_examples=16", *TINY_MODEL])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # --json: only the summary on stdout, the logs on stderr
    # 40 clips of 8 classes: round(0.25 · n) of each class's n.
    assert "Validation: 25% of the training split (stratified by class, seed 0): 10 clips, 30 to train on" \
        in result.stderr
    assert (summary["selection_split"], summary["val_clips"], summary["test_split"]) == ("val", 10, "test")
    # One epoch: the best epoch's checkpoint is the delivered model, which `kc2f evaluate` scores on its own.
    (row,) = evaluate_run(run, split="test")
    assert summary["best_epoch"] == 1
    assert summary["test_metric_at_best"] == pytest.approx(row["metric"]) and row["clips"] == 16
    assert summary["test_metrics_at_best"]["accuracy"] == summary["test_metric_at_best"]
    history = json.loads((run / "history.json").read_text())
    # The history's metric is the validation split's: 10 clips, so a multiple of 1/10.
    assert (history[0]["val_metric"] * 10) == pytest.approx(round(history[0]["val_metric"] * 10))
    assert "best val accuracy" in result.stderr and "(test accuracy" in result.stderr
    report = CliRunner().invoke(main, ["report", str(run), "--json"])
    (line,) = json.loads(report.stdout)["runs"]
    assert line["split"] == "val" and line["test_metric_at_best"] == summary["test_metric_at_best"]


def test_default_runs_select_on_test_as_the_paper_and_say_so(tmp_path, synthetic_dir):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "fit", "--dataset", "synthetic", "--data-dir", str(synthetic_dir), "--epochs", "1", "--batch-size", "8",
        "--run-dir", str(run), "--quiet", *cli_sets(["max_train_examples=16", "max_eval_examples=8", *TINY_MODEL])])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selection_split"] == "test" and "test_metric_at_best" not in summary
    assert "best test accuracy" in result.output
    # A budget target from a baseline selected on another split is refused.
    other = CliRunner().invoke(main, [
        "fit", "--dataset", "synthetic", "--data-dir", str(synthetic_dir), "--factors", "2,1", "--epochs", "2",
        "--baseline", str(run), "--val-fraction", "0.25", "--run-dir", str(tmp_path / "c2f")])
    assert other.exit_code != 0 and "selected its epochs on the test split" in other.output
