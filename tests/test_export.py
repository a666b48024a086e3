"""Tests of `kc2f.export`: the SavedModel serves the Keras model's scores in plain TensorFlow.

The SavedModel is checked in a fresh Python process that imports TensorFlow only (no kc2f,
no Keras), as a serving system would load it. Under KERAS_BACKEND=jax (or torch) the
export itself runs in a TensorFlow child process, so these tests cover both paths when
run under both backends.
"""

import json
import pathlib
import subprocess
import sys
import textwrap
import wave

import keras
import numpy as np
import pytest

import kc2f
from kc2f.export import export_run, export_version_dir, read_labels
from kc2f.inference import load_predictor, predict_files, scores_from_logits, window_starts
from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.training.run_directory import RunDirectory

from tests.conftest import backend, write_run

SAMPLE_RATE = 8000  # the "fsdd" recipe's rate; tiny and fast
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def make_run_dir(path, dataset="fsdd", labels=DIGITS, method="maxpool", train=True):
    """Writes a run directory of a tiny AST (8 kHz, 64 mel, 128 frames, hidden 16, 1 block).

    With `train`, the model is fitted for one epoch on random waveforms first, so its
    weights are not the initialisation's.

    Returns:
        `(run_dir, model)`.
    """
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = AudioSpectrogramTransformer(
        num_classes=len(labels), method=method, factor=1, sample_rate=SAMPLE_RATE, target_frames=128,
        num_mel_bins=64, fbank_mean=-7.0, fbank_std=4.0, hidden_dim=16, depth=1, num_heads=2,
        mlp_ratio=2.0, name="ast_c1",
    )
    if train:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((16, 10240)).astype("float32")
        y = rng.integers(0, len(labels), 16)
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(path / "model.keras")
    write_run(path, config={"dataset": dataset, "method": method, "factors": [1]}, labels=list(labels))
    return path, model


def write_wav(path, seconds, sample_rate=16000, channels=1, seed=0):
    """A 16-bit PCM WAV of noise and a tone, with the standard library."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    signal = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * rng.standard_normal(t.shape)
    frames = np.repeat(signal[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes((np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes())
    return pathlib.Path(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    run_dir, _ = make_run_dir(root / "run")
    RunDirectory(run_dir).write_summary({"metric": "accuracy", "final_metric": 0.75, "best_metric": 0.8,
                                         "best_epoch": 3, "epochs_trained": 4, "train_flops": 1e12})
    result = export_run(run_dir, root / "exported")
    return run_dir, pathlib.Path(result["out_dir"]), result


# Runs in a fresh interpreter: plain TensorFlow, as a serving system would.
SERVE_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    saved_model, inputs, outputs = sys.argv[1:]
    loaded = tf.saved_model.load(saved_model)
    serve = loaded.signatures["serving_default"]
    padded = loaded.signatures["serving_padded"]
    with_length = loaded.signatures["serving_with_length"]
    data = np.load(inputs)
    result = {}
    for name in ("short_1s_b8", "long_16k"):
        rate = 16000 if name.endswith("16k") else 8000
        out = serve(waveform=tf.constant(data[name]), sample_rate=tf.constant(rate))
        for key, value in out.items():
            value = value.numpy()
            result[key + "_" + name] = np.char.decode(value.astype("S")) if value.dtype == object else value
    out = padded(waveform=tf.constant(data["padded"]), sample_rate=tf.constant(16000),
                 length=tf.constant(data["padded_length"]))
    result["padded_scores"] = out["scores"].numpy()
    result["padded_windows"] = out["windows"].numpy()
    for i, n in enumerate(data["padded_length"]):
        alone = serve(waveform=tf.constant(data["padded"][i:i + 1, :n]), sample_rate=tf.constant(16000))
        result[f"alone_{i}"] = alone["scores"].numpy()
    out = with_length(waveform=tf.constant(data["short_1s_b8"]), length=tf.constant(data["length_b8"]))
    result["scores_length"] = out["scores"].numpy()
    try:
        serve(waveform=tf.constant(data["short_1s_b8"]), sample_rate=tf.constant(12345))
        result["bad_rate"] = np.array("accepted")
    except tf.errors.InvalidArgumentError as error:
        result["bad_rate"] = np.array(error.message)
    result["kc2f_imported"] = np.array(any(m.split(".")[0] == "kc2f" for m in sys.modules))
    result["labels_asset"] = np.array(open(saved_model + "/assets/labels.txt").read())
    result["signature"] = np.array(repr(serve.structured_input_signature))
    np.savez(outputs, **result)
    """
)


