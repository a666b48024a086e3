"""A run directory nothing can corrupt: the lock, refusals, fallbacks, a full disk, bad files.

One finished two-epoch run (tiny model, embedded synthetic data, two kept
checkpoints) is trained once; each test damages a copy of it the way an
operator or a crash would and checks that `fit` either resumes from what is
valid (with a warning naming the bad file) and ends with the same history, or
stops with a one-line error that names the file or option.
"""

import errno
import json
import shutil

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.experiments.report import build_report, format_text
from kc2f.training import checkpoint_store
from kc2f.training.run_config import RunConfig
from kc2f.training.run_directory import RunDirectory
from kc2f.training.run_error import RunError
from kc2f.training.run_lock import RunLock
from kc2f.training.trainer import fit

TINY = dict(method="maxpool", factors=(2, 1), phase_epochs=(1, 1), batch_size=4, max_train_examples=8,
            max_eval_examples=4, hidden_dim=16, depth=1, num_heads=1, warmup_steps=1, jit="off",
            keep_checkpoints=2)


def _config(data_dir, **changes):
    return RunConfig.from_dict({"dataset": "synthetic", "data_dir": str(data_dir), **TINY, **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    fit(_config(root / "data"), run_dir=root / "run", verbose=0, log=lambda line: None)
    return root


@pytest.fixture
def copy(finished, tmp_path):
    shutil.copytree(finished / "run", tmp_path / "run")
    return tmp_path / "run", finished / "data"


def _history(run):
    return json.loads((run / "state.json").read_text())["history"]


def _losses(history):
    return [round(row["loss"], 5) for row in history]


@pytest.mark.parametrize("damage", ["delete latest checkpoint", "empty latest model file"])
def test_damaged_latest_checkpoint_falls_back_and_resumes_to_the_same_run(copy, finished, damage):
    run, data = copy
    if damage == "delete latest checkpoint":
        shutil.rmtree(run / "checkpoints" / "epoch-0002")
        named = "epoch-0002/model.npz is missing"
    else:
        (run / "checkpoints" / "epoch-0002" / "model.npz").write_bytes(b"")
        named = "epoch-0002/model.npz is damaged (checksum mismatch)"
    lines = []
    summary = fit(_config(data), run_dir=run, verbose=0, log=lines.append)
    warnings = [line for line in lines if line.startswith("Warning:")]
    assert len(warnings) == 1 and named in warnings[0] and "resuming from epoch-0001" in warnings[0], lines
    assert any("Resuming" in line and "after epoch 1" in line for line in lines)
    assert summary["epochs_trained"] == 2
    assert _losses(_history(run)) == _losses(_history(finished / "run"))


def test_damaged_state_is_restored_from_the_newest_checkpoint(copy, finished):
    run, data = copy
    (run / "state.json").write_text("{ not json")
    lines = []
    fit(_config(data), run_dir=run, verbose=0, log=lines.append)
    assert "state.json is not valid JSON" in lines[0] and "resuming from epoch-0002" in lines[0], lines
    assert any("already finished" in line for line in lines)
    assert _history(run) == _history(finished / "run")


def test_nothing_valid_to_fall_back_to_is_one_clear_error(copy):
    run, data = copy
    for folder in (run / "checkpoints").iterdir():
        (folder / "model.npz").write_bytes(b"x")
    with pytest.raises(RunError, match=r"epoch-0002/model.npz is damaged.*no checkpoint verifies"):
        fit(_config(data), run_dir=run, verbose=0, log=lambda line: None)


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_missing_or_damaged_config_is_named(copy, damage):
    run, data = copy
    if damage == "missing":
        (run / "config.json").unlink()
    else:
        (run / "config.json").write_text("[1, 2")
    with pytest.raises(RunError, match=r"config.json (does not exist|is not valid JSON)"):
        fit(_config(data), run_dir=run, verbose=0, log=lambda line: None)


def test_files_without_state_are_refused(copy):
    run, data = copy
    (run / "state.json").unlink()
    with pytest.raises(RunError, match=r"holds checkpoints/, history.csv, history.json, model.keras, summary.json "
                                       r"but no state.json"):
        fit(_config(data, seed=5), run_dir=run, verbose=0, log=lambda line: None)
    assert (run / "history.json").exists()  # nothing was overwritten


def test_a_second_writer_is_refused_naming_the_holder(copy):
    run, data = copy
    with RunLock(RunDirectory(run).lock_path):
        result = CliRunner().invoke(main, ["fit", "--dataset", "synthetic", "--data-dir", str(data),
                                           "--run-dir", str(run), "--quiet"])
    assert result.exit_code != 0
    message = result.output.strip()
    assert message.count("\n") == 0 and "is in use by pid" in message and ".lock" in message, message


def test_full_disk_stops_with_one_line_then_resumes(tmp_path, finished, monkeypatch):
    run = tmp_path / "run"
    save_arrays = checkpoint_store._save_arrays

    def no_space(path, variables):
        if "epoch-0002" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        save_arrays(path, variables)

    monkeypatch.setattr(checkpoint_store, "_save_arrays", no_space)
    with pytest.raises(RunError, match=r"Cannot write the checkpoint of epoch 2 .*No space left on device.*"
                                       r"1 epoch\(s\) committed"):
        fit(_config(finished / "data"), run_dir=run, verbose=0, log=lambda line: None)
    assert not list((run / "checkpoints").glob(".tmp-*")), "the failed write left its temporary folder"
    monkeypatch.setattr(checkpoint_store, "_save_arrays", save_arrays)
    # A dead process's leftovers are removed at the next start.
    (run / "checkpoints" / ".tmp-epoch-0009-12345").mkdir()
    (run / ".state.json.12345.tmp").write_text("{")
    lines = []
    fit(_config(finished / "data"), run_dir=run, verbose=0, log=lines.append)
    assert sum("left by an interrupted write" in line for line in lines) == 2
    assert _losses(_history(run)) == _losses(_history(finished / "run"))


def test_unwritable_checkpoint_folder_fails_before_training(tmp_path, finished):
    run = RunDirectory(tmp_path / "run").claim().path  # a kc2f run directory whose checkpoints/ is damaged
    (run / "checkpoints").write_text("not a folder")
    with pytest.raises(RunError, match=r"Cannot write to .*checkpoints"):
        fit(_config(finished / "data"), run_dir=run, verbose=0, log=lambda line: None)
    assert not (run / "state.json").exists()


def test_too_little_free_space_fails_before_training(tmp_path, finished, monkeypatch):
    monkeypatch.setattr(RunDirectory, "free_bytes", lambda self: 1000)
    with pytest.raises(RunError, match=r"Not enough free space in .* MB are free"):
        fit(_config(finished / "data"), run_dir=tmp_path / "run", verbose=0, log=lambda line: None)
    assert not (tmp_path / "run" / "state.json").exists()


def test_phase_epochs_that_contradict_epochs_are_an_error(tmp_path):
    with pytest.raises(RunError, match=r"--phase-epochs 1,1 add up to 2 epochs, not --epochs 4"):
        fit(_config(tmp_path / "data", epochs=4), run_dir=tmp_path / "run", verbose=0)


def test_report_marks_unfinished_runs_and_refuses_a_non_baseline(copy, finished):
    run, _ = copy
    (run / "summary.json").unlink()
    with pytest.raises(ValueError, match=r"is not a baseline run \(factors \[2, 1\]\)"):
        build_report([finished / "run"], run)
    baseline = run.parent / "baseline"
    shutil.copytree(run, baseline)
    config = json.loads((baseline / "config.json").read_text())
    (baseline / "config.json").write_text(json.dumps({**config, "factors": [1]}))
    text = format_text(build_report([run], baseline))
    assert "maxpool 2→1 (unfinished, 2 epochs)" in text and "Baseline [baseline (unfinished, 2 epochs)]" in text
