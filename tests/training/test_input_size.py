"""Issue 34 item 7: clip length, frames and mel bins are options of every layout; a folder dataset's
input is sized from its clips; clips that fill less than half of the input are warned about;
Speech Commands takes the 12-class keyword task."""

import json

import numpy as np
import pytest

from kc2f.data import manifest, registry
from kc2f.training.preparation import resolve
from kc2f.training.run_config import RunConfig
from kc2f.training.run_error import RunError
from tests.conftest import write_wav


def test_frames_are_10_ms_hops_rounded_up_to_the_models_multiple():
    assert registry.frames_for(1.28, 16) == 128
    assert registry.frames_for(1.0, 16) == 112
    assert registry.frames_for(1.0, 64) == 128
    assert registry.frames_for(10.0, 64) == 1024
    assert registry.frames_for(0.001, 16) == 16
    with pytest.raises(ValueError, match="clip_seconds"):
        registry.frames_for(0, 16)


def test_sizing_from_data_takes_the_95th_percentile_capped_by_the_recipe():
    durations = [0.01 * k for k in range(1, 101)]  # 0.01 .. 1.00 s
    assert registry.sized_from_data(durations, 10.0, 16) == (0.95, 96)
    # Every clip 1 s long (floating error included): exactly 1 s, not 1.01.
    assert registry.sized_from_data([16000 / 16000.0] * 7, 10.0, 16) == (1.0, 112)
    # Hour-long recordings are cropped to the recipe's length, as the recipe does.
    assert registry.sized_from_data([3600.0, 1800.0], 10.0, 64) == (10.0, 1024)
    # Very short clips still get one multiple of frames.
    assert registry.sized_from_data([0.02], 10.0, 32) == (0.32, 32)
    with pytest.raises(ValueError, match="no usable training clip"):
        registry.sized_from_data([], 10.0, 16)


def test_the_run_input_replaces_the_recipes():
    spec = registry.input_spec("fsdd", {"clip_seconds": 2.56, "target_frames": 256, "num_mel_bins": None})
    assert (spec.clip_seconds, spec.target_frames, spec.num_mel_bins, spec.sample_rate) == (2.56, 256, 64, 8000)
    assert spec.clip_samples == 20480
    # A run recorded before these options existed keeps the recipe.
    assert registry.input_spec("fsdd", {"dataset": "fsdd"}) == registry.DATASETS["fsdd"]


def test_resolve_derives_frames_from_a_clip_length_and_scales_specaugment():
    config, spec = resolve(RunConfig(dataset="fsdd", factors=(2, 1), clip_seconds=2.56, num_mel_bins=32))
    # 256 hops of 10 ms, already a multiple of patch 16 x factor 2.
    assert (config.target_frames, spec.target_frames, spec.clip_seconds, spec.num_mel_bins) == (256, 256, 2.56, 32)
    # FSDD's recipe masks 24 of 128 frames and 8 of 64 bins: the same shares of the new input.
    assert (config.timem, config.freqm) == (48, 4)
    # The recipe's statistics hold for its 64-bin fbank only: computed from the data instead.
    assert (config.mean, config.std) == (None, None)
    config, _ = resolve(RunConfig(dataset="fsdd", clip_seconds=2.56))
    assert (config.mean, config.std) == (registry.DATASETS["fsdd"].mean, registry.DATASETS["fsdd"].std)
    config, _ = resolve(RunConfig(dataset="fsdd", factors=(4, 1), clip_seconds=1.0))
    assert config.target_frames == 128  # 100 hops rounded up to 16 x 4
    config, spec = resolve(RunConfig(dataset="fsdd"))
    assert (config.clip_seconds, config.target_frames, config.timem) == (None, None, 24)
    assert spec == registry.DATASETS["fsdd"]
    # An explicit width is kept as given.
    config, _ = resolve(RunConfig(dataset="fsdd", clip_seconds=2.56, timem=10))
    assert config.timem == 10


def test_input_options_that_cannot_work_are_refused_up_front():
    with pytest.raises(ValueError, match="'target_frames' must be divisible by every factor"):
        RunConfig(factors=(4, 1), target_frames=126)
    with pytest.raises(ValueError, match="clip_seconds"):
        RunConfig.from_dict({"clip_seconds": 0})
    with pytest.raises(ValueError, match="keywords must be distinct"):
        RunConfig(keywords="yes,_unknown_")
    with pytest.raises(RunError, match="Option 'keywords' picks Speech Commands words; dataset 'fsdd'"):
        resolve(RunConfig(dataset="fsdd", keywords="10"))
    assert RunConfig.parse_value("clip_seconds", "1") == 1.0
    assert RunConfig.parse_value("target_frames", "128") == 128


def _folders(root, seconds, classes=("a", "b"), count=6, rate=16000):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in classes:
            for i in range(count):
                write_wav(root / split / label / f"{i}.wav", 0.1 * rng.standard_normal(int(seconds * rate)), rate)
    return root


@pytest.fixture
def folder_dataset(monkeypatch):
    # The folder layout's recipe (10 s, 1024 frames, 128 bins, timem 192), with the tiny test model.
    spec = registry.DATASETS["folder"].replace(name="user_folders")
    monkeypatch.setitem(registry.DATASETS, "user_folders", spec)
    return spec


