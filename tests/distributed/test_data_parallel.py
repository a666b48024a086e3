"""`distribute="data-parallel"` on 2 virtual CPU devices (XLA host devices on JAX,
logical CPU devices on TensorFlow) follows the single-device run of the same
global batch and seed through a 2-phase coarse-to-fine fit."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kc2f.training.distribution import Distribution
from tests.conftest import REPO, TINY_MODEL, backend

SCRIPT = REPO / "tests" / "distributed" / "_fit_on_two_devices.py"
# On the embedded synthetic dataset (`data_dir=` the `synthetic_dir` fixture).
SETS = [
    "dataset=synthetic", "method=maxpool", "factors=2,1", "phase_epochs=2,1", "batch_size=8",
    "max_train_examples=24", "max_eval_examples=9", *TINY_MODEL, "seed=3", "mixup=0.5",
]
# JAX draws SpecAugment masks and dropout for the global batch, exactly as one
# device does. tf.distribute runs the model once per replica with the same
# generator state, so there the masks differ from a single device's (and repeat
# across replicas): compare without them on TensorFlow.
AUGMENT = {"jax": ["freqm=8", "timem=8", "dropout_rate=0.1"],
           "tensorflow": ["freqm=0", "timem=0", "dropout_rate=0.0"]}


@pytest.mark.skipif(backend() not in AUGMENT, reason="data-parallel runs on jax and tensorflow")
def test_two_device_data_parallel_fit_matches_single_device(tmp_path, synthetic_dir):
    import keras

    import kc2f.models  # noqa: F401  (registers the model class for load_model)

    env = {k: v for k, v in os.environ.items() if k not in ("KC2F_FAULT", "TF_CONFIG", "XLA_FLAGS")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), *SETS, f"data_dir={synthetic_dir}", *AUGMENT[backend()]],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "devices: 2" in done.stdout
    assert "data-parallel over 2 replicas in 1 process(es)" in done.stdout

    runs = {name: tmp_path / name for name in ("single", "parallel")}
    summaries = {n: json.loads((d / "summary.json").read_text()) for n, d in runs.items()}
    assert (summaries["single"]["replicas"], summaries["parallel"]["replicas"]) == (1, 2)
    histories = {n: json.loads((d / "history.json").read_text()) for n, d in runs.items()}
    single, parallel = histories["single"], histories["parallel"]
    assert [(r["phase"], r["factor"]) for r in parallel] == [(1, 2), (1, 2), (2, 1)]
    for a, b in zip(single, parallel):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), (a, b)
        assert b["val_metric"] == pytest.approx(a["val_metric"], abs=1e-6)
        # FLOPs are global: the same samples are trained, split or not.
        assert b["cumulative_flops"] == a["cumulative_flops"]
    models = {n: keras.saving.load_model(d / "model.keras") for n, d in runs.items()}
    worst = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                for a, b in zip(models["single"].weights, models["parallel"].weights))
    assert worst < 1e-5


def test_distribution_refuses_bad_settings(monkeypatch):
    with pytest.raises(ValueError, match="distribute must be one of"):
        Distribution("model-parallel")
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 0}}))
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    with pytest.raises(ValueError, match="multi-process job.*distribute='none'"):
        Distribution("none")
    monkeypatch.delenv("KERAS_DISTRIBUTION_NUM_PROCESSES")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    if backend() == "tensorflow":
        with pytest.raises(ValueError, match="TF_CONFIG is not a valid cluster description"):
            Distribution("none")


def test_global_batch_must_split_evenly():
    dist = Distribution("none")
    dist.check_batch_size(7)
    dist.num_replicas = 4
    dist.check_batch_size(8)
    with pytest.raises(ValueError, match="multiple of the 4 replicas. Received: batch_size=10"):
        dist.check_batch_size(10)
