"""Two worker processes on localhost train one data-parallel run (TensorFlow
`MultiWorkerMirroredStrategy` from `TF_CONFIG`, or JAX multi-process from
`KERAS_DISTRIBUTION_*`); one worker is killed mid-run, the job is restarted,
resumes from the chief's checkpoint and finishes with the uninterrupted run's
results."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_MODEL, backend, cli_sets

pytestmark = pytest.mark.skipif(backend() not in ("jax", "tensorflow"),
                                reason="multi-process runs on jax and tensorflow")

# On the embedded synthetic dataset (`--data-dir` the `synthetic_dir` fixture).
ARGS = [
    "fit", "--dataset", "synthetic", "--method", "maxpool",
    "--factors", "2,1", "--phase-epochs", "2,2", "--batch-size", "8", "--quiet",
    *cli_sets(["max_train_examples=24", "max_eval_examples=8", *TINY_MODEL, "freqm=0", "timem=0"]),
]
TIMEOUT = 420


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _base_env():
    drop = ("KC2F_FAULT", "TF_CONFIG", "XLA_FLAGS", "KERAS_DISTRIBUTION_JOB_ADDRESSES",
            "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _worker_env(index, ports):
    env = _base_env()
    addresses = [f"localhost:{p}" for p in ports]
    if backend() == "tensorflow":
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
    else:
        env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=",".join(addresses),
                   KERAS_DISTRIBUTION_NUM_PROCESSES=str(len(ports)),
                   KERAS_DISTRIBUTION_PROCESS_ID=str(index))
    return env


def _start_job(data_dir, run_dir, logs, fault_worker=None, fault=None):
    ports = _free_ports(2)
    workers = []
    for index in range(2):
        env = _worker_env(index, ports)
        if index == fault_worker:
            env["KC2F_FAULT"] = fault
        log = open(logs / f"worker{index}-{len(list(logs.iterdir()))}.log", "w")
        workers.append(subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fault_injection.py"), *ARGS, "--data-dir", str(data_dir),
             "--distribute", "data-parallel", "--run-dir", str(run_dir)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        ))
        workers[-1].log_path = log.name
    return workers


def _output(worker):
    with open(worker.log_path) as handle:
        return handle.read()


def _history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


def test_two_workers_killed_mid_run_resume_and_finish(tmp_path, synthetic_dir):
    reference = tmp_path / "reference"
    done = subprocess.run([sys.executable, "-m", "kc2f.cli", *ARGS, "--data-dir", str(synthetic_dir),
                           "--run-dir", str(reference)],
                          cwd=REPO, env=_base_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]

    run, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    # Worker 1 dies (SIGKILL) right after training epoch 3, in phase 2. The chief
    # then waits in vain on its peer; the job is torn down as a scheduler would.
    chief, victim = _start_job(synthetic_dir, run, logs, fault_worker=1, fault="epoch:3")
    assert victim.wait(timeout=TIMEOUT) == -signal.SIGKILL, _output(victim)[-3000:]
    chief.kill()
    chief.wait(timeout=60)
    first_pids = {chief.pid, victim.pid}
    epochs_before = len(_history(run))
    assert 2 <= epochs_before <= 3, epochs_before

    workers = _start_job(synthetic_dir, run, logs)
    for worker in workers:
        assert worker.wait(timeout=TIMEOUT) == 0, _output(worker)[-4000:]
    chief_log, other_log = (_output(w) for w in workers)
    assert f"Resuming {run} after epoch {epochs_before}" in chief_log
    assert "2 replicas in 2 process(es)" in chief_log and "the chief" in chief_log
    assert "the chief" not in other_log

    expected, got = _history(reference), _history(run)
    assert [(r["epoch"], r["phase"], r["factor"]) for r in got] == [
        (r["epoch"], r["phase"], r["factor"]) for r in expected]
    for a, b in zip(expected, got):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), (a, b)
    assert got[-1]["cumulative_flops"] == expected[-1]["cumulative_flops"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_trained"] == 4 and summary["replicas"] == 2
    # Only the chief writes: no event file, checkpoint or temp file of another pid.
    writers = {workers[0].pid, chief.pid}
    others = (first_pids | {w.pid for w in workers}) - writers
    names = [p.name for p in run.rglob("*")]
    assert not [n for n in names for pid in others if f".{pid}." in n or n.endswith(f"-{pid}")]
    assert len(list(run.glob("events.out.tfevents.*"))) == 2  # the chief's two launches
