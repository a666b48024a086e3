"""Adaptive phase switching end to end: any family, 3 phases, FLOPs budget, SIGKILL in a patience window."""

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.training.run_config import RunConfig
from kc2f.training.run_error import RunError
from kc2f.training.trainer import fit

from tests.conftest import REPO, TINY_MODEL, cli_sets
from tests.families.toy_family import TOY, FrameEnergyClassifier


def _toy(tmp_path, **options):
    return RunConfig(model="toy-energy", dataset="synthetic", data_dir=str(tmp_path / "data"), batch_size=8,
                     max_train_examples=24, val_fraction=0.1, max_eval_examples=8, warmup_steps=1, **options)


def _history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


def test_plateau_ends_each_coarse_phase_of_a_3_phase_run_of_another_family(tmp_path):
    # min_delta 1 > any change of accuracy: only the first epoch of a phase "improves", so
    # with patience 1 each coarse phase ends after its 2nd epoch, whatever is learnt.
    config = _toy(tmp_path, factors=(4, 2, 1), epochs=5, switch="plateau", switch_patience=1,
                  switch_min_delta=1.0, switch_min_epochs=1, switch_max_epochs=3)
    lines = []
    summary = fit(config, run_dir=tmp_path / "run", verbose=0, log=lines.append)
    history = _history(tmp_path / "run")
    assert [(r["phase"], r["factor"]) for r in history] == [(1, 4), (1, 4), (2, 2), (2, 2), (3, 1)]
    assert [r.get("phase_end") for r in history] == ["", "plateau", "", "plateau", None]
    assert [r.get("switch_wait") for r in history[:4]] == [0, 1, 0, 1]
    assert summary["phase_epochs"] == [2, 2, 1] and summary["epochs_trained"] == 5
    assert any(line.startswith("Phase 1 ends after epoch 2 (plateau") for line in lines)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["switch"]["decided"] == [2, 2]
    csv_header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert {"phase_end", "switch_best", "switch_wait", "val_metric"} <= set(csv_header)  # the held-out split


def test_budget_rule_switches_and_stops_at_the_flops_budget(tmp_path):
    coarse = TOY.training_flops_per_sample(FrameEnergyClassifier(8, factor=2, clip_samples=20480)) * 16
    fine = TOY.training_flops_per_sample(FrameEnergyClassifier(8, factor=1, clip_samples=20480)) * 16
    budget = 4 * coarse + 3 * fine + 0.5 * fine  # room for 3 fine epochs after at most 4 coarse ones
    config = _toy(tmp_path, factors=(2, 1), epochs=12, switch="budget", switch_min_epochs=3, switch_max_epochs=4,
                  switch_budget=budget)
    summary = fit(config, run_dir=tmp_path / "run", verbose=0, log=lambda line: None)
    history = _history(tmp_path / "run")
    coarse_epochs = sum(r["factor"] == 2 for r in history)
    assert 3 <= coarse_epochs <= 4
    assert history[coarse_epochs - 1]["phase_end"] in ("budget", "max_epochs")
    assert history[2]["switch_best_switch"] is not None  # fitted from the 3rd epoch on
    assert summary["train_flops"] <= budget < summary["train_flops"] + fine
    assert summary["stop_reason"].startswith("FLOPs budget")


def test_phase_epochs_cannot_be_combined_with_an_adaptive_switch(tmp_path):
    with pytest.raises(RunError, match="phase_epochs"):
        fit(_toy(tmp_path, factors=(2, 1), phase_epochs=(1, 2), switch="plateau"), run_dir=tmp_path / "run",
            verbose=0, log=lambda line: None)
    with pytest.raises(ValueError, match="switch"):
        RunConfig(switch="cosine")


@pytest.mark.parametrize("switch", ["plateau", "budget"])
def test_adaptive_rules_refuse_to_decide_on_the_test_split(switch):
    with pytest.raises(ValueError, match="held-out split, not the test split: give val_fraction"):
        RunConfig(switch=switch)
    assert RunConfig(switch=switch, val_fraction=0.1).selection_split == "val"
    assert RunConfig(switch=switch, eval_split="valid").selection_split == "val"
    result = CliRunner().invoke(main, ["fit", "--dataset", "synthetic", "--switch", switch])
    assert result.exit_code != 0 and "Option 'switch'" in result.output


def _args(data_dir):
    # As above, min_delta 1 makes the decision independent of what is learnt: best at epoch 1,
    # wait 1 after epoch 2, wait 2 (= patience) ends the phase after epoch 3. A resume that lost
    # the wait counter would not end it there (the schedule's provisional end, epoch 3 of 4, would,
    # but with the reason "epoch budget").
    return [
        "fit", "--dataset", "synthetic", "--data-dir", str(data_dir), "--method", "maxpool",
        "--factors", "2,1", "--epochs", "4", "--switch", "plateau", "--batch-size", "8", "--quiet",
        *cli_sets(["max_train_examples=16", "val_fraction=0.1", "max_eval_examples=8", "jit=off", "switch_patience=2",
                   "switch_min_delta=1.0", "switch_min_epochs=1", "switch_max_epochs=3", *TINY_MODEL]),
    ]


def _fit(data_dir, run_dir, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "KC2F_FAULT"}
    if fault:
        env["KC2F_FAULT"] = fault
    return subprocess.run(
        [sys.executable, str(REPO / "tests" / "fault_injection.py"), *_args(data_dir), "--run-dir", str(run_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow  # ~150 s on 2 shared CPU cores: three tiny AST processes (reference, killed, resumed)
def test_sigkill_in_a_patience_window_resumes_to_the_same_decision(tmp_path, synthetic_dir):
    reference = tmp_path / "reference"
    done = _fit(synthetic_dir, reference)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = _history(reference)
    assert [r.get("phase_end") for r in expected] == ["", "", "plateau", None]

    run = tmp_path / "killed"
    killed = _fit(synthetic_dir, run, "epoch:3")  # after epoch 2's commit (wait 1), before epoch 3's
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = json.loads((run / "state.json").read_text())
    assert len(state["history"]) == 2 and state["switch"]["policy"]["wait"] == 1
    resumed = _fit(synthetic_dir, run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = _history(run)
    keys = ("epoch", "phase", "factor", "phase_end", "switch_wait", "switch_best", "epoch_flops")
    assert [[r.get(k) for k in keys] for r in got] == [[r.get(k) for k in keys] for r in expected]
    for a, b in zip(got, expected):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    final = json.loads((run / "state.json").read_text())
    assert final["switch"] == json.loads((reference / "state.json").read_text())["switch"]
