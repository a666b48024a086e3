"""`kc2f pretrain`: step schedules, and a SIGKILLed pretraining run resuming to the same loss history."""

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.training.pretraining import pretrain_config, step_schedule
from kc2f.training.run_config import RunConfig
from kc2f.training.run_error import RunError
from tests.conftest import REPO, TINY_MODEL, cli_sets


def test_step_schedule_maps_steps_onto_evaluation_intervals():
    # The paper's Table 6 row: 100K coarse + 500K fine steps, evaluated every 4000 (SSAST's epoch_iter).
    assert step_schedule(600_000, 4000, (4, 1), (100_000, 500_000)) == (150, (25, 125))
    assert step_schedule(600_000, 4000, (4, 1)) == (150, (25, 125))  # default: 1/6 coarse
    assert step_schedule(1200, 100, (1,)) == (12, None)
    assert step_schedule(1800, 300, (4, 2, 1)) == (6, (1, 1, 4))
    with pytest.raises(RunError, match="multiple of --eval-every"):
        step_schedule(1000, 300, (4, 1))
    with pytest.raises(RunError, match="add up to"):
        step_schedule(600, 100, (4, 1), (100, 400))
    with pytest.raises(RunError, match="multiple of --eval-every"):
        step_schedule(600, 100, (4, 1), (150, 450))


def test_pretrain_config_is_a_step_based_ssast_run():
    config = pretrain_config(RunConfig(dataset="fsdd", factors=(4, 1), method="fshift"), 1200, 100)
    assert (config.model, config.epochs, config.phase_epochs, config.steps_per_epoch) == ("ssast", 12, (2, 10), 100)
    assert (config.freqm, config.timem, config.mixup, config.lr) == (0, 0, 0.0, 1e-4)


def test_cli_rejects_a_budget_that_is_not_whole_intervals():
    result = CliRunner().invoke(main, ["pretrain", "--steps", "1000", "--eval-every", "300"])
    assert result.exit_code != 0 and "multiple of --eval-every 300" in result.output
    result = CliRunner().invoke(main, ["pretrain", "--steps", "600", "--method", "patch-pi"])
    assert result.exit_code != 0 and "must be one of ('fshift', 'maxpool', 'avgpool')" in result.output


def _pretrain(data_dir, run_dir, fault=None):
    # 24 clips in batches of 8: 3 batches per pass, evaluated every 2 steps, so the
    # intervals are not whole passes over the data (resuming must skip into a pass).
    args = [
        "pretrain", "--dataset", "synthetic", "--data-dir", str(data_dir), "--method", "fshift",
        "--factors", "2,1", "--steps", "8", "--phase-steps", "4,4", "--eval-every", "2", "--batch-size", "8",
        "--quiet", "--run-dir", str(run_dir),
        *cli_sets(["max_train_examples=24", "max_eval_examples=8", *TINY_MODEL]),
    ]
    env = dict(os.environ)
    env.pop("KC2F_FAULT", None)
    if fault:
        env["KC2F_FAULT"] = fault
    return subprocess.run([sys.executable, str(REPO / "tests" / "fault_injection.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


@pytest.mark.slow
def test_sigkill_mid_pretraining_resumes_to_the_uninterrupted_loss_history(tmp_path, synthetic_dir):
    reference = tmp_path / "reference"
    done = _pretrain(synthetic_dir, reference)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "killed"
    # Killed inside the coarse phase (after interval 1, 2 steps: mid-pass) and inside the fine one.
    for fault, committed in (("epoch:2", 1), ("epoch:3", 2)):
        killed = _pretrain(synthetic_dir, run, fault)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert len(_history(run)) == committed
    finished = _pretrain(synthetic_dir, run)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Resuming" in finished.stdout
    expected, got = _history(reference), _history(run)
    assert [(r["phase"], r["factor"]) for r in got] == [(1, 2), (1, 2), (2, 1), (2, 1)]
    assert [(r["phase"], r["factor"]) for r in got] == [(r["phase"], r["factor"]) for r in expected]
    for a, b in zip(got, expected):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
        assert a["val_masked_accuracy"] == pytest.approx(b["val_masked_accuracy"], abs=1e-6)
        assert a["samples"] == 16
    assert got[-1]["cumulative_flops"] == expected[-1]["cumulative_flops"]
    # FLOPs: the coarse intervals cost less than the full-resolution ones.
    assert got[0]["epoch_flops"] < 0.6 * got[-1]["epoch_flops"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metric"] == "masked_accuracy" and summary["model"] == "ssast"
    assert {"val_nce", "val_mse", "val_loss"} <= set(got[0])
