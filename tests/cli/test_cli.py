"""The `kc2f` command line: version, listing, and user errors as clear messages."""

import json

import pytest
from click.testing import CliRunner

from kc2f import __version__
from kc2f.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_datasets_lists_the_registry():
    result = CliRunner().invoke(main, ["datasets"])
    assert result.exit_code == 0, result.output
    for name in ("audioset", "vggsound", "voxceleb", "kinetics_sounds", "esc50", "fsdd", "synthetic"):
        assert f"| {name} |" in result.output


def test_fit_rejects_bad_options_before_training(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["fit", "--factors", "1,2", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert "factors must end in 1" in result.output and "or be a single factor" in result.output
    result = runner.invoke(main, ["fit", "--set", "depth=deep", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert "Option 'depth' expects int" in result.output
    result = runner.invoke(main, ["fit", "--dataset", "nope", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert "nope" in result.output
    assert "Traceback" not in result.output


def test_report_on_synthetic_histories(tmp_path):
    def run(name, factors, rows):
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"factors": factors, "method": "maxpool"}))
        (path / "summary.json").write_text(json.dumps({"metric": "accuracy"}))
        history, flops, seconds = [], 0.0, 0.0
        for epoch, (factor, metric, f, s) in enumerate(rows, 1):
            flops, seconds = flops + f, seconds + s
            history.append(dict(epoch=epoch, factor=factor, val_metric=metric,
                                cumulative_flops=flops, cumulative_seconds=seconds))
        (path / "history.json").write_text(json.dumps(history))
        return str(path)

    base = run("base", [1], [(1, 0.5, 10, 1), (1, 0.9, 10, 1)])
    c2f = run("c2f", [2, 1], [(2, 0.4, 5, 0.5), (1, 0.9, 10, 1)])
    coarse = run("coarse", [2], [(2, 0.6, 5, 0.5), (2, 0.8, 5, 0.5), (2, 0.85, 5, 0.5)])
    out = tmp_path / "tables"
    result = CliRunner().invoke(main, ["report", c2f, coarse, "--baseline", base, "--out", str(out)])
    assert result.exit_code == 0, result.output
    # No compile_seconds in these histories: no steady figure.
    assert "| maxpool 2→1 | 90.00 (+0.00) | 25.00 | 25.00 | n/a | 2 |" in result.output
    # Table 1's coarse-only row ("Pool2" beside "Pool21"): its own epochs count, it never reaches 0.9.
    assert "| maxpool 2 (coarse only) | 85.00 (-5.00) (not reached) | 25.00 | 25.00 | n/a | 3 |" in result.output
    # No val_fraction, eval_split test by default: the metric is labelled as the test split's.
    assert "Baseline: test accuracy 90.00 at epoch 2" in result.output
    assert json.loads((out / "report.json").read_text())["table2"][0]["reached"] is True
    csv_lines = (out / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("table,name,") and len(csv_lines) == 1 + 2 + 2
    assert (out / "report.md").read_text() == result.stdout.rstrip("\n") + "\n"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left

    as_json = CliRunner().invoke(main, ["report", c2f, "--baseline", base, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["table3"][0]["best_metric"] == 0.9

    # Without --baseline: each run's own summary, its split named.
    single = CliRunner().invoke(main, ["report", coarse, "--json"])
    assert single.exit_code == 0, single.output
    (row,) = json.loads(single.stdout)["runs"]
    assert (row["best_metric"], row["epoch"], row["epochs"], row["split"]) == (0.85, 3, 3, "test")
    assert (row["total_flops"], row["total_seconds"], row["test_metric_at_best"]) == (15, 1.5, None)
    text = CliRunner().invoke(main, ["report", c2f, coarse])
    assert text.exit_code == 0, text.output
    assert "| maxpool 2 (coarse only) | 85.00 (test) | 3/3 | 85.00 (test) | n/a |" in text.output


def test_report_of_a_run_with_a_validation_split_shows_the_test_metric_at_best(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"factors": [1], "method": "maxpool", "val_fraction": 0.2}))
    (path / "summary.json").write_text(json.dumps({"metric": "accuracy", "test_metric_at_best": 0.7}))
    history = [dict(epoch=e, factor=1, val_metric=m, cumulative_flops=e * 1e12, cumulative_seconds=e)
               for e, m in ((1, 0.5), (2, 0.8), (3, 0.75))]
    (path / "history.json").write_text(json.dumps(history))
    result = CliRunner().invoke(main, ["report", str(path)])
    assert result.exit_code == 0, result.output
    assert "| test accuracy at best |" in result.output
    assert "| baseline | 80.00 (val) | 2/3 | 75.00 (val) | 70.00 | 3.000 | 3.0 |" in result.output


def test_json_is_a_flag_that_prints_json_on_stdout():
    from kc2f.data.registry import DATASETS

    result = CliRunner().invoke(main, ["datasets", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert set(listed) == set(DATASETS) and listed["fsdd"]["sample_rate"] == 8000
    # Every command that prints results takes --json as a flag (no value).
    for command in ("fit", "evaluate", "report", "stats", "datasets", "sweep", "cv", "bench", "export",
                    "predict", "plot", "demo"):
        options = {o.name: o for o in main.commands[command].params}
        assert options["as_json"].is_flag and options["as_json"].opts == ["--json"], command
    for command in ("fit", "sweep", "cv", "bench", "predict", "demo"):
        assert "quiet" in {o.name for o in main.commands[command].params}, command


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef kc2f"),
                                           ("fish", "complete --no-files --command kc2f")])
def test_shell_completion_script_is_produced(shell, marker):
    # What the README tells users to source: `_KC2F_COMPLETE=<shell>_source kc2f`.
    result = CliRunner().invoke(main, [], prog_name="kc2f", env={"_KC2F_COMPLETE": f"{shell}_source"})
    assert result.exit_code == 0, result.output
    assert marker in result.stdout and "_KC2F_COMPLETE" in result.stdout


def test_stats_command_writes_a_config(tmp_path):
    from kc2f.data.synthetic import write_synthetic_dataset

    data = tmp_path / "synthetic"
    write_synthetic_dataset(data, clips_per_class=2, seed=0)
    target = tmp_path / "stats.yaml"
    result = CliRunner().invoke(main, ["stats", "--dataset", "folder", "--data-dir", str(data),
                                       "--write", str(target)])
    assert result.exit_code == 0, result.output
    assert "mean=" in result.output and "std=" in result.output
    from kc2f.training.run_config import load_file

    loaded = load_file(target)
    assert loaded["dataset"] == "folder" and loaded["std"] > 0
    as_json = CliRunner().invoke(main, ["stats", "--dataset", "folder", "--data-dir", str(data), "--json"])
    assert as_json.exit_code == 0, as_json.output
    stats = json.loads(as_json.stdout)
    assert stats["std"] == pytest.approx(loaded["std"]) and f"({stats['clips']} clips)" in result.output
    bad = CliRunner().invoke(main, ["stats", "--dataset", "fsdd", "--data-dir", str(tmp_path / "missing")])
    assert bad.exit_code != 0 and "missing" in bad.output


@pytest.mark.parametrize("backend, package", [("torch", "torch"), ("jax", "jax"), ("tensorflow", "tensorflow")])
def test_a_missing_backend_package_is_one_line_naming_what_to_install(monkeypatch, tmp_path, backend, package):
    import importlib.util

    from kc2f.commands import backend as backend_check

    real = importlib.util.find_spec
    monkeypatch.setattr(backend_check.importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    monkeypatch.setenv("KERAS_BACKEND", backend)
    for args in (["fit", "--run-dir", str(tmp_path / "run")], ["predict", str(tmp_path), "x.wav"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.strip().splitlines() == [
            f"Error: KERAS_BACKEND={backend} needs the '{package}' package, which is not installed: "
            f"{backend_check.PACKAGES[backend][1]}."]
    assert not (tmp_path / "run").exists()
    # Commands that need no backend, and help, still work.
    assert CliRunner().invoke(main, ["datasets"]).exit_code == 0
    assert CliRunner().invoke(main, ["fit", "--help"]).exit_code == 0


def test_the_backend_is_read_as_keras_reads_it(monkeypatch, tmp_path):
    from kc2f.commands.backend import keras_backend

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    assert keras_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert keras_backend() == "torch"


@pytest.mark.parametrize("backend, package", [("torch", "torch"), ("jax", "jax")])
def test_the_python_api_names_a_missing_backend_package_in_one_line(monkeypatch, tmp_path, backend, package):
    import importlib.util

    import kc2f
    from kc2f.commands import backend as backend_check

    real = importlib.util.find_spec
    monkeypatch.setattr(backend_check.importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    monkeypatch.setenv("KERAS_BACKEND", backend)
    expected = (f"KERAS_BACKEND={backend} needs the '{package}' package, which is not installed: "
                f"{backend_check.PACKAGES[backend][1]}.")
    with pytest.raises(ModuleNotFoundError) as fit_error:
        kc2f.fit(run_dir=str(tmp_path / "run"), dataset="synthetic")
    with pytest.raises(ModuleNotFoundError) as load_error:
        kc2f.load(str(tmp_path / "run"))
    assert str(fit_error.value) == str(load_error.value) == expected
    assert not (tmp_path / "run").exists()


def test_stats_takes_the_runs_input_options_and_writes_them_beside_the_statistics(tmp_path):
    from kc2f.data.manifest import build_index
    from kc2f.data.registry import input_spec
    from kc2f.data.stats import compute_stats
    from kc2f.data.synthetic import write_synthetic_dataset
    from kc2f.training.run_config import load_file

    data = tmp_path / "synthetic"
    write_synthetic_dataset(data, clips_per_class=2, seed=0)
    target = tmp_path / "stats.yaml"
    result = CliRunner().invoke(main, ["stats", "--dataset", "folder", "--data-dir", str(data), "--num-mel-bins",
                                       "32", "--clip-seconds", "0.5", "--write", str(target), "--json"])
    assert result.exit_code == 0, result.output
    loaded = load_file(target)
    assert (loaded["num_mel_bins"], loaded["clip_seconds"]) == (32, 0.5)
    examples, labels = build_index("folder", data, "train")
    mean, std = compute_stats(examples, input_spec("folder", {"num_mel_bins": 32, "clip_seconds": 0.5}),
                              label_names=labels)
    assert (loaded["mean"], loaded["std"]) == (pytest.approx(float(mean)), pytest.approx(float(std)))
    default = json.loads(CliRunner().invoke(main, ["stats", "--dataset", "folder", "--data-dir", str(data),
                                                   "--json"]).stdout)
    assert default["mean"] != pytest.approx(loaded["mean"], abs=1e-3)
    bad = CliRunner().invoke(main, ["stats", "--dataset", "folder", "--num-mel-bins", "0"])
    assert bad.exit_code == 2 and "--num-mel-bins" in bad.output
