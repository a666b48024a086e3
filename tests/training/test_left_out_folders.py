"""Issue 34 item 6: folders a layout does not read are named, counted and can be read as classes."""

import json

import numpy as np
import pytest

from kc2f.data import manifest, registry
from tests.conftest import write_wav


def _tree(root, splits=("train", "test")):
    """Classes a, b; `_silence_` (a class in prepared Speech Commands copies), `_background_noise_`
    (not a class), `.cache` (hidden, with audio) and `.git` (no audio), in each split folder."""
    rng = np.random.default_rng(0)
    for split in splits:
        for folder, count in (("a", 4), ("b", 4), ("_silence_", 3), ("_background_noise_", 2), (".cache", 1)):
            for i in range(count):
                write_wav(root / split / folder / f"{i}.wav", 0.1 * rng.standard_normal(8000), 16000)
        (root / split / ".git").mkdir()
        (root / split / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


def test_left_out_folders_are_named_with_their_file_counts(tmp_path):
    root = _tree(tmp_path / "data")
    left = manifest.left_out_folders("folder", root)
    assert [(e["folder"], e["files"]) for e in left] == [
        ("test/.cache", 1), ("test/_background_noise_", 2), ("test/_silence_", 3),
        ("train/.cache", 1), ("train/_background_noise_", 2), ("train/_silence_", 3)]
    assert "--set include_folders=_silence_" in left[2]["reason"] and "hidden" in left[0]["reason"]
    _, labels = manifest.build_index("folder", root, "train")
    assert labels == ["a", "b"]

    examples, labels = manifest.build_index("folder", root, "train", include_folders="_silence_")
    assert labels == ["_silence_", "a", "b"] and len(examples) == 11
    assert [e["folder"] for e in manifest.left_out_folders("folder", root, include_folders="_silence_")] == [
        "test/.cache", "test/_background_noise_", "train/.cache", "train/_background_noise_"]


def test_the_speech_commands_layout_follows_the_same_rule(tmp_path):
    root = tmp_path / "sc"
    rng = np.random.default_rng(1)
    for word, count in (("yes", 2), ("no", 2), ("_unknown_", 2), ("_background_noise_", 1)):
        for i in range(count):
            write_wav(root / word / f"{i}.wav", 0.1 * rng.standard_normal(1600), 16000)
    (root / "validation_list.txt").write_text("yes/0.wav\n")
    (root / "testing_list.txt").write_text("no/0.wav\n")
    assert [(e["folder"], e["files"]) for e in manifest.left_out_folders("speechcommands", root)] == [
        ("_background_noise_", 1), ("_unknown_", 2)]
    assert [e["folder"] for e in manifest.left_out_folders("speechcommands", root, include_folders="_unknown_")] \
        == ["_background_noise_"]
    # A layout that reads listed files leaves no folder out.
    assert manifest.left_out_folders("fsdd", root) == []


def test_a_run_logs_and_records_what_it_left_out_and_reads_included_folders_as_classes(
        tmp_path, monkeypatch):
    from kc2f.training.run_config import RunConfig
    from kc2f.training.trainer import fit

    root = _tree(tmp_path / "data")
    spec = registry.DATASETS["synthetic"].replace(name="folders", layout="folder", num_classes=None,
                                                  mean=None, std=None)
    monkeypatch.setitem(registry.DATASETS, "folders", spec)
    options = dict(dataset="folders", data_dir=str(root), factors=(1,), epochs=1, batch_size=4, hidden_dim=16,
                   depth=1, num_heads=1, warmup_steps=1)
    lines = []
    summary = fit(RunConfig.from_dict(options), run_dir=tmp_path / "run", verbose=0, log=lines.append)
    assert "Left out: train/_silence_ (3 audio files): its name starts with '_'" in "\n".join(lines)
    recorded = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [(e["folder"], e["files"]) for e in recorded["left_out"]] == [
        (e["folder"], e["files"]) for e in summary["left_out"]] and len(recorded["left_out"]) == 6
    assert json.loads((tmp_path / "run" / "labels.json").read_text()) == ["a", "b"]

    lines = []
    summary = fit(RunConfig.from_dict({**options, "include_folders": "_silence_"}), run_dir=tmp_path / "run2",
                  verbose=0, log=lines.append)
    assert json.loads((tmp_path / "run2" / "labels.json").read_text()) == ["_silence_", "a", "b"]
    assert {e["folder"] for e in summary["left_out"]} == {
        "train/.cache", "train/_background_noise_", "test/.cache", "test/_background_noise_"}


@pytest.mark.parametrize("value", ["_silence_", "_silence_, _unknown_"])
def test_include_folders_is_a_run_option(value):
    from kc2f.training.run_config import RunConfig

    assert RunConfig.parse_value("include_folders", value) == value
