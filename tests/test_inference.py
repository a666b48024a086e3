"""Tests of `kc2f.inference`: sliding windows, aggregation, model references, bad files."""

import math
import shutil

import numpy as np
import pytest

from kc2f.export import export_run
from kc2f.inference import load_predictor, predict_files, scores_from_logits, window_starts

from tests.test_export import DIGITS, make_run_dir, write_wav


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    run_dir, _ = make_run_dir(root / "run")
    files = {
        # 16 kHz stereo: decoded, mixed to mono and resampled to the model's 8 kHz.
        "long": write_wav(root / "long.wav", 30.0, sample_rate=16000, channels=2, seed=1),
        "short": write_wav(root / "short.wav", 0.5, sample_rate=8000, seed=2),
        "clip": write_wav(root / "clip.wav", 1.28, sample_rate=8000, seed=3),
    }
    corrupt = root / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    files["corrupt"] = corrupt
    return root, run_dir, files


def test_window_starts():
    assert window_starts(100, 200, 100) == [0]
    assert window_starts(200, 200, 100) == [0]
    assert window_starts(201, 200, 100) == [0, 100]
    assert window_starts(300, 200, 100) == [0, 100]
    assert window_starts(301, 200, 100) == [0, 100, 200]
    # 30 s at 8 kHz, 1.28 s windows, 0.64 s hop: 1 + ceil((30 - 1.28) / 0.64).
    assert len(window_starts(240000, 10240, 5120)) == 1 + math.ceil((30 - 1.28) / 0.64) == 46


def test_scores_from_logits():
    logits = np.array([[0.0, 1.0, -2.0]])
    np.testing.assert_allclose(scores_from_logits(logits, False).sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(scores_from_logits(logits, True), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    assert scores_from_logits(np.array([[1000.0, 0.0]]), False)[0, 0] == 1.0  # no overflow


def test_long_file_is_windowed_and_aggregated(setup):
    _, run_dir, files = setup
    [mean] = predict_files(run_dir, [files["long"]], per_window=True)
    assert mean["windows"] == 46 and len(mean["per_window"]) == 46
    assert mean["window"] == 1.28 and mean["hop"] == 0.64
    assert mean["duration"] == pytest.approx(30.0)
    assert mean["per_window"][0]["start"] == 0.0 and mean["per_window"][-1]["end"] == pytest.approx(30.0)
    assert [e["score"] for e in mean["top"]] == sorted((e["score"] for e in mean["top"]), reverse=True)
    assert len(mean["top"]) == 5 and {e["label"] for e in mean["top"]} <= set(DIGITS)
    windows = np.array([[w["scores"][name] for name in DIGITS] for w in mean["per_window"]])
    np.testing.assert_allclose(windows.sum(axis=1), 1.0, atol=1e-5)
    for entry in mean["top"]:
        assert entry["score"] == pytest.approx(windows[:, entry["index"]].mean(), abs=1e-6)
    [peak] = predict_files(run_dir, [files["long"]], aggregate="max", hop=1.28, top_k=20, per_window=True)
    assert peak["windows"] == 1 + math.ceil((30 - 1.28) / 1.28)
    assert len(peak["top"]) == len(DIGITS)  # top_k is capped at the class count
    windows = np.array([[w["scores"][name] for name in DIGITS] for w in peak["per_window"]])
    for entry in peak["top"]:
        assert entry["score"] == pytest.approx(windows[:, entry["index"]].max(), abs=1e-6)
    # The windows at the same offsets score the same whatever the hop.
    same_offsets = [[w["scores"][n] for n in DIGITS] for w in mean["per_window"][::2]]
    np.testing.assert_allclose(windows[:23], same_offsets, atol=1e-6)

def test_bad_files_are_reported_and_the_others_predicted(setup):
    root, run_dir, files = setup
    seen = []
    results = predict_files(
        run_dir, [files["corrupt"], files["short"], root / "missing.wav", files["clip"]],
        on_result=seen.append,
    )
    assert seen == results
    assert [("error" in r) for r in results] == [True, False, True, False]
    assert str(files["corrupt"]) in results[0]["error"] and "corrupt" in results[0]["error"]
    assert "missing.wav" in results[2]["error"] and "does not exist" in results[2]["error"]
    assert results[1]["windows"] == 1 and results[3]["windows"] == 1


def test_a_directory_and_a_clip_shorter_than_a_frame_are_named(setup):
    root, run_dir, files = setup
    tiny = write_wav(root / "one_sample.wav", 1 / 8000, sample_rate=8000, seed=4)
    results = predict_files(run_dir, [root, tiny, files["clip"]])
    assert results[0]["error"] == f"{root}: is a directory, not an audio file"
    # Refused as an array of one sample is (the input contract), the other files still predicted.
    assert results[1] == {"file": str(tiny), "error": f"{tiny}: only 1 samples (0.1 ms at 8000 Hz), shorter than "
                          "one fbank frame (200 samples): there is nothing to score"}
    assert "top" in results[2] and "error" not in results[2]


def test_run_dir_keras_file_and_saved_model_agree(setup, tmp_path):
    _, run_dir, files = setup
    exported = export_run(run_dir, tmp_path / "exported")["out_dir"]
    keras_dir = tmp_path / "bare"
    keras_dir.mkdir()
    shutil.copy(run_dir / "model.keras", keras_dir / "digits.keras")
    with pytest.raises(ValueError, match="No labels for .*digits.keras.*--labels"):
        predict_files(keras_dir / "digits.keras", [files["clip"]])
    (keras_dir / "labels.txt").write_text("\n".join(DIGITS) + "\n")
    with pytest.raises(ValueError, match="--factor applies to run directories"):
        load_predictor(exported, factor=2)
    inputs = [files["clip"], files["long"]]
    by_kind = {}
    for kind, ref in (("run", run_dir), ("keras", keras_dir / "digits.keras"), ("saved_model", exported)):
        assert load_predictor(ref).kind == kind
        by_kind[kind] = predict_files(ref, inputs, window=1.28, per_window=True)
    for kind in ("keras", "saved_model"):
        for got, want in zip(by_kind[kind], by_kind["run"]):
            assert got["windows"] == want["windows"]
            assert [e["label"] for e in got["top"]] == [e["label"] for e in want["top"]]
            for a, b in zip(got["per_window"], want["per_window"]):
                np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()), atol=1e-5)


