"""Issue 34 item 8: the Python API's unknown option, and a run directory that can be moved."""

import json
import shutil

import pytest
from click.testing import CliRunner

import kc2f
from kc2f.cli import main

TINY = ["--set", "hidden_dim=16", "--set", "depth=1", "--set", "num_heads=1",
        "--set", "max_train_examples=16", "--set", "max_eval_examples=8", "--batch-size", "8", "--quiet"]


def test_the_python_api_names_an_unknown_option_as_python_does(tmp_path):
    with pytest.raises(TypeError, match=r"^kc2f\.fit\(\) got an unexpected keyword argument 'bogus'\. "
                                        r"Known options: .*\blr\b"):
        kc2f.fit(run_dir=str(tmp_path / "run"), dataset="synthetic", bogus=1)
    assert not (tmp_path / "run").exists()


def test_a_copied_run_names_its_own_directory_and_a_redirected_log_has_no_ansi_codes(tmp_path, synthetic_dir):
    original = tmp_path / "original"
    result = CliRunner().invoke(main, ["fit", "--data-dir", str(synthetic_dir), "--factors", "2,1",
                                       "--phase-epochs", "1,1", "--run-dir", str(original), *TINY[:-1]])
    assert result.exit_code == 0, result.output
    # Progress to a stream that is not a terminal: a plain line per epoch, no bars redrawn in ANSI.
    assert "2/2 - " in result.output and "\x1b[" not in result.output and "\r" not in result.output
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    for path in copy.rglob("*.json"):
        assert str(original) not in path.read_text(), path
    report = CliRunner().invoke(main, ["report", str(copy), "--json"])
    assert report.exit_code == 0, report.output
    assert str(original) not in report.output and str(copy) in report.output
    again = CliRunner().invoke(main, ["fit", "--data-dir", str(synthetic_dir), "--factors", "2,1",
                                      "--phase-epochs", "1,1", "--run-dir", str(copy), *TINY])
    assert again.exit_code == 0, again.output
    assert "already finished" in again.output and f"Summary: {copy / 'summary.json'}" in again.output
    assert json.loads((copy / "summary.json").read_text())["epochs_trained"] == 2


def test_plot_into_an_unwritable_place_is_one_line(tmp_path):
    from tests.conftest import write_run

    run = write_run(tmp_path / "run", config={"dataset": "synthetic", "factors": [1]},
                    history=[{"epoch": 1, "phase": 1, "factor": 1, "val_metric": 0.5, "cumulative_flops": 1.0,
                              "cumulative_seconds": 1.0, "train_seconds": 1.0}])
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    result = CliRunner().invoke(main, ["plot", str(run), "--out", str(blocker / "plots")])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines() == [
        f"Error: --out {blocker / 'plots'}: cannot write the plots there: Not a directory"]
    assert blocker.read_text() == "mine"


def test_a_truncated_keras_file_is_named_as_truncated_not_missing(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    (tmp_path / "labels.json").write_text('["a", "b"]')
    with pytest.raises(ValueError, match=r"model\.keras: the file is not a complete \.keras \(zip\) archive "
                                         r"\(104 bytes\): truncated or damaged"):
        kc2f.load(str(path))


def test_set_options_in_file_keeps_comments_order_and_other_options(tmp_path):
    from kc2f.training.run_config import load_file, set_options_in_file

    path = tmp_path / "my.yaml"
    path.write_text("# my recipe\ndataset: fsdd  # the digits\nlr: 0.001\n\n# tuned by hand\nmean: -4.0\nepochs: 5")
    set_options_in_file(path, {"dataset": "fsdd", "mean": -2.5, "std": 3.25})
    assert path.read_text() == ("# my recipe\ndataset: \"fsdd\"  # the digits\nlr: 0.001\n\n# tuned by hand\n"
                                "mean: -2.5\nepochs: 5\nstd: 3.25\n")
    assert load_file(path) == {"dataset": "fsdd", "lr": 0.001, "mean": -2.5, "epochs": 5, "std": 3.25}
    new = tmp_path / "new.yaml"
    set_options_in_file(new, {"mean": 1.0})
    assert new.read_text() == "mean: 1.0\n"


@pytest.mark.parametrize("text, message", [
    ("bogus: 1\n", r"Unknown option 'bogus' in .*my\.yaml"),
    ("- a list\n", r"my\.yaml must hold a mapping of options"),
    ("mean: [1,\n", r"my\.yaml is not valid YAML"),
])
def test_stats_write_refuses_a_bad_config_before_computing_and_leaves_it_alone(tmp_path, text, message):
    path = tmp_path / "my.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["stats", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"),
                                       "--write", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith("Error: ") and __import__("re").search(message, result.output), result.output
    assert path.read_text() == text
    assert not (tmp_path / "data").exists()  # refused before the statistics (which generate the set)


def test_the_jax_compilation_cache_is_on_from_jax_0_10_unless_turned_off(monkeypatch):
    from kc2f.training.compilation_cache import compilation_cache_wanted

    monkeypatch.delenv("KC2F_COMPILATION_CACHE", raising=False)
    assert compilation_cache_wanted((0, 10)) and compilation_cache_wanted((1, 0))
    assert not compilation_cache_wanted((0, 4))  # 0.4.33 crashed loading a second phase's step
    monkeypatch.setenv("KC2F_COMPILATION_CACHE", "0")
    assert not compilation_cache_wanted((0, 10))
    monkeypatch.setenv("KC2F_COMPILATION_CACHE", "1")
    assert compilation_cache_wanted((0, 4))