def test_a_folder_of_one_second_clips_trains_on_one_second_inputs(tmp_path, folder_dataset):
    from kc2f.training.evaluation import evaluate_run, load_run_model
    from kc2f.training.trainer import fit

    root = _folders(tmp_path / "data", seconds=1.0)
    options = dict(dataset="user_folders", data_dir=str(root), factors=(2, 1), epochs=2, batch_size=4,
                   hidden_dim=16, depth=1, num_heads=1, warmup_steps=1, num_mel_bins=32)
    lines = []
    fit(RunConfig.from_dict(options), run_dir=tmp_path / "run", verbose=0, log=lines.append)
    text = "\n".join(lines)
    assert "Input sized from the 12 training clips" in text and "1 s per clip (100% of the clips whole" in text
    assert "128 frames (a multiple of 32)" in text  # 100 hops, patch 16 x factor 2
    assert "Warning: the training clips fill" not in text
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    # Recorded, with SpecAugment's time mask scaled from 192 of 1024 frames.
    assert (saved["clip_seconds"], saved["target_frames"], saved["timem"], saved["freqm"]) == (1.0, 128, 24, 12)
    model = load_run_model(tmp_path / "run")
    assert (model.target_frames, model.num_mel_bins) == (128, 32)
    # The run's own input at evaluation, and a resume that finds the run finished (no other options).
    rows = evaluate_run(tmp_path / "run", factors=[1, 2])
    assert [row["clips"] for row in rows] == [12, 12]
    lines = []
    fit(RunConfig.from_dict(options), run_dir=tmp_path / "run", verbose=0, log=lines.append)
    assert any("already finished" in line for line in lines)


def test_clips_that_fill_less_than_half_the_input_are_warned_about(tmp_path, folder_dataset):
    from kc2f.training.trainer import fit

    root = _folders(tmp_path / "data", seconds=0.5, count=4)
    lines = []
    fit(RunConfig(dataset="user_folders", data_dir=str(root), clip_seconds=2.0, epochs=1, batch_size=4,
                  model_options=dict(hidden_dim=16, depth=1, num_heads=1), warmup_steps=1, num_mel_bins=32),
        run_dir=tmp_path / "run", verbose=0, log=lines.append)
    warning = [line for line in lines if line.startswith("Warning: the training clips fill")]
    assert warning == ["Warning: the training clips fill 25% of the 2 s input on average (median clip 0.50 s): "
                       "most of each step's compute goes to padding. Set clip_seconds (e.g. "
                       "--set clip_seconds=0.5) to fit them."]
    assert not any("Input sized from" in line for line in lines)


def test_a_dataset_with_a_recipe_keeps_it(tmp_path):
    # FSDD's clips (median 0.42 s) would be sized to 0.67 s; its recipe's 1.28 s stands, with the warning.
    from kc2f.training.preparation import size_input

    config, spec = resolve(RunConfig(dataset="fsdd", factors=(2, 1)))
    lines = []
    sized = size_input(config, spec, [0.42] * 10 + [0.9] * 2, lines.append)
    assert (sized.clip_seconds, sized.target_frames, sized.timem) == (None, None, 24)
    assert registry.input_spec(spec, sized) == registry.DATASETS["fsdd"]
    assert len(lines) == 1 and lines[0].startswith("Warning: the training clips fill 39% of the 1.28 s input")


def _speech_commands(root, words, count=4, extra=()):
    rng = np.random.default_rng(2)
    for word in words + tuple(extra):
        for i in range(count):
            write_wav(root / word / f"{word}_{i}.wav", 0.1 * rng.standard_normal(1600), 16000)
    (root / "validation_list.txt").write_text("".join(f"{w}/{w}_0.wav\n" for w in words))
    (root / "testing_list.txt").write_text("".join(f"{w}/{w}_1.wav\n" for w in words))
    return root


def test_speech_commands_takes_the_keyword_task(tmp_path):
    others = tuple(f"other{k}" for k in range(20))
    root = _speech_commands(tmp_path / "sc", ("yes", "no", "up") + others, extra=("_background_noise_",))
    train, labels = manifest.build_index("speechcommands", root, "train", keywords="yes,no")
    assert labels == ["yes", "no", manifest.UNKNOWN]
    counts = {label: sum(e.labels == (label,) for e in train) for label in labels}
    # 2 training clips a keyword; _unknown_ keeps a sample of the 21 other words' 42 clips of that size.
    assert counts["yes"] == counts["no"] == 2 and 1 <= counts[manifest.UNKNOWN] <= 8
    again, _ = manifest.build_index("speechcommands", root, "train", keywords="yes,no")
    assert again == train  # the same sample every time
    test, _ = manifest.build_index("speechcommands", root, "test", keywords="yes,no")
    assert {e.labels[0] for e in test} <= set(labels) and sum(e.labels == ("yes",) for e in test) == 1
    # Without keywords every word is a class: the registry's 35 would refuse these 23.
    with pytest.raises(ValueError, match="has 35 classes, but the data"):
        manifest.build_index("speechcommands", root, "train")
    with pytest.raises(ValueError, match=r"no folder for the keywords \['up', 'down', 'left'"):
        manifest.build_index("speechcommands", _speech_commands(tmp_path / "few", ("yes", "no")), "train",
                             keywords="10")


def test_a_prepared_copys_unknown_and_silence_folders_are_the_tasks_classes(tmp_path):
    words = manifest.SPEECH_COMMANDS_10
    root = _speech_commands(tmp_path / "sc", words, extra=("_unknown_", "_silence_", "_background_noise_"))
    train, labels = manifest.build_index("speechcommands", root, "train", keywords="10")
    assert labels == list(words) + ["_unknown_", "_silence_"]
    assert sum(e.labels == ("_silence_",) for e in train) == 4 and sum(e.labels == ("_unknown_",) for e in train) == 4
    assert [e["folder"] for e in manifest.left_out_folders("speechcommands", root, keywords="10")] == [
        "_background_noise_"]
