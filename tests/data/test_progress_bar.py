"""Progress bars: count, rate and ETA on stderr when forced or on a terminal, nothing otherwise."""

import os

import pytest

from kc2f.data import Example, get_dataset_spec
from kc2f.data.bad_audio import validate_audio
from kc2f.data.progress_bar import ProgressBar, progress_wanted

from ._fixtures import band_limited_signal, write_wav


def test_forced_bar_shows_count_rate_and_eta_on_stderr(capsys):
    with ProgressBar("scan", 5, unit="clips", show_progress=True) as bar:
        for _ in range(5):
            bar.advance()
    out, err = capsys.readouterr()
    assert out == ""
    assert "scan" in err and "5/5" in err and "clips/s" in err and "ETA" in err


def test_hidden_bar_writes_nothing(capsys, monkeypatch):
    monkeypatch.setenv("KC2F_PROGRESS", "1")
    with ProgressBar("scan", 3, show_progress=False) as bar:  # an explicit False (quiet) wins
        bar.advance(3)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("env, expected", [("1", True), ("0", False)])
def test_environment_forces_the_default(monkeypatch, env, expected):
    monkeypatch.setenv("KC2F_PROGRESS", env)
    assert progress_wanted(None) is expected
    assert progress_wanted(not expected) is (not expected)


def test_not_a_terminal_means_no_bar(monkeypatch):
    monkeypatch.delenv("KC2F_PROGRESS", raising=False)
    assert progress_wanted(None) is False  # pytest's captured stderr is no TTY


def test_the_scan_draws_its_bar(tmp_path, capsys):
    examples = []
    for i in range(3):
        path = str(tmp_path / f"{i}.wav")
        write_wav(path, band_limited_signal(8000, 0.2, seed=i), 8000)
        examples.append(Example(path, ("x",), path))
    spec = get_dataset_spec("folder")
    validate_audio(examples, spec, scan_cache=False, show_progress=True)
    err = capsys.readouterr().err
    assert "scan" in err and "3/3" in err
    validate_audio(examples, spec, scan_cache=False, show_progress=False)
    assert capsys.readouterr().err == ""
    assert os.path.exists(examples[0].path)


def test_negative_total_is_refused():
    with pytest.raises(ValueError, match="Received: total=-1"):
        ProgressBar("x", -1)
