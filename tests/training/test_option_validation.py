"""Options that make no sense are refused before the first write; a run without a committed
epoch can be started again with corrected options; a diverged epoch is never committed."""

import json
import math

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.training.loss_guard import LossGuard
from kc2f.training.preparation import check_resume
from kc2f.training.run_config import RunConfig
from kc2f.training.run_directory import RunDirectory
from kc2f.training.run_error import RunError


@pytest.mark.parametrize("args, option", [
    (["--lr", "-1"], "lr"),
    (["--lr", "0"], "lr"),
    (["--lr", "nan"], "lr"),
    (["--lr", "inf"], "lr"),
    (["--set", "mixup=2"], "mixup"),
    (["--set", "dropout_rate=1"], "dropout_rate"),
    (["--set", "std=0"], "std"),
    (["--set", "mean=nan"], "mean"),
    (["--epochs", "0"], "epochs"),
    (["--set", "hidden_dim=0"], "hidden_dim"),
    (["--set", "initial_fraction=1.5"], "initial_fraction"),
    (["--set", "max_train_examples=0"], "max_train_examples"),
])
def test_a_senseless_option_is_refused_in_one_line_before_anything_is_written(tmp_path, args, option):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["fit", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
                                       "--factors", "2,1", "--quiet", "--run-dir", str(run_dir), *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and f"'{option}'" in errors[0] and "Received" in errors[0], result.output
    assert not run_dir.exists() and not (tmp_path / "data").exists()


def test_bounds_hold_for_the_python_api_and_accept_the_edges():
    with pytest.raises(ValueError, match=r"Option 'mixup' must be <= 1\. Received: mixup=1\.5"):
        RunConfig(mixup=1.5)
    with pytest.raises(ValueError, match="must be a finite number"):
        RunConfig(lr=math.inf)
    config = RunConfig(mixup=1.0, model_options={"dropout_rate": 0.0, "num_prefix_tokens": 0}, warmup_steps=0,
                       lr=1e-9)
    assert config.mixup == 1.0 and config.warmup_steps == 0


def test_a_run_without_a_committed_epoch_starts_again_with_other_options(tmp_path):
    run = RunDirectory(tmp_path / "run").claim()
    old = RunConfig(lr=1e-3, factors=(2, 1))
    run.write_config({**old.to_dict(), "lr": 5e-4})
    run.write_labels(["a", "b"])
    (run.checkpoints / "epoch-0001").mkdir(parents=True)  # published, killed before its commit
    lines = []
    assert check_resume(run, old, store=None, log=lines.append) is None
    assert any("starting it again" in line and "lr: 0.0005 -> 0.001" in line for line in lines), lines
    assert not run.has(run.CONFIG) and not run.has(run.LABELS)
    assert not (run.checkpoints / "epoch-0001").exists()


def test_a_run_with_a_committed_epoch_still_refuses_other_options(tmp_path):
    run = RunDirectory(tmp_path / "run").claim()
    config = RunConfig(lr=1e-3, factors=(2, 1))
    run.write_config(config.to_dict())
    run.write_state({"checkpoint": "epoch-0001", "history": [{"epoch": 1}]})

    class Store:
        def problem(self, state):
            return None

    with pytest.raises(RunError, match="another configuration"):
        check_resume(run, config.replace(lr=2e-3), store=Store(), log=lambda line: None)
    assert json.loads((run.path / "config.json").read_text())["lr"] == 1e-3


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_epoch_loss_stops_the_run_naming_what_is_kept(tmp_path, loss):
    guard = LossGuard(tmp_path, committed=lambda: 2)
    guard.on_epoch_end(2, {"loss": 0.5})  # finite: nothing happens
    with pytest.raises(RunError, match=r"became (nan|inf|-inf) in epoch 3 .* keeps epoch 2"):
        guard.on_epoch_end(2, {"loss": loss})
    with pytest.raises(RunError, match="no epoch was committed"):
        LossGuard(tmp_path, committed=lambda: 0).on_epoch_end(0, {"loss": loss})


def test_a_diverged_epoch_stops_the_run_and_the_last_good_epoch_stays_committed(tmp_path, synthetic_dir,
                                                                                monkeypatch):
    import numpy as np

    from kc2f.training.trainer import fit

    def poison_second_epoch(self, epoch, logs=None):
        if epoch == 1:  # weights turned NaN: every loss of epoch 2 is NaN, as after a divergence
            weight = self.model.trainable_weights[0]
            weight.assign(np.full(weight.shape, np.nan, "float32"))

    monkeypatch.setattr(LossGuard, "on_epoch_begin", poison_second_epoch, raising=False)
    config = RunConfig(dataset="synthetic", data_dir=str(synthetic_dir), factors=(1,), epochs=2, batch_size=4,
                       max_train_examples=8, max_eval_examples=4,
                       model_options=dict(hidden_dim=16, depth=1, num_heads=1), warmup_steps=1, jit="off")
    run = RunDirectory(tmp_path / "run")
    with pytest.raises(RunError, match=r"Training loss became nan in epoch 2 .* keeps epoch 1"):
        fit(config, run_dir=run.path, verbose=0, log=lambda line: None)
    state = run.read_state()
    assert [row["epoch"] for row in state["history"]] == [1] and state["checkpoint"] == "epoch-0001"
    assert all(np.isfinite(row["loss"]) for row in state["history"])
    assert not (run.checkpoints / "epoch-0002").exists() and not run.has(run.SUMMARY)
