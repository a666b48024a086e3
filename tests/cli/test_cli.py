"""The `kc2f` command line: version, listing, and user errors as clear messages."""

import json

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
    result = CliRunner().invoke(main, ["report", c2f, coarse, "--baseline", base, "--json", str(out) + ".json",
                                       "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "| maxpool 2→1 | 90.00 (+0.00) | 25.00 | 25.00 | 2 |" in result.output
    # Table 1's coarse-only row ("Pool2" beside "Pool21"): its own epochs count, it never reaches 0.9.
    assert "| maxpool 2 (coarse only) | 85.00 (-5.00) (not reached) | 25.00 | 25.00 | 3 |" in result.output
    assert json.loads((tmp_path / "tables.json").read_text())["table2"][0]["reached"] is True
    assert (tmp_path / "tables_table3.csv").read_text().startswith("name,")


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
    bad = CliRunner().invoke(main, ["stats", "--dataset", "fsdd", "--data-dir", str(tmp_path / "missing")])
    assert bad.exit_code != 0 and "missing" in bad.output
