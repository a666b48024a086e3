"""kc2f writes runs only where it may: a directory with a user's files is refused untouched.

`fit` claims its run directory before anything else: a new or completely empty
directory gets the `.kc2f-run` marker, a directory that kc2f made (the marker,
or a run from before the marker) is resumed, and anything else — a dotfile
included — is refused with one line, before a single file is written or removed.
Temporary files are removed only in a claimed directory, and only by kc2f's own
temporary names.
"""

import json
import os

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.training.run_directory import RunDirectory


def _tree(root):
    """`{relative path: bytes, or None for a folder}` of everything below `root`."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


def _fit(run_dir, data_dir):
    return CliRunner().invoke(main, [
        "fit", "--dataset", "synthetic", "--data-dir", str(data_dir), "--factors", "2,1",
        "--epochs", "2", "--quiet", "--run-dir", str(run_dir)])


USER_FILES = {
    "notes.txt": b"my notes",
    ".env": b"SECRET=1",
    ".git/HEAD": b"ref: refs/heads/main\n",
    # Named like kc2f's own temporaries and files: still the user's.
    ".state.json.1234.tmp": b"draft",
    ".model.99.keras": b"not a model",
    "checkpoints/.tmp-epoch-0001-7/model.npz": b"x",
    "checkpoints/.write-check.5.tmp": b"y",
    "history.csv": b"a,b\n1,2\n",
}


@pytest.mark.parametrize("files", [
    USER_FILES,
    {".git/HEAD": b"ref: refs/heads/main\n", ".env": b"A=1"},  # only dotfiles: not empty
    {"config.json": b"{\"my\": \"own config\"}", "state.json": b"[1, 2]"},  # kc2f's names, not kc2f's form
], ids=["user files", "only dotfiles", "foreign json"])
def test_a_directory_with_a_users_files_is_refused_and_left_byte_identical(tmp_path, files):
    run_dir = tmp_path / "mine"
    for name, data in files.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(data)
    before = _tree(run_dir)
    result = _fit(run_dir, tmp_path / "data")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    message = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(message) == 1 and str(run_dir) in message[0] and "did not write" in message[0], result.output
    assert _tree(run_dir) == before
    assert not (tmp_path / "data").exists()  # refused before the data was touched too


def test_a_file_as_run_directory_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"data")
    result = _fit(path, tmp_path / "data")
    assert result.exit_code != 0 and "is a file" in result.output and str(path) in result.output
    assert path.read_bytes() == b"data"


def test_new_and_empty_directories_are_claimed_with_a_marker(tmp_path):
    for run_dir in (tmp_path / "new" / "run", tmp_path / "empty"):
        if run_dir.name == "empty":
            run_dir.mkdir()
        run = RunDirectory(run_dir).claim()
        assert (run_dir / RunDirectory.MARKER).is_file() and run.is_claimed()
        assert sorted(p.name for p in run_dir.iterdir()) == [RunDirectory.MARKER]
        RunDirectory(run_dir).claim()  # claiming again is a no-op


def test_a_run_made_before_the_marker_is_resumable_and_gets_the_marker(tmp_path):
    run_dir = tmp_path / "old"
    (run_dir / "checkpoints" / "epoch-0001").mkdir(parents=True)
    (run_dir / "state.json").write_text(json.dumps({"checkpoint": "epoch-0001", "history": []}))
    assert RunDirectory(run_dir).is_claimed()
    RunDirectory(run_dir).claim()
    assert (run_dir / RunDirectory.MARKER).is_file()
    # A checkpoint folder of kc2f's form alone is proof too (state.json damaged).
    (run_dir / "state.json").write_text("{broken")
    (run_dir / RunDirectory.MARKER).unlink()
    assert RunDirectory(run_dir).is_claimed()


def test_only_kc2fs_temporaries_are_removed_and_only_from_a_claimed_directory(tmp_path):
    run_dir = tmp_path / "run"
    kc2f_temporaries = [".state.json.1234.tmp", ".model.99.keras", "checkpoints/.tmp-epoch-0002-7",
                        "checkpoints/.write-check.5.tmp", "checkpoints/epoch-0001/.model.npz.8.tmp"]
    users = [".notes.tmp", "checkpoints/.tmp-mine", "checkpoints/epoch-0001/.keep.tmp", "notes.txt"]
    for name in kc2f_temporaries + users:
        path = run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("0002-7"):
            path.mkdir()
        else:
            path.write_bytes(b"x")
    # Without a checkpoint folder of kc2f's form the directory is not kc2f's: nothing is removed.
    (run_dir / "checkpoints" / "epoch-0001").rename(run_dir / "checkpoints" / "saved")
    assert not RunDirectory(run_dir).is_claimed()
    assert RunDirectory(run_dir).remove_stale_temporaries() == []
    (run_dir / "checkpoints" / "saved").rename(run_dir / "checkpoints" / "epoch-0001")
    removed = RunDirectory(run_dir).remove_stale_temporaries()
    assert sorted(str(p.relative_to(run_dir)) for p in removed) == sorted(kc2f_temporaries)
    assert all((run_dir / name).exists() for name in users)
