"""The PyTorch backend: `kc2f fit`, `evaluate` and `predict` under `KERAS_BACKEND=torch`.

The backend is fixed per process, so each command runs in a subprocess. Skipped, with the
reason, where torch is not installed (it is no dependency of kc2f: README "Supported versions");
`.ci/run` installs it.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, backend

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                       reason="torch is not installed (pip install torch)"),
    # The commands run under torch whatever this process's backend: once is enough.
    pytest.mark.skipif(backend() != "tensorflow", reason="runs once, in the TensorFlow tier"),
]

TINY = ["--set", "hidden_dim=16", "--set", "depth=1", "--set", "num_heads=1",
        "--set", "max_train_examples=40", "--set", "max_eval_examples=20", "--batch-size", "8", "--quiet"]


def kc2f(*args):
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "kc2f.cli", *args], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_torch_backend_trains_both_phases_evaluates_and_predicts(tmp_path):
    data, run_dir = tmp_path / "synthetic", tmp_path / "run"
    out = kc2f("fit", "--data-dir", str(data), "--factors", "2,1", "--phase-epochs", "1,1",
               "--run-dir", str(run_dir), *TINY)
    assert "Phase 2: C=2 -> C=1" in out
    history = json.loads((run_dir / "history.json").read_text())
    assert [(r["phase"], r["factor"], r["tokens"]) for r in history] == [(1, 2, 16), (2, 1, 32)]
    assert all(r["loss"] == r["loss"] and r["loss"] > 0 for r in history)  # finite, not NaN
    assert history[1]["cumulative_flops"] > history[0]["cumulative_flops"] > 0

    rows = json.loads(kc2f("evaluate", str(run_dir), "--json"))
    assert abs(rows[0]["metric"] - history[-1]["val_metric"]) < 1e-6

    clip = next((data / "test").rglob("*.wav"))
    predicted = json.loads(kc2f("predict", str(run_dir), str(clip), "--json"))
    labels = json.loads((run_dir / "labels.json").read_text())
    assert predicted[0]["top"][0]["label"] in labels
