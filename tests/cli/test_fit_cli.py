"""`kc2f fit` end to end on the embedded dataset: run directory, TensorBoard scalars, report."""

import json

import keras

from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from kc2f.cli import main
from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.families.ast.ast_flops import training_flops_per_sample

TINY = ["--set", "hidden_dim=16", "--set", "depth=1", "--set", "num_heads=1",
        "--set", "max_train_examples=40", "--set", "max_eval_examples=20", "--batch-size", "8", "--quiet"]


def test_fit_on_embedded_default_writes_a_complete_run(tmp_path):
    data = tmp_path / "synthetic"
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["fit", "--data-dir", str(data), "--factors", "2,1", "--phase-epochs", "1,1",
         "--run-dir", str(run_dir), *TINY],
    )
    assert result.exit_code == 0, result.output
    assert "Phase 2: C=2 -> C=1" in result.output
    for name in ("config.json", "labels.json", "history.csv", "history.json", "state.json",
                 "summary.json", "model.keras"):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "synthetic" and config["factors"] == [2, 1]
    history = json.loads((run_dir / "history.json").read_text())
    model_config = keras.saving.load_model(run_dir / "model.keras").get_config()
    assert [(r["phase"], r["factor"], r["tokens"]) for r in history] == [(1, 2, 16), (2, 1, 32)]
    assert history[1]["cumulative_flops"] > history[0]["cumulative_flops"] > 0
    # Each epoch is charged the closed-form cost of its phase's model.
    for row in history:
        model = AudioSpectrogramTransformer.from_config({**model_config, "factor": row["factor"]})
        assert row["epoch_flops"] == training_flops_per_sample(model) * row["samples"] == \
            training_flops_per_sample(model) * 40

    # The event files are the run directory's own: `tensorboard --logdir runs/` shows the run as `run`.
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    # No --val-fraction: the test split selects (the paper's protocol), and the tags say so.
    for tag in ("train/loss", "train/accuracy", "train/lr", "test/accuracy", "test/loss", "phase", "factor",
                "tokens", "cumulative_train_flops", "cumulative_train_seconds", "step/loss", "step/lr",
                "step/accuracy"):
        assert tag in tags, tag
    # history.csv names its columns after that split too (history.json keeps the keys reports read).
    header = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert {"test_metric", "test_loss", "test_accuracy"} <= set(header)
    assert not [name for name in header if name.startswith("val_")]
    assert [e.value for e in events.Scalars("factor")] == [2.0, 1.0]
    assert [e.step for e in events.Scalars("phase")] == [1, 2]

    evaluated = CliRunner().invoke(main, ["evaluate", str(run_dir), "--factors", "1,2", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    rows = json.loads(evaluated.output)
    assert [(r["factor"], r["tokens"]) for r in rows] == [(1, 32), (2, 16)]
    assert abs(rows[0]["metric"] - history[-1]["val_metric"]) < 1e-6

    # The run's model is an inference model: it loads without compile information.
    clip = next((data / "test").rglob("*.wav"))
    predicted = CliRunner().invoke(main, ["predict", str(run_dir), str(clip), "--json"])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.output)[0]["top"][0]["label"] in json.loads((run_dir / "labels.json").read_text())


def test_a_single_coarse_factor_trains_and_evaluates_at_that_factor(tmp_path):
    """`--factors 2`: the paper's coarse-only baseline (Table 1, "Pool2" beside "Pool21")."""
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["fit", "--data-dir", str(tmp_path / "synthetic"), "--factors", "2", "--epochs", "2",
               "--run-dir", str(run_dir), *TINY])
    assert result.exit_code == 0, result.output
    history = json.loads((run_dir / "history.json").read_text())
    assert [(r["phase"], r["factor"], r["tokens"]) for r in history] == [(1, 2, 16), (1, 2, 16)]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["factors"] == [2] and summary["phase_epochs"] == [2]
    assert keras.saving.load_model(run_dir / "model.keras").factor == 2
    evaluated = CliRunner().invoke(main, ["evaluate", str(run_dir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    row = json.loads(evaluated.output)[0]
    assert (row["factor"], row["tokens"]) == (2, 16)
    assert abs(row["metric"] - history[-1]["val_metric"]) < 1e-6
