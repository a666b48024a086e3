"""`kc2f sweep`: run naming, reuse of finished runs, tables and plots (fit mocked), one tiny real sweep."""

import json
import pathlib

import pytest
from click.testing import CliRunner

from kc2f.commands.sweep import sweep as sweep_command
from kc2f.experiments import sweep as sweep_lib
from kc2f.training.run_config import RunConfig
from kc2f.training.run_error import RunError


def _history(factors, epochs=4, speed=1.0):
    """Cheaper coarse phases, metric rising; the coarse run ends a bit above the baseline."""
    phases = [1] * epochs if factors == [1] else [1] + [len(factors)] * (epochs - 1)
    rows, flops, seconds = [], 0.0, 0.0
    for epoch, phase in enumerate(phases, 1):
        factor = factors[phase - 1]
        flops += 1e9 / factor
        seconds += speed * 2.0 / factor
        rows.append({
            "epoch": epoch, "phase": phase, "factor": factor, "tokens": 32 // factor,
            "loss": 1.0 / epoch, "val_metric": 0.1 * epoch + (0.02 if factors != [1] else 0.0),
            "lr": 1e-3, "samples": 16, "train_seconds": 2.0 / factor, "eval_seconds": 0.1,
            "epoch_flops": 1e9 / factor, "cumulative_flops": flops, "cumulative_seconds": seconds,
        })
    return rows


