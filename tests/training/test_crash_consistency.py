"""SIGKILL at every write point of a run; each time the same command resumes; the end is the same.

The write points are enumerated from an uninterrupted run (`tests/fault_injection.py`,
`count:`): every durable step of each epoch's commit (the first one is the
phase switch's), the history views written after it, and the finished run's
files. Then chains of processes, each killed at one point and resumed by the
next: one chain through every point up to and including the commits, in
order, and one chain per view-writing step (a resumed process rewrites the
views of a commit at start, so a chain dies there once per epoch). Each
chain's last process finishes the run, whose history, FLOPs counters and
final weights must equal the uninterrupted run's.
"""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from kc2f.families import load_model

from tests.conftest import REPO

def _args(tmp_path, run_dir):
    return [
        "fit", "--dataset", "synthetic", "--data-dir", str(tmp_path / "data"), "--method", "maxpool",
        "--factors", "2,1", "--phase-epochs", "1,1", "--batch-size", "4", "--quiet",
        "--set", "max_train_examples=8", "--set", "max_eval_examples=4", "--set", "hidden_dim=16",
        "--set", "depth=1", "--set", "num_heads=1", "--set", "warmup_steps=1", "--set", "jit=off",
        "--set", "keep_checkpoints=1", "--run-dir", str(run_dir),
    ]


def _fit(tmp_path, run_dir, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "KC2F_FAULT"}
    if fault:
        env["KC2F_FAULT"] = fault
    return subprocess.run([sys.executable, str(REPO / "tests" / "fault_injection.py"), *_args(tmp_path, run_dir)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _weights(run_dir):
    model = load_model(run_dir / "model.keras")
    return [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.weights]


@pytest.mark.slow  # ~30 processes, 5-13 min on 2 cores; the default tier's SIGKILL/resume check is
# tests/training/test_resume.py (a kill in each phase and one inside a checkpoint write)
def test_sigkill_at_every_write_point_resumes_to_the_same_run(tmp_path):
    points_file = tmp_path / "points.txt"
    reference = tmp_path / "reference"
    done = _fit(tmp_path, reference, f"count:{points_file}")
    assert done.returncode == 0, done.stderr[-3000:]
    points = points_file.read_text().splitlines()  # a point may hold a space ("prune epoch-0001")
    kinds = {point.split("|", 1)[1] for point in points}
    # Both commits (the phase switch's and the last epoch's) and the finished run's files.
    assert {"model.npz|after", "optimizer.npz|after", "checkpoint|before", "checkpoint|after",
            "state.json|before", "state.json|after", "history.json|before", "history.csv|after",
            "model.keras|before", "summary.json|after"} <= kinds, kinds
    assert any(point.startswith("epoch-0001|") for point in points)

    # Points after an epoch's commit (its history views, pruning) are reached only by a
    # process that made that commit; they get chains of their own.
    after_commit = [p for p in points if p.split("|")[1].startswith(("history.", "prune"))]
    chains = {"commits": [p for p in points if p not in after_commit]}
    for point in after_commit:
        chains.setdefault(point.split("|", 1)[1], []).append(point)
    for name, chain in chains.items():
        run = tmp_path / f"killed-{len(list(tmp_path.glob('killed-*')))}"
        for point in chain:
            killed = _fit(tmp_path, run, f"kill:{point}")
            assert killed.returncode == -signal.SIGKILL, (name, point, killed.stdout[-2000:], killed.stderr[-2000:])
        finished = _fit(tmp_path, run)
        assert finished.returncode == 0, (name, finished.stderr[-3000:])
        _check_same_run(run, reference)
    print(f"{len(points)} write points, {len(chains)} chains: killed, resumed, same run")


def _check_same_run(run, reference):
    expected = json.loads((reference / "state.json").read_text())
    got = json.loads((run / "state.json").read_text())
    assert [(r["epoch"], r["phase"], r["factor"]) for r in got["history"]] == \
        [(r["epoch"], r["phase"], r["factor"]) for r in expected["history"]]
    assert got["counters"]["flops"] == expected["counters"]["flops"]
    for a, b in zip(got["history"], expected["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4) and a["val_metric"] == b["val_metric"]
    assert json.loads((run / "history.json").read_text()) == got["history"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_trained"] == 2 and summary["train_flops"] == expected["counters"]["flops"]
    for a, b in zip(_weights(run), _weights(reference)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not [p.name for p in run.rglob(".*tmp*")], "temporary files left behind"
