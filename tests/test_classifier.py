"""Tests of the Python API: `kc2f.load(...).predict`, `kc2f.fit`, plain `keras.saving.load_model`."""

import json
import subprocess
import sys
import wave

import numpy as np
import pytest

import kc2f
from kc2f.inference import predict_files

from tests.conftest import REPO, TINY_MODEL
from tests.test_export import DIGITS, make_run_dir, write_wav


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    run_dir, _ = make_run_dir(root / "run")
    files = [write_wav(root / f"clip{i}.wav", seconds, sample_rate=rate, seed=i)
             for i, (seconds, rate) in enumerate([(0.7, 8000), (3.1, 16000), (1.28, 8000), (5.0, 22050)])]
    return run_dir, files


def _pcm(path):
    with wave.open(str(path)) as handle:
        return np.frombuffer(handle.readframes(handle.getnframes()), "<i2") / 32768.0, handle.getframerate()


def test_predict_paths_batched_across_files_equals_one_by_one(setup):
    run_dir, files = setup
    classifier = kc2f.load(run_dir)
    assert classifier.labels == DIGITS and classifier.sample_rate == 8000
    batched = classifier.predict(files, batch_size=16, top_k=3)
    singles = [classifier.predict(path, batch_size=1, top_k=3) for path in files]
    assert [r["file"] for r in batched] == [str(f) for f in files]
    for got, want in zip(batched, singles):
        assert got["windows"] == want["windows"]
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-6)
        assert [e["label"] for e in got["top"]] == [e["label"] for e in want["top"]]
    # The command line's results are the same.
    for got, want in zip(batched, predict_files(run_dir, files, top_k=3)):
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-6)


def test_predict_waveforms_at_their_rate_equals_the_files(setup):
    run_dir, files = setup
    classifier = kc2f.load(run_dir)
    waveform, rate = _pcm(files[1])  # 16 kHz: resampled to the model's 8 kHz
    from_array = classifier.predict(waveform.astype("float32"), sample_rate=rate)
    from_file = classifier.predict(files[1])
    assert from_array["file"] == "waveform[0]" and from_array["windows"] == from_file["windows"]
    np.testing.assert_allclose(from_array["scores"], from_file["scores"], atol=1e-5)
    rows = np.stack([_pcm(files[2])[0]] * 2).astype("float32")  # 2-D: one clip a row
    results = classifier.predict(rows, sample_rate=8000)
    assert len(results) == 2
    np.testing.assert_allclose(results[0]["scores"], results[1]["scores"], atol=1e-6)
    mixed = classifier.predict([files[2], rows[0]], sample_rate=8000)
    np.testing.assert_allclose(mixed[0]["scores"], mixed[1]["scores"], atol=1e-6)


def test_predict_errors(setup, tmp_path):
    run_dir, files = setup
    classifier = kc2f.load(run_dir)
    with pytest.raises(ValueError, match="sample_rate is required"):
        classifier.predict(np.zeros(8000, np.float32))
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        classifier.predict(np.zeros((2, 2, 8000), np.float32), sample_rate=8000)
    missing = tmp_path / "missing.wav"
    results = classifier.predict([files[0], missing])
    assert "top" in results[0] and str(missing) in results[1]["error"]
    with pytest.raises(ValueError, match="does not exist"):
        kc2f.load(tmp_path / "nope")


def test_keras_file_loads_with_plain_keras_after_import_kc2f(setup):
    run_dir, _ = setup
    for order in ("import kc2f, keras", "import keras, kc2f"):
        script = (f"{order}\nm = keras.saving.load_model({str(run_dir / 'model.keras')!r})\n"
                  "import sys; print(type(m).__name__, m.num_classes)")
        out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split()[-2:] == ["AudioSpectrogramTransformer", "10"], out.stdout
    # `import kc2f` alone stays light: no Keras, no TensorFlow.
    out = subprocess.run([sys.executable, "-c", "import sys, kc2f; print(sorted({m.split('.')[0] for m in sys.modules} "
                          "& {'keras', 'tensorflow', 'jax'}))"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]" and out.stderr == "", (out.stdout, out.stderr)


def test_fit_mirrors_the_command_line(synthetic_dir, tmp_path):
    sets = [*TINY_MODEL, "max_train_examples=8", "max_eval_examples=8", "batch_size=4"]
    summary = kc2f.fit(run_dir=tmp_path / "run", sets=sets, dataset="synthetic", data_dir=str(synthetic_dir),
                       method="maxpool", factors="2,1", phase_epochs=(1, 1), verbose=0, log=lambda line: None)
    assert summary["factors"] == [2, 1] and summary["epochs_trained"] == 2
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_options"]["hidden_dim"] == 16 and config["method"] == "maxpool"
    assert kc2f.load(tmp_path / "run").predictor.kind == "run"


def test_waveform_input_contract(setup):
    """Integer PCM is scaled like a file's samples; what cannot be one mono clip is refused, naming it."""
    run_dir, files = setup
    classifier = kc2f.load(str(run_dir))
    pcm, rate = _pcm(files[2])
    as_float = classifier.predict(pcm.astype("float32"), sample_rate=rate)
    as_int16 = classifier.predict(np.round(pcm * 32768).astype("int16"), sample_rate=rate)
    np.testing.assert_allclose(as_int16["scores"], as_float["scores"], atol=1e-6)
    as_uint8 = classifier.predict(np.clip(np.round(pcm * 128 + 128), 0, 255).astype("uint8"), sample_rate=rate)
    np.testing.assert_allclose(as_uint8["scores"], as_float["scores"], atol=0.05)  # 8-bit quantisation
    stereo = np.stack([pcm, pcm], axis=1).astype("float32")
    frame = classifier.predictor.min_samples
    cases = [
        (stereo, r"looks like \(samples, channels\).*x\.mean\(axis=1\).*shape=\((\d+), 2\)"),
        (np.zeros(0, "float32"), r"inputs\[0\] has 0 samples .* fewer than one fbank frame"),
        (np.zeros(1, "float32"), r"inputs\[0\] has 1 samples"),
        ([pcm.astype("float32"), np.zeros(frame - 1, "float32")], rf"inputs\[1\] has {frame - 1} samples"),
        (np.array([0.1, np.nan] * 4000, "float32"), r"inputs\[0\] holds 4000 NaN or infinite samples"),
        ([pcm.astype("float32"), np.full(8000, np.inf)], r"inputs\[1\] holds 8000 NaN"),
        (np.ones(8000, bool), r"float samples or integer PCM. Received: inputs\[0\] of dtype bool"),
        ([np.ones(8000, complex)], r"dtype complex128"),
        ([np.zeros((2, 8000), "float32")], r"must be 1-D \(mono\). Received: inputs\[0\] with shape \(2, 8000\)"),
    ]
    for inputs, match in cases:
        with pytest.raises(ValueError, match=match):
            classifier.predict(inputs, sample_rate=rate)
    # The shortest clip the contract takes is scored.
    assert classifier.predict(pcm[:frame].astype("float32"), sample_rate=rate)["windows"] == 1
