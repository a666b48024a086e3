"""`kc2f demo`: the baseline and maxpool 2->1 on the embedded data, tables and plot; the full
demo (slow) must show the method working: both runs >= 90% and >= 30% FLOPs saved."""

import json
import pathlib

import pytest
from click.testing import CliRunner

from kc2f.commands.demo import demo as demo_command
from kc2f.experiments import demo as demo_lib
from tests.conftest import TINY_MODEL

TINY = {**{k: int(v) for k, v in (item.split("=") for item in TINY_MODEL)},
        "clips_per_class": 4, "test_clips_per_class": 2, "epochs": 2, "batch_size": 8}


def test_demo_command_trains_both_runs_and_prints_the_tables_as_json(tmp_path, monkeypatch):
    for key, value in TINY.items():
        monkeypatch.setitem(demo_lib.DEMO_OPTIONS, key, value)
    out = tmp_path / "demo"
    result = CliRunner().invoke(demo_command, ["--out", str(out), "--data-dir", str(tmp_path / "data"),
                                               "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert pathlib.Path(report["plot"]).is_file() and report["plot"].endswith("metric_vs_flops.png")
    (row,) = report["table2"]
    assert row["name"] == "maxpool 2→1"
    for name in ("baseline", "maxpool-2-1"):
        config = json.loads((out / name / "config.json").read_text())
        assert config["clips_per_class"] == 4 and config["epochs"] == 2 and config["test_clips_per_class"] == 2
    assert json.loads((out / "baseline" / "config.json").read_text())["factors"] == [1]
    # Re-running reuses both finished runs.
    again = CliRunner().invoke(demo_command, ["--out", str(out), "--data-dir", str(tmp_path / "data"), "--quiet"])
    assert again.exit_code == 0, again.output
    assert again.output.count("already finished") == 2
    assert "Plot of accuracy against training FLOPs" in again.output
    # Other options over the finished runs: refused, naming the demo's own way out.
    other = CliRunner().invoke(demo_command, ["--out", str(out), "--data-dir", str(tmp_path / "data"), "--quiet",
                                              "--set", "epochs=3"])
    assert other.exit_code != 0 and "Traceback" not in other.output
    assert "another configuration (epochs: 2 -> 3)" in other.output and "--out of sweep, cv and demo" in other.output


def test_set_replaces_the_demos_options_and_keeps_the_rest():
    changed = demo_lib.demo_config(("decay_rate=0.85", "hidden_dim=256", "batch_size=16"), seed=2)
    assert changed == demo_lib.demo_config(decay_rate=0.85, hidden_dim=256, batch_size=16, seed=2)
    assert (changed.decay_rate, changed.model_options.hidden_dim, changed.batch_size, changed.seed) == (0.85, 256, 16, 2)
    default = demo_lib.demo_config()
    assert (changed.clips_per_class, changed.test_clips_per_class, changed.epochs, changed.model_options.depth) == \
        (default.clips_per_class, default.test_clips_per_class, default.epochs, default.model_options.depth) == \
        (200, 200, 14, 2)
    assert changed.model_options.patch_size == default.model_options.patch_size == (16, 8)
    assert demo_lib.demo_config(("model_options.depth=3",), data_dir=None).model_options.depth == 3


def test_a_bad_set_is_a_one_line_error_before_anything_is_written(tmp_path):
    out = tmp_path / "demo"
    for item, words in (("decay_rat=0.85", "decay_rat"), ("decay_rate", "key=value"), ("hidden_dim=wide", "hidden_dim")):
        result = CliRunner().invoke(demo_command, ["--out", str(out), "--data-dir", str(tmp_path / "data"),
                                                   "--quiet", "--set", item])
        assert result.exit_code != 0 and words in result.output, result.output
        assert "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("name", ["clips_per_class", "test_clips_per_class"])
def test_clips_per_class_is_refused_for_a_dataset_on_disk(tmp_path, name):
    from kc2f.training.run_config import RunConfig
    from kc2f.training.trainer import plan_run

    with pytest.raises(ValueError, match=f"Option '{name}' sizes the generated synthetic set.*{name}=10"):
        plan_run(RunConfig(dataset="fsdd", data_dir=str(tmp_path), **{name: 10}))


@pytest.mark.slow
def test_the_demo_shows_the_method_working(tmp_path):
    """The README's main command as it runs (about 2 minutes on 2 CPU cores: 118 s on 2026-12-07, f655590)."""
    result = demo_lib.run_demo(tmp_path / "demo", log=lambda line: None, data_dir=str(tmp_path / "data"))
    baseline = result["runs"][0]["summary"]
    coarse_to_fine = result["runs"][1]["summary"]
    assert baseline["best_metric"] >= 0.90 and coarse_to_fine["best_metric"] >= 0.90
    (row,) = result["report"]["table2"]
    assert row["reached"] and row["flops_save_pct"] >= 30.0, row
