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

from kc2f.export import export_run, read_labels
from kc2f.inference import scores_from_logits
from kc2f.models import AudioSpectrogramTransformer

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
    with_length = loaded.signatures["serving_with_length"]
    data = np.load(inputs)
    result = {}
    for name in data.files:
        if name.startswith("length_"):
            continue
        out = serve(waveform=tf.constant(data[name]))
        result["scores_" + name] = out["scores"].numpy()
        result["logits_" + name] = out["logits"].numpy()
    out = with_length(waveform=tf.constant(data["short_1s_b8"]), length=tf.constant(data["length_b8"]))
    result["scores_length"] = out["scores"].numpy()
    result["kc2f_imported"] = np.array(any(m.split(".")[0] == "kc2f" for m in sys.modules))
    result["labels_asset"] = np.array(open(saved_model + "/assets/labels.txt").read())
    result["signature"] = np.array(repr(serve.structured_input_signature))
    np.savez(outputs, **result)
    """
)


def test_saved_model_matches_keras_in_plain_tensorflow(exported, tmp_path):
    run_dir, out_dir, _ = exported
    rng = np.random.default_rng(1)
    inputs = {
        f"{name}_b{batch}": (0.1 * rng.standard_normal((batch, int(seconds * SAMPLE_RATE)))).astype("float32")
        for name, seconds in (("short_1s", 1.0), ("long_10s", 10.0))
        for batch in (1, 8)
    }
    inputs["length_b8"] = np.array([8000, 7000, 5000, 2000, 400, 199, 1, 0], np.int32)
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
    assert str(served["labels_asset"]).splitlines() == DIGITS
    assert "shape=(None, None)" in str(served["signature"])

    model = keras.saving.load_model(run_dir / "model.keras")
    for name, waveform in inputs.items():
        if name.startswith("length_"):
            continue
        logits = keras.ops.convert_to_numpy(model.predict_on_batch(waveform))
        expected = scores_from_logits(logits, multilabel=False)
        assert served[f"scores_{name}"].shape == (waveform.shape[0], len(DIGITS))
        np.testing.assert_allclose(served[f"scores_{name}"], expected, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(served[f"logits_{name}"], logits, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(served[f"scores_{name}"].sum(axis=1), 1.0, atol=1e-5)
    logits = model.predict_on_batch({"waveform": inputs["short_1s_b8"], "length": inputs["length_b8"]})
    expected = scores_from_logits(keras.ops.convert_to_numpy(logits), multilabel=False)
    np.testing.assert_allclose(served["scores_length"], expected, atol=1e-5)


def test_export_layout_and_summary(exported):
    run_dir, out_dir, result = exported
    for name in ("saved_model.pb", "variables", "assets/labels.txt", "assets/kc2f.json", "model.keras",
                 "labels.txt", "kc2f.json"):
        assert (out_dir / name).exists(), name
    assert read_labels(out_dir / "labels.txt") == DIGITS
    assert (out_dir / "model.keras").read_bytes() == (run_dir / "model.keras").read_bytes()
    metadata = json.loads((out_dir / "assets" / "kc2f.json").read_text())
    assert metadata["sample_rate"] == SAMPLE_RATE
    assert metadata["multilabel"] is False and metadata["scores"] == "softmax"
    assert metadata["clip_seconds"] == 1.28 and metadata["factor"] == 1
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
    metadata = json.loads((tmp_path / "out" / "kc2f.json").read_text())
    assert metadata["token_grid"] == [4, 4] and metadata["trained_factor"] == 1
    serve = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"]
    waveform = (0.1 * np.random.default_rng(2).standard_normal((2, 12000))).astype("float32")
    out = serve(waveform=tf.constant(waveform))
    logits = keras.ops.convert_to_numpy(family_of(model).at_factor(model, 2).predict_on_batch(waveform))
    np.testing.assert_allclose(out["scores"].numpy(), scores_from_logits(logits, True), atol=1e-5)
    np.testing.assert_allclose(out["scores"].numpy(), 1 / (1 + np.exp(-out["logits"].numpy())), atol=1e-6)


def test_keras_format_and_overwrite(exported, tmp_path):
    run_dir, _, _ = exported
    out = tmp_path / "keras_only"
    result = export_run(run_dir, out, format="keras")
    assert result["saved_model"] is None and result["exported_in"] == "process"
    assert sorted(p.name for p in out.iterdir()) == ["kc2f.json", "labels.txt", "model.keras"]
    with pytest.raises(ValueError, match="not empty.*--overwrite"):
        export_run(run_dir, out, format="keras")
    export_run(run_dir, out, format="keras", overwrite=True)
    assert (out / "model.keras").is_file()


def test_export_rejects_bad_inputs(exported, tmp_path):
    run_dir, _, _ = exported
    with pytest.raises(ValueError, match="does not exist"):
        export_run(tmp_path / "nope", tmp_path / "o")
    with pytest.raises(ValueError, match="format must be one of"):
        export_run(run_dir, tmp_path / "o", format="onnx")
    with pytest.raises(ValueError, match="factor must be an integer >= 1"):
        export_run(run_dir, tmp_path / "o", factor=0)
    with pytest.raises(ValueError, match="must not be the run directory"):
        export_run(run_dir, run_dir)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a kc2f export"):
        export_run(run_dir, stranger, overwrite=True)
    assert (stranger / "notes.txt").read_text() == "keep me"
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

