"""`--model htsat` through the family seam: options, a coarse-to-fine fit, resume after SIGKILL, and the
tools around a finished run (export, predict, kc2f.load)."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import kc2f
from kc2f.families import HtsatFamily, family_of, get_family
from kc2f.families.htsat import Htsat
from kc2f.training.run_config import RunConfig
from kc2f.training.trainer import fit
from tests.conftest import REPO, cli_sets

# A two-stage HTS-AT of width 8 (64 mel bins, window 8): 64 x 8 first-stage tokens at C = 1, 16 x 8 at C = 4.
TINY_HTSAT = ("hidden_dim=8", "depth=2", "num_heads=1", "warmup_steps=2")


def test_registered_with_its_methods_and_presets():
    family = get_family("htsat")
    assert isinstance(family, HtsatFamily) and family.methods[0] == "fshift"
    assert RunConfig(model="htsat", method="fshift", preset="base").preset == "base"
    with pytest.raises(ValueError, match="for model 'htsat'"):
        RunConfig(model="htsat", method="patch-pi")
    assert family_of(Htsat(num_classes=2, target_frames=128, embed_dim=8, depths=(1,), num_heads=(1,))) is family


@pytest.fixture(scope="module")
def htsat_run(tmp_path_factory, synthetic_dir):
    """A finished tiny HTS-AT fshift 4->1 run on the synthetic set: (run dir, config, summary, log lines)."""
    lines = []
    config = RunConfig(model="htsat", method="fshift", dataset="synthetic", data_dir=str(synthetic_dir),
                       factors=(4, 1), phase_epochs=(1, 1), batch_size=8, max_train_examples=16,
                       max_eval_examples=8, model_options=dict(hidden_dim=8, depth=2, num_heads=1), warmup_steps=1,
                       num_mel_bins=16)
    run_dir = tmp_path_factory.mktemp("htsat") / "run"
    summary = fit(config, run_dir=run_dir, verbose=0, log=lines.append)
    return run_dir, config, summary, lines


def test_fit_coarse_to_fine_in_process(htsat_run):
    run_dir, config, summary, lines = htsat_run
    history = json.loads((run_dir / "history.json").read_text())
    # 128 frames x 16 mel, 4 chunks: 16 x 8 tokens at C = 1, 4 x 8 at C = 4, where the 8 x 8 windows are
    # cut to 4 x 8 (stage 1) and 2 x 4 (stage 2): the switch runs the cut-window path (issue 31 item 5).
    assert [(row["factor"], row["tokens"]) for row in history] == [(4, 32), (1, 128)]
    spec = _spec().replace(num_mel_bins=16)
    coarse = get_family("htsat").build(config.replace(freqm=2, timem=24), spec, 8, 4)
    fine = get_family("htsat").build(config.replace(freqm=2, timem=24), spec, 8, 1)
    assert [b[0].window for b in coarse.blocks] != [b[0].window for b in fine.blocks]
    assert any("C=4 -> C=1" in line and "resized nothing" in line for line in lines)
    assert history[0]["epoch_flops"] == pytest.approx(get_family("htsat").training_flops_per_sample(coarse) * 16)
    assert history[1]["epoch_flops"] > 3 * history[0]["epoch_flops"]
    assert any("C=4 -> C=1" in line for line in lines)
    assert summary["model"] == "htsat"
    classifier = kc2f.load(str(run_dir))
    wave = np.random.default_rng(0).standard_normal(20480).astype("float32") * 0.1
    result = classifier.predict(wave, sample_rate=16000)
    assert result["scores"].shape == (8,) and np.all(np.isfinite(result["scores"]))


SERVE = """
import sys, numpy as np, tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
waves = np.load(sys.argv[2])
out = serve(waveform=tf.constant(waves), sample_rate=tf.constant(16000))
np.savez(sys.argv[3], scores=out["scores"].numpy(), kc2f_imported="kc2f" in sys.modules)
"""


def test_export_serves_in_plain_tensorflow_as_kc2f_load_and_predict_score(htsat_run, tmp_path, synthetic_dir):
    from click.testing import CliRunner

    from kc2f.cli import main
    from kc2f.export import export_run

    run_dir = htsat_run[0]
    out_dir = export_run(run_dir, tmp_path / "export")["out_dir"]
    # Two clips of the synthetic set (16 kHz, 1.28 s) and one 3 s clip scored in windows.
    wavs = sorted(synthetic_dir.rglob("*.wav"))[:2]
    classifier = kc2f.load(str(run_dir))
    rng = np.random.default_rng(3)
    waves = np.stack([rng.standard_normal(48000).astype("float32") * 0.1,
                      rng.standard_normal(48000).astype("float32") * 0.3])
    np.save(tmp_path / "waves.npy", waves)
    (tmp_path / "serve.py").write_text(SERVE)
    served = subprocess.run([sys.executable, str(tmp_path / "serve.py"), str(out_dir), str(tmp_path / "waves.npy"),
                             str(tmp_path / "out.npz")], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert served.returncode == 0, served.stderr[-3000:]
    served = np.load(tmp_path / "out.npz")
    assert not served["kc2f_imported"]
    for row, wave in zip(served["scores"], waves):
        np.testing.assert_allclose(row, classifier.predict(wave, sample_rate=16000)["scores"], atol=1e-5)
    # `kc2f predict` on the run directory and on the export: the same scores per file.
    outputs = []
    for model in (run_dir, out_dir):
        result = CliRunner().invoke(main, ["predict", str(model), *map(str, wavs), "--json", "--top-k", "8"])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout))
    # Flexible resolution: the run's model at C = 4 (16 x 8 tokens, windows cut), by the CLI and by kc2f.load.
    result = CliRunner().invoke(main, ["predict", str(run_dir), str(wavs[0]), "--factor", "4", "--json",
                                       "--top-k", "8"])
    assert result.exit_code == 0, result.output
    coarse = {entry["label"]: entry["score"] for entry in json.loads(result.stdout)[0]["top"]}
    by_api = kc2f.load(str(run_dir), factor=4)
    assert by_api.predictor.factor == 4
    api = by_api.predict(str(wavs[0]), top_k=8)["top"]
    np.testing.assert_allclose([coarse[entry["label"]] for entry in api], [entry["score"] for entry in api],
                               atol=1e-5)
    fine = {entry["label"]: entry["score"] for entry in outputs[0][0]["top"]}
    assert not np.allclose([fine[label] for label in coarse], list(coarse.values()))  # another model
    for by_run, by_export, wav in zip(*outputs, wavs):
        assert by_run["file"] == by_export["file"] == str(wav)
        run_scores = {entry["label"]: entry["score"] for entry in by_run["top"]}
        export_scores = {entry["label"]: entry["score"] for entry in by_export["top"]}
        assert run_scores.keys() == export_scores.keys() and len(run_scores) == 8
        np.testing.assert_allclose([export_scores[k] for k in run_scores], list(run_scores.values()), atol=1e-5)


def _spec():
    from kc2f.data import registry

    return registry.get_dataset_spec("synthetic")


def _args(data_dir):
    return ["fit", "--model", "htsat", "--dataset", "synthetic", "--data-dir", str(data_dir), "--method", "fshift",
            "--factors", "4,1", "--phase-epochs", "1,2", "--batch-size", "8", "--quiet",
            *cli_sets(["max_train_examples=16", "max_eval_examples=8", *TINY_HTSAT])]


def _run(args, fault=None):
    env = dict(os.environ)
    env.pop("KC2F_FAULT", None)
    if fault:
        env["KC2F_FAULT"] = fault
    return subprocess.run([sys.executable, str(REPO / "tests" / "fault_injection.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_cli_fit_resumes_after_sigkill_then_exports_and_predicts(tmp_path, synthetic_dir):
    reference, run = tmp_path / "reference", tmp_path / "killed"
    done = _run([*_args(synthetic_dir), "--run-dir", str(reference)])
    assert done.returncode == 0, done.stderr[-3000:]
    killed = _run([*_args(synthetic_dir), "--run-dir", str(run)], fault="epoch:2")  # in the fine phase
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    finished = _run([*_args(synthetic_dir), "--run-dir", str(run)])
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Resuming" in finished.stdout
    expected = json.loads((reference / "history.json").read_text())
    got = json.loads((run / "history.json").read_text())
    assert [(r["factor"], r["tokens"]) for r in got] == [(4, 128), (1, 512), (1, 512)]
    for a, b in zip(got, expected):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3), (a, b)
    exported = _run(["export", str(run), "--out", str(tmp_path / "export")])
    assert exported.returncode == 0, exported.stderr[-3000:]
    wav = sorted(synthetic_dir.rglob("*.wav"))[0]
    predicted = _run(["predict", str(tmp_path / "export"), str(wav), "--json"])
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "scores" in predicted.stdout or "label" in predicted.stdout
