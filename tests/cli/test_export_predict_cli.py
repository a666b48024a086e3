"""`kc2f export` and `kc2f predict` through click's CliRunner (commands invoked directly)."""

import json

import pytest
from click.testing import CliRunner

from kc2f.commands.export import export
from kc2f.commands.predict import predict

from tests.test_export import DIGITS, make_run_dir, write_wav


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    run_dir, _ = make_run_dir(root / "run")
    long_file = write_wav(root / "long.wav", 30.0, sample_rate=8000, seed=4)
    clip = write_wav(root / "clip.wav", 1.0, sample_rate=22050, seed=5)
    corrupt = root / "broken.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    result = CliRunner().invoke(export, [str(run_dir), "--out", str(root / "exported")])
    assert result.exit_code == 0, result.output
    assert "Exported SavedModel + .keras" in result.output
    return root, run_dir, {"long": long_file, "clip": clip, "corrupt": corrupt}


def test_export_command_errors(setup):
    root, run_dir, _ = setup
    runner = CliRunner()
    result = runner.invoke(export, [str(run_dir), "--out", str(root / "exported")])
    assert result.exit_code != 0
    assert "exists" in result.output and "--overwrite" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(export, [str(run_dir), "--out", str(root / "x"), "--factor", "0"])
    assert result.exit_code != 0 and "--factor" in result.output
    result = runner.invoke(export, [str(run_dir), "--out", str(root / "k"), "--format", "keras", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["saved_model"] is None


@pytest.mark.parametrize("kind", ["run", "keras", "saved_model"])
def test_predict_windows_and_bad_file(setup, kind):
    root, run_dir, files = setup
    model = {"run": run_dir, "keras": run_dir / "model.keras", "saved_model": root / "exported"}[kind]
    args = [str(model), str(files["long"]), str(files["corrupt"]), str(files["clip"]),
            "--json", "--top-k", "3"]
    result = CliRunner().invoke(predict, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"Error: {files['corrupt']}:" in result.stderr
    assert "1 of 3 files could not be predicted" in result.stderr
    long, bad, clip = json.loads(result.stdout)
    assert long["file"] == str(files["long"]) and long["windows"] == 46  # 1 + ceil((30 - 1.28) / 0.64)
    assert len(long["top"]) == 3 and long["top"][0]["label"] in DIGITS
    assert str(files["corrupt"]) in bad["error"]
    assert clip["windows"] == 1 and "per_window" not in clip


def test_predict_text_output(setup):
    root, run_dir, files = setup
    args = [str(run_dir), str(files["long"]), "--window", "1", "--hop", "0.5",
            "--aggregate", "max", "--per-window"]
    result = CliRunner().invoke(predict, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{files['long']}  (30.00 s, 59 windows of 1 s, hop 0.5 s, max)")
    assert len([line for line in lines if line.strip().startswith("[")]) == 59  # 1 + ceil(29 / 0.5)
    assert lines[1].strip().startswith("1. ")


def test_predict_command_errors(setup, tmp_path):
    root, run_dir, files = setup
    runner = CliRunner()
    result = runner.invoke(predict, [str(run_dir), str(files["clip"]), "--window", "5"])
    assert result.exit_code != 0 and "window" in result.output and "1.295" in result.output
    result = runner.invoke(predict, [str(root / "exported"), str(files["clip"]), "--factor", "2"])
    assert result.exit_code != 0 and "--factor applies" in result.output
    result = runner.invoke(predict, [str(tmp_path), str(files["clip"])])
    assert result.exit_code != 0 and "MODEL must be" in result.output
    result = runner.invoke(predict, [str(run_dir)])
    assert result.exit_code != 0 and "FILE" in result.output
    assert "Traceback" not in result.output
