"""A run killed with SIGKILL (in each phase, and inside a checkpoint write) resumes exactly."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_MODEL, cli_sets


def _args(data_dir):
    """A tiny 2-phase fit on the embedded synthetic dataset (8 classes, 16 kHz, 1.28 s)."""
    return [
        "fit", "--dataset", "synthetic", "--data-dir", str(data_dir), "--method", "maxpool",
        "--factors", "2,1", "--phase-epochs", "2,2", "--batch-size", "8", "--quiet",
        *cli_sets(["max_train_examples=24", "max_eval_examples=8", *TINY_MODEL]),
    ]


def _fit(data_dir, run_dir, fault=None):
    env = dict(os.environ)
    env.pop("KC2F_FAULT", None)
    if fault:
        env["KC2F_FAULT"] = fault
    return subprocess.run(
        [sys.executable, str(REPO / "tests" / "fault_injection.py"), *_args(data_dir), "--run-dir", str(run_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )


def _history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


def _scalars(run_dir, tag):
    """`(step, value)` of `tag` in every event file of a run, raw: what TensorBoard would have to merge."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2

    found = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for record in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(record)
            found += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return found


def test_sigkill_in_each_phase_and_during_a_checkpoint_write_resumes(tmp_path, synthetic_dir):
    reference = tmp_path / "reference"
    done = _fit(synthetic_dir, reference)
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "killed"
    for fault, epochs_committed in (("epoch:1", 0), ("checkpoint:2", 1), ("epoch:3", 2)):
        killed = _fit(synthetic_dir, run, fault)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert len(_history(run)) == epochs_committed if epochs_committed else not (run / "state.json").exists()
    finished = _fit(synthetic_dir, run)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Resuming" in finished.stdout

    expected, got = _history(reference), _history(run)
    assert [r["epoch"] for r in got] == [1, 2, 3, 4]
    assert [(r["phase"], r["factor"]) for r in got] == [(r["phase"], r["factor"]) for r in expected]
    assert got[-1]["cumulative_flops"] == expected[-1]["cumulative_flops"]
    # Same data order, augmentation and optimizer state: the same losses.
    for a, b in zip(got, expected):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3), (a, b)
    # TensorBoard: an epoch killed before its commit wrote no events, so across the three restarts'
    # event files every step and epoch appears once, with the uninterrupted run's values.
    steps, reference_steps = _scalars(run, "step/loss"), _scalars(reference, "step/loss")
    assert [step for step, _ in steps] == list(range(1, 4 * 3 + 1))  # 24 clips / batch 8: 3 steps an epoch
    assert [value for _, value in steps] == pytest.approx([value for _, value in reference_steps], rel=1e-3)
    assert [step for step, _ in _scalars(run, "train/loss")] == [1, 2, 3, 4]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_trained"] == 4
    # Re-running a finished run does nothing.
    again = _fit(synthetic_dir, run)
    assert again.returncode == 0 and "already finished" in again.stdout


def test_a_run_that_computed_its_stats_resumes_with_them(tmp_path, synthetic_dir, monkeypatch):
    """A recipe without mean/std (the `folder` and `manifest` layouts) has the run compute them
    at its start and record them in config.json; re-running the same command must resume that
    run (here: find it finished) rather than refuse it as "another configuration"."""
    from kc2f.data import registry
    from kc2f.training.run_config import RunConfig
    from kc2f.training.trainer import fit

    spec = registry.DATASETS["synthetic"].replace(name="unnormalised", layout="folder", mean=None, std=None)
    monkeypatch.setitem(registry.DATASETS, "unnormalised", spec)
    options = dict(dataset="unnormalised", data_dir=str(synthetic_dir), factors=(1,), epochs=1, batch_size=8,
                   max_train_examples=16, max_eval_examples=8, hidden_dim=16, depth=1, num_heads=1,
                   warmup_steps=2)
    run_dir = tmp_path / "run"
    first = fit(RunConfig.from_dict(options), run_dir=run_dir, verbose=0, log=lambda *a: None)
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["mean"] is not None and recorded["std"] > 0
    lines = []
    again = fit(RunConfig.from_dict(options), run_dir=run_dir, verbose=0, log=lines.append)
    assert again == first
    assert any("already finished" in line for line in lines), lines
    with pytest.raises(ValueError, match="another configuration"):  # a real change is still refused
        fit(RunConfig.from_dict({**options, "mean": 0.0, "std": 1.0}), run_dir=run_dir, verbose=0, log=lambda *a: None)


def test_a_run_recorded_before_an_option_existed_resumes(tmp_path):
    # config.json of an AST run made before `pooling` (and the other options of 2026-12-06) existed:
    # the resolved config of the same command must match it, and a real change is still named.
    from kc2f.training.preparation import _config_changes, resolve
    from kc2f.training.run_config import RunConfig
    from kc2f.training.run_directory import RunDirectory

    config, _ = resolve(RunConfig(dataset="synthetic", factors=(2, 1)))
    # Such runs recorded every option flat, another family's too (`mask_share`, SSAST's).
    recorded = {k: v for k, v in config.flat_dict().items() if k not in ("pooling", "lr_patience")}
    recorded["mask_share"] = 0.78125
    run = RunDirectory(tmp_path / "run")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(recorded))
    assert config.model_options.pooling == "prefix" and _config_changes(run, config) is None
    assert "pooling: None -> 'patch'" in _config_changes(run, config.replace(pooling="patch"))
    assert "hidden_dim: 128 -> 64" in _config_changes(run, config.replace(hidden_dim=64))