class FakeFit:
    """Stands in for trainer.fit: records calls, 'trains' only when no summary.json exists."""

    def __init__(self):
        self.calls, self.trained = [], []

    def __call__(self, config, run_dir=None, verbose=1, log=print):
        run_dir = pathlib.Path(run_dir)
        self.calls.append((run_dir.name, config.to_dict()))
        if (run_dir / "summary.json").exists():
            saved = json.loads((run_dir / "config.json").read_text())
            if saved != config.to_dict():
                raise RunError(f"{run_dir} holds a run with another configuration")
            return json.loads((run_dir / "summary.json").read_text())
        self.trained.append(run_dir.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
        history = _history(list(config.factors))
        (run_dir / "history.json").write_text(json.dumps(history))
        summary = {"metric": "acc", "factors": list(config.factors), "method": config.method,
                   "best_metric": max(r["val_metric"] for r in history)}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return summary


@pytest.fixture
def fake_fit(monkeypatch):
    fake = FakeFit()
    monkeypatch.setattr(sweep_lib, "fit", fake)
    return fake


def test_sweep_names_runs_reuses_them_and_writes_tables(tmp_path, fake_fit):
    base = RunConfig.from_sources(None, ["seed=3", "epochs=4"], dataset="synthetic")
    out = tmp_path / "sweep"
    result = sweep_lib.run_sweep(base, out, ["maxpool", "patch-pi"], "2,1;4,1", log=lambda line: None)

    names = ["baseline", "maxpool-2-1", "maxpool-4-1", "patch-pi-2-1", "patch-pi-4-1"]
    assert [name for name, _ in fake_fit.calls] == names
    assert fake_fit.trained == names
    assert [r["name"] for r in result["runs"]] == names
    configs = {name: config for name, config in fake_fit.calls}
    assert configs["baseline"]["factors"] == [1]
    assert configs["patch-pi-4-1"]["method"] == "patch-pi" and configs["patch-pi-4-1"]["factors"] == [4, 1]
    # Same seed and epoch budget everywhere.
    assert {(c["seed"], c["epochs"]) for c in configs.values()} == {(3, 4)}

    for name in ("tables.md", "table2.csv", "table3.csv", "tables.json",
                 "metric_vs_flops.png", "metric_vs_time.png", "step_time_per_phase.png"):
        assert (out / name).stat().st_size > 0, name
    tables = json.loads((out / "tables.json").read_text())
    assert tables["metric"] == "acc"
    assert [pathlib.Path(r["run_dir"]).name for r in tables["table2"]] == names[1:]
    assert all(r["reached"] and r["flops_save_pct"] > 0 for r in tables["table2"])
    table2_csv = (out / "table2.csv").read_text().splitlines()
    assert table2_csv[0].startswith("name,run_dir,metric,delta,flops_save_pct,time_save_pct")
    assert len(table2_csv) == 1 + 4 and len((out / "table3.csv").read_text().splitlines()) == 1 + 4
    text = (out / "tables.md").read_text()
    assert "Table 2" in text and "Table 3" in text and "maxpool 2→1" in text

    # A second call (even with fewer methods) reuses every finished run: same dirs, same configs.
    fake_fit.calls.clear()
    again = sweep_lib.run_sweep(base, out, "maxpool", [[2, 1]], log=lambda line: None)
    assert [name for name, _ in fake_fit.calls] == ["baseline", "maxpool-2-1"]
    assert fake_fit.trained == names  # nothing trained again
    assert [pathlib.Path(r["run_dir"]).name for r in again["report"]["table2"]] == ["maxpool-2-1"]


def test_plan_three_phase_and_phase_epochs():
    base = RunConfig.from_sources(None, ["phase_epochs=1,3"])
    runs = sweep_lib.plan(base, ["fshift"], [[2, 1], [4, 2, 1]])
    assert [name for name, _ in runs] == ["baseline", "fshift-2-1", "fshift-4-2-1"]
    configs = {name: config.to_dict() for name, config in runs}
    assert configs["baseline"]["phase_epochs"] is None and configs["baseline"]["epochs"] == 4
    assert configs["fshift-2-1"]["phase_epochs"] == [1, 3]
    assert configs["fshift-4-2-1"]["phase_epochs"] is None and configs["fshift-4-2-1"]["epochs"] == 4


def test_sweep_compares_switch_rules_in_separate_run_dirs_on_the_same_budget(tmp_path, fake_fit):
    out = tmp_path / "cli"
    result = CliRunner().invoke(sweep_command, [
        "--dataset", "synthetic", "--out", str(out), "--methods", "maxpool", "--factor-lists", "2,1;4,2,1",
        # Patience 1: 4 epochs cap a coarse phase at 2, where the default patience 3 could never fire.
        "--switch", "fixed,plateau", "--set", "epochs=4", "--set", "seed=5", "--set", "switch_patience=1",
        "--set", "val_fraction=0.1", "--quiet"])
    assert result.exit_code == 0, result.output
    names = ["baseline", "maxpool-2-1", "maxpool-2-1-plateau", "maxpool-4-2-1", "maxpool-4-2-1-plateau"]
    assert [name for name, _ in fake_fit.calls] == names
    configs = dict(fake_fit.calls)
    assert [configs[n]["switch"] for n in names] == ["fixed", "fixed", "plateau", "fixed", "plateau"]
    assert {(c["seed"], c["epochs"], c["dataset"]) for c in configs.values()} == {(5, 4, "synthetic")}
    assert "phase ends" in (out / "tables.md").read_text()
    # An explicit split is the fixed rule's; the adaptive runs decide theirs.
    runs = dict(sweep_lib.plan(RunConfig.from_sources(None, ["phase_epochs=1,3", "val_fraction=0.1"]), ["maxpool"],
                               [[2, 1]],
                               ["fixed", "budget"]))
    assert runs["maxpool-2-1"].phase_epochs == (1, 3) and runs["maxpool-2-1-budget"].phase_epochs is None
    assert runs["maxpool-2-1-budget"].epochs == 4
    with pytest.raises(ValueError, match="Unknown switch 'cosine'"):
        sweep_lib.parse_switches("fixed,cosine")
    # The adaptive rules decide on a held-out split: without one the sweep stops before any run.
    result = CliRunner().invoke(sweep_command, [
        "--dataset", "synthetic", "--out", str(tmp_path / "no-val"), "--methods", "maxpool", "--factor-lists", "2,1",
        "--switch", "fixed,plateau", "--quiet"])
    assert result.exit_code != 0 and "held-out split" in result.output
    assert not (tmp_path / "no-val").exists()


@pytest.mark.parametrize("methods, lists", [("maxpool,nope", "2,1"), ("maxpool", "1"),
                                            ("maxpool", "1,2"), ("maxpool", "")])
def test_bad_methods_or_factor_lists_fail_before_training(tmp_path, fake_fit, methods, lists):
    with pytest.raises(ValueError):
        sweep_lib.run_sweep(RunConfig.from_sources(), tmp_path / "s", methods, lists, log=lambda line: None)
    assert fake_fit.calls == []


def test_sweep_command_with_3_phase(tmp_path, fake_fit):
    out = tmp_path / "cli"
    result = CliRunner().invoke(sweep_command, [
        "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"), "--out", str(out),
        "--methods", "avgpool", "--factor-lists", "2,1", "--with-3-phase", "--set", "epochs=4", "--quiet"])
    assert result.exit_code == 0, result.output
    assert [name for name, _ in fake_fit.calls] == ["baseline", "avgpool-2-1", "avgpool-4-2-1"]
    assert fake_fit.calls[0][1]["data_dir"] == str(tmp_path / "data")
    assert (out / "tables.json").exists() and "Table 2" in result.output