def test_saved_model_serves_windows_at_any_rate_in_plain_tensorflow(exported, tmp_path):
    run_dir, out_dir, _ = exported
    rng = np.random.default_rng(1)
    # Three training clips long, at 16 kHz: the model is 8 kHz.
    long_16k = write_wav(tmp_path / "long.wav", 3 * 1.28, sample_rate=16000, seed=4)
    with wave.open(str(long_16k)) as handle:
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
    inputs = {
        "short_1s_b8": (0.1 * rng.standard_normal((8, SAMPLE_RATE))).astype("float32"),
        "long_16k": (pcm / 32768.0).astype("float32")[None, :],
        "length_b8": np.array([8000, 7000, 5000, 2000, 400, 199, 1, 0], np.int32),
        "padded": (0.1 * rng.standard_normal((3, 40000))).astype("float32"),
        "padded_length": np.array([40000, 25000, 9000], np.int32),
    }
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    process = subprocess.run(
        [sys.executable, str(script), str(out_dir), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    served = np.load(tmp_path / "out.npz")
    assert not served["kc2f_imported"]
    labels_txt = str(served["labels_asset"]).splitlines()
    assert labels_txt == DIGITS
    # The rank is checked in the graph (test_saved_model_refuses_inputs_outside_its_contract_saying_why):
    # a SavedModel signature does not enforce a declared one.
    assert "sample_rate" in str(served["signature"]) and "'waveform': TensorSpec(shape=<unknown>" in str(
        served["signature"])

    # The long 16 kHz clip: the same windows and top label per window as `kc2f predict`.
    [predicted] = predict_files(run_dir, [long_16k], per_window=True, top_k=10)
    window_scores = served["window_scores_long_16k"][0]
    assert predicted["windows"] == served["windows_long_16k"][0] == len(window_scores) == 5
    for row, window in zip(window_scores, predicted["per_window"]):
        assert DIGITS[int(np.argmax(row))] == window["top"][0]["label"]
        np.testing.assert_allclose(row, [window["scores"][name] for name in DIGITS], atol=1e-4)
    np.testing.assert_allclose(served["scores_long_16k"][0], predicted["scores"], atol=1e-4)
    assert served["label_long_16k"][0] == predicted["top"][0]["label"]
    assert served["labels_long_16k"].tolist() == [labels_txt]

    # A 1 s clip at the model's rate is one window: the Keras model's scores.
    model = keras.saving.load_model(run_dir / "model.keras")
    waveform = inputs["short_1s_b8"]
    logits = keras.ops.convert_to_numpy(model.predict_on_batch(waveform))
    np.testing.assert_allclose(served["scores_short_1s_b8"], scores_from_logits(logits, False), atol=1e-5)
    np.testing.assert_allclose(served["logits_short_1s_b8"], logits, atol=1e-4)
    assert (served["windows_short_1s_b8"] == 1).all()
    logits = model.predict_on_batch({"waveform": waveform, "length": inputs["length_b8"]})
    expected = scores_from_logits(keras.ops.convert_to_numpy(logits), multilabel=False)
    np.testing.assert_allclose(served["scores_length"], expected, atol=1e-5)

    # Clips of different lengths in one padded batch score as they do alone.
    for i in range(3):
        np.testing.assert_allclose(served["padded_scores"][i], served[f"alone_{i}"][0], atol=1e-5)
    # 20000, 12500 and 4500 samples at 8 kHz; windows of 10240 every 5120.
    assert list(served["padded_windows"]) == [len(window_starts(n, 10240, 5120)) for n in (20000, 12500, 4500)]
    assert "sample_rate" in str(served["bad_rate"]) and "12345" in str(served["bad_rate"])


def test_export_layout_model_card_and_metadata(exported):
    run_dir, out_dir, result = exported
    assert out_dir.name == "1" and result["version"] == 1
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "README.md", "assets", "fingerprint.pb", "model.keras", "saved_model.pb", "variables"]
    assert sorted(p.name for p in (out_dir / "assets").iterdir()) == ["kc2f.json", "labels.txt"]
    assert read_labels(out_dir / "assets" / "labels.txt") == DIGITS
    assert (out_dir / "model.keras").read_bytes() == (run_dir / "model.keras").read_bytes()
    text = (out_dir / "assets" / "kc2f.json").read_text()
    metadata = json.loads(text)
    assert str(run_dir) not in text and str(run_dir.parent) not in text, "absolute path leaked"
    assert metadata["kc2f_version"] == kc2f.__version__ and metadata["run"] == "run"
    assert metadata["training"]["method"] == "baseline" and metadata["training"]["factors"] == [1]
    assert metadata["training"]["metric"] == "accuracy" and metadata["training"]["score"] == 0.75
    assert metadata["sample_rate"] == SAMPLE_RATE and 16000 in metadata["sample_rates"]
    assert metadata["multilabel"] is False and metadata["scores"] == "softmax"
    assert metadata["clip_seconds"] == 1.28 and metadata["factor"] == 1
    assert (metadata["window_samples"], metadata["hop_samples"]) == (10240, 5120)
    card = (out_dir / "README.md").read_text()
    for needle in ("fsdd", "accuracy", "75.00", "baseline", kc2f.__version__, "serving_default", "sample_rate"):
        assert needle in card, needle
    assert result["saved_model"] == str(out_dir)
    assert result["exported_in"] == ("process" if backend() == "tensorflow" else "child process")
    assert not list(out_dir.parent.glob(".*export-*")), "staging directory left behind"


def test_multilabel_export_at_factor_gives_sigmoid_scores(tmp_path):
    import tensorflow as tf

    from kc2f.families import family_of

    labels = ["a", "b", "c"]
    run_dir, model = make_run_dir(tmp_path / "run", dataset="manifest", labels=labels, train=False)
    result = export_run(run_dir, tmp_path / "out", factor=2)
    assert result["multilabel"] is True and result["factor"] == 2
    metadata = json.loads((tmp_path / "out" / "1" / "assets" / "kc2f.json").read_text())
    assert metadata["token_grid"] == [4, 4] and metadata["trained_factor"] == 1
    serve = tf.saved_model.load(str(tmp_path / "out" / "1")).signatures["serving_default"]
    waveform = (0.1 * np.random.default_rng(2).standard_normal((2, 8000))).astype("float32")
    out = serve(waveform=tf.constant(waveform), sample_rate=tf.constant(SAMPLE_RATE))
    logits = keras.ops.convert_to_numpy(family_of(model).at_factor(model, 2).predict_on_batch(waveform))
    np.testing.assert_allclose(out["scores"].numpy(), scores_from_logits(logits, True), atol=1e-5)
    np.testing.assert_allclose(out["scores"].numpy(), 1 / (1 + np.exp(-out["logits"].numpy())), atol=1e-6)


def test_keras_format_versions_and_overwrite(exported, tmp_path):
    run_dir, _, _ = exported
    out = tmp_path / "keras_only"
    result = export_run(run_dir, out, format="keras")
    assert result["saved_model"] is None and result["exported_in"] == "process"
    assert sorted(p.name for p in (out / "1").iterdir()) == ["README.md", "assets", "model.keras"]
    with pytest.raises(ValueError, match="exists.*--overwrite"):
        export_run(run_dir, out, format="keras")
    export_run(run_dir, out, format="keras", overwrite=True)
    export_run(run_dir, out, format="keras", version=3)
    assert sorted(p.name for p in out.iterdir()) == ["1", "3"]
    assert export_version_dir(out) == out / "3" and export_version_dir(out / "1") == out / "1"
    assert load_predictor(out).path == str(out / "3" / "model.keras")


def test_export_rejects_bad_inputs(exported, tmp_path):
    run_dir, _, _ = exported
    with pytest.raises(ValueError, match="does not exist"):
        export_run(tmp_path / "nope", tmp_path / "o")
    with pytest.raises(ValueError, match="format must be one of"):
        export_run(run_dir, tmp_path / "o", format="onnx")
    with pytest.raises(ValueError, match="factor must be an integer >= 1"):
        export_run(run_dir, tmp_path / "o", factor=0)
    with pytest.raises(ValueError, match="must not be inside the run directory"):
        export_run(run_dir, run_dir / "export")
    with pytest.raises(ValueError, match="version must be an integer >= 1"):
        export_run(run_dir, tmp_path / "o", version=0)
    stranger = tmp_path / "stranger"
    (stranger / "1").mkdir(parents=True)
    (stranger / "1" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a kc2f export"):
        export_run(run_dir, stranger, overwrite=True)
    assert (stranger / "1" / "notes.txt").read_text() == "keep me"
    no_model = tmp_path / "unfinished"
    no_model.mkdir()
    with pytest.raises(ValueError, match="has no trained model"):
        export_run(no_model, tmp_path / "o")


def test_label_count_mismatch_is_a_clear_error(exported, tmp_path):
    # Found only once the model is loaded, i.e. in the TF child process under JAX.
    run_dir, _, _ = exported
    bad = tmp_path / "bad_run"
    bad.mkdir()
    for name in ("model.keras", "config.json"):
        (bad / name).write_bytes((run_dir / name).read_bytes())
    (bad / "labels.json").write_text(json.dumps(["x", "y"]))
    with pytest.raises(ValueError, match=r"10 outputs but its label file lists 2 labels"):
        export_run(bad, tmp_path / "o")
    assert not (tmp_path / "o").exists()



BAD_INPUTS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    serve, padded, with_length = (loaded.signatures[name] for name in
                                  ("serving_default", "serving_padded", "serving_with_length"))
    wave = np.full((2, 8000), 0.1, np.float32)
    cases = {
        "1-D": lambda: serve(waveform=tf.constant(wave[0]), sample_rate=tf.constant(8000)),
        "3-D": lambda: serve(waveform=tf.constant(wave[:, :, None]), sample_rate=tf.constant(8000)),
        "NaN": lambda: serve(waveform=tf.constant(np.where(np.arange(8000) == 5, np.nan, wave)),
                             sample_rate=tf.constant(8000)),
        "empty": lambda: serve(waveform=tf.zeros([1, 0]), sample_rate=tf.constant(8000)),
        "one sample": lambda: serve(waveform=tf.zeros([1, 1]), sample_rate=tf.constant(8000)),
        "length 0": lambda: padded(waveform=tf.constant(wave), sample_rate=tf.constant(8000),
                                   length=tf.constant([8000, 0])),
        "length negative": lambda: padded(waveform=tf.constant(wave), sample_rate=tf.constant(8000),
                                          length=tf.constant([8000, -5])),
        "length beyond": lambda: padded(waveform=tf.constant(wave), sample_rate=tf.constant(8000),
                                        length=tf.constant([8000, 9000])),
        "length count": lambda: padded(waveform=tf.constant(wave), sample_rate=tf.constant(8000),
                                       length=tf.constant([8000])),
        "with_length negative": lambda: with_length(waveform=tf.constant(wave), length=tf.constant([8000, -1])),
        "with_length 1-D": lambda: with_length(waveform=tf.constant(wave[0]), length=tf.constant([8000])),
    }
    messages = {}
    for name, call in cases.items():
        try:
            call()
            messages[name] = "accepted"
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            messages[name] = type(error).__name__ + ": " + str(getattr(error, "message", error))
    # The edges of the contract are still served: one frame of samples, a zero-length row as in training.
    frame = int(np.ceil(25 * 8000 / 1000))
    messages["one frame"] = float(serve(waveform=tf.zeros([1, frame]), sample_rate=tf.constant(8000))["scores"].numpy().sum())
    messages["with_length 0"] = float(with_length(waveform=tf.constant(wave), length=tf.constant([8000, 0]))["scores"].numpy().sum())
    print(json.dumps(messages))
    """
)


def test_saved_model_refuses_inputs_outside_its_contract_saying_why(exported, tmp_path):
    _, out_dir, _ = exported
    script = tmp_path / "bad.py"
    script.write_text(BAD_INPUTS_SCRIPT)
    process = subprocess.run([sys.executable, str(script), str(out_dir)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    messages = json.loads(process.stdout.strip().splitlines()[-1])
    expected = {
        "1-D": "Shape of tensor waveform [8000] is not compatible with expected shape [?,?]",
        "3-D": "Shape of tensor waveform [2,8000,1] is not compatible", "NaN": "NaN or infinite",
        "empty": "at least one fbank frame", "one sample": "at least one fbank frame",
        "length 0": "at least one fbank frame", "length negative": "at least one fbank frame",
        "length beyond": "must not exceed the samples", "length count": "one value per clip",
        "with_length negative": "must not be negative", "with_length 1-D": "Shape of tensor waveform [8000]",
    }
    for case, words in expected.items():
        assert messages[case] != "accepted" and words in messages[case], (case, messages[case])
    assert messages["one frame"] == pytest.approx(1.0, abs=1e-5)  # softmax scores of one clip
    assert messages["with_length 0"] == pytest.approx(2.0, abs=1e-5)