def test_keras_export_dir_and_labels_option(setup, tmp_path):
    _, run_dir, files = setup
    out = export_run(run_dir, tmp_path / "k", format="keras")["out_dir"]
    predictor = load_predictor(out)
    assert predictor.kind == "keras" and predictor.clip_seconds == 1.28 and predictor.multilabel is False
    custom = tmp_path / "names.json"
    custom.write_text('["' + '","'.join(f"c{i}" for i in range(10)) + '"]')
    [result] = predict_files(out, [files["clip"]], labels=custom)
    assert result["top"][0]["label"].startswith("c")
    [result] = predict_files(out, [files["clip"]], multilabel=True, top_k=10)
    assert sum(e["score"] for e in result["top"]) != pytest.approx(1.0)


def test_flexible_resolution_factor(setup):
    _, run_dir, files = setup
    predictor = load_predictor(run_dir, factor=2)
    assert predictor.factor == 2
    [result] = predict_files(predictor, [files["clip"]])
    assert result["windows"] == 1


def test_option_errors(setup, tmp_path):
    _, run_dir, files = setup
    clip = [files["clip"]]
    with pytest.raises(ValueError, match="input span of 1.295 s.*window=3"):
        predict_files(run_dir, clip, window=3.0)
    with pytest.raises(ValueError, match="hop must not exceed window"):
        predict_files(run_dir, clip, window=1.0, hop=1.5)
    with pytest.raises(ValueError, match="aggregate must be one of"):
        predict_files(run_dir, clip, aggregate="median")
    with pytest.raises(ValueError, match="top_k must be"):
        predict_files(run_dir, clip, top_k=0)
    with pytest.raises(ValueError, match="window must be a positive"):
        predict_files(run_dir, clip, window=-1.0)
    with pytest.raises(ValueError, match="does not exist"):
        predict_files(tmp_path / "nothing", clip)
    with pytest.raises(ValueError, match="MODEL must be"):
        predict_files(files["clip"], clip)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    (tmp_path / "labels.json").write_text('["a"]')
    with pytest.raises(ValueError, match="Cannot load the Keras model .*broken.keras"):
        predict_files(broken, clip)