def test_sweep_command_reports_a_mismatched_run(tmp_path, fake_fit):
    out = tmp_path / "cli"
    args = ["--out", str(out), "--methods", "maxpool", "--factor-lists", "2,1", "--quiet"]
    assert CliRunner().invoke(sweep_command, [*args, "--set", "epochs=4"]).exit_code == 0
    result = CliRunner().invoke(sweep_command, [*args, "--set", "epochs=6"])
    assert result.exit_code != 0 and "another configuration" in result.output


@pytest.mark.slow  # ~100 s on 2 shared CPU cores (two tiny trainings, model saves, plots)
def test_tiny_real_sweep_on_synthetic(tmp_path):
    base = RunConfig.from_sources(None, [
        "hidden_dim=16", "depth=1", "num_heads=1", "max_train_examples=16", "max_eval_examples=8",
        "batch_size=8", "phase_epochs=1,1", "precision=float32",
    ], dataset="synthetic", data_dir=str(tmp_path / "data"))
    out = tmp_path / "sweep"
    lines = []
    result = sweep_lib.run_sweep(base, out, ["maxpool"], [[2, 1]], log=lines.append)
    assert [r["name"] for r in result["runs"]] == ["baseline", "maxpool-2-1"]
    history = json.loads((out / "maxpool-2-1" / "history.json").read_text())
    assert [(r["phase"], r["factor"]) for r in history] == [(1, 2), (2, 1)]
    assert len(json.loads((out / "baseline" / "history.json").read_text())) == 2
    for name in ("tables.md", "table2.csv", "table3.csv", "tables.json", "metric_vs_flops.png"):
        assert (out / name).exists(), name
    # Re-running reuses both finished runs.
    lines.clear()
    sweep_lib.run_sweep(base, out, ["maxpool"], [[2, 1]], log=lines.append)
    assert sum("already finished" in line for line in lines) == 2


def test_every_runs_averaging_range_is_checked_before_the_first_trains(tmp_path):
    # epochs 5, initial 20%: 2,1 trains C=1 in epochs 2-5, but 4,2,1 (1 + 1 + 3) only in 3-5.
    config = RunConfig(dataset="synthetic", data_dir=str(tmp_path / "data"), epochs=5, initial_fraction=0.2,
                       average_checkpoints="2..5")
    with pytest.raises(RunError, match=r"spans the phase switch after epoch 2 \(C=2 -> C=1\)"):
        sweep_lib.run_sweep(config, tmp_path / "sweep", ["maxpool"], "2,1;4,2,1", plots=False)
    assert not (tmp_path / "sweep").exists()
