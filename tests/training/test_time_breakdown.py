"""StepTimer and time_breakdown: the first step's excess is compilation, the periods add up to the epoch."""

import keras
import numpy as np
import pytest

from kc2f.training.run_state import RunState
from kc2f.training.step_timer import StepTimer, epoch_timing
from kc2f.training.time_breakdown import format_breakdown, time_breakdown


def test_first_period_excess_is_compilation_and_periods_add_up():
    # Epoch starts at 10.0; batches start at 10.5 (setup 0.5), then every 0.1 s after a 3 s first step.
    begins = [10.5, 13.5, 13.6, 13.7, 13.8]
    timing = epoch_timing(10.0, begins, 13.9)
    assert timing["setup_seconds"] == pytest.approx(0.5)
    assert timing["compile_seconds"] == pytest.approx(2.9)
    assert timing["step_ms"] == pytest.approx(100.0)
    assert timing["steps"] == 5
    total = timing["setup_seconds"] + timing["compile_seconds"] + timing["step_seconds"]
    assert total == pytest.approx(13.9 - 10.0)


def test_one_batch_cannot_separate_compilation():
    timing = epoch_timing(0.0, [0.25], 2.0)
    assert timing["compile_seconds"] is None and timing["step_seconds"] == pytest.approx(1.75)
    assert epoch_timing(0.0, [], 1.0)["steps"] == 0


def test_a_steady_epoch_has_no_compilation():
    timing = epoch_timing(0.0, [0.0, 0.1, 0.2, 0.3], 0.4)
    assert timing["compile_seconds"] == pytest.approx(0.0, abs=1e-9)


def test_step_timer_sees_every_batch_of_a_keras_fit():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    state = RunState()
    timer = StepTimer(state)
    assert timer.async_safe  # reads no logs: forces no device synchronisation
    x, y = np.ones((12, 3), "float32"), np.zeros((12, 2), "float32")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[timer])
    assert state.step_timing["steps"] == 3
    assert state.step_timing["compile_seconds"] is not None and state.step_timing["step_seconds"] > 0


def test_time_breakdown_sums_per_phase_and_run():
    rows = [
        {"phase": 1, "factor": 2, "train_seconds": 10.0, "compile_seconds": 6.0, "step_seconds": 3.5,
         "setup_seconds": 0.5, "switch_seconds": 0.0, "eval_seconds": 1.0, "step_ms": 50.0},
        {"phase": 1, "factor": 2, "train_seconds": 4.0, "compile_seconds": 0.0, "step_seconds": 4.0,
         "setup_seconds": 0.0, "switch_seconds": 0.0, "eval_seconds": 1.0, "step_ms": 40.0},
        {"phase": 2, "factor": 1, "train_seconds": 12.0, "compile_seconds": 5.0, "step_seconds": 5.0,
         "setup_seconds": 0.0, "switch_seconds": 2.0, "eval_seconds": 2.0, "step_ms": 80.0},
    ]
    breakdown = time_breakdown(rows, checkpoint_seconds=0.7, preparation_seconds=3.0)
    one, two = breakdown["phases"]
    assert (one["factor"], one["epochs"], one["train_seconds"], one["compile_seconds"]) == (2, 2, 14.0, 6.0)
    assert one["compile_share"] == pytest.approx(6.0 / 14.0) and one["step_ms"] == 45.0
    assert two["other_seconds"] == pytest.approx(0.0) and two["switch_seconds"] == 2.0
    assert breakdown["total"]["train_seconds"] == 26.0 and breakdown["total"]["compile_seconds"] == 11.0
    assert breakdown["checkpoint_seconds"] == 0.7 and breakdown["preparation_seconds"] == 3.0
    lines = format_breakdown(breakdown)
    assert len(lines) == 2 and "C=2" in lines[0] and "compile 6.0 s = 43%" in lines[0]


def test_rows_of_older_runs_have_no_split():
    rows = [{"phase": 1, "factor": 1, "train_seconds": 5.0, "eval_seconds": 1.0}]
    entry = time_breakdown(rows)["phases"][0]
    assert entry["compile_seconds"] is None and entry["compile_share"] is None and entry["other_seconds"] is None
    assert "compile n/a" in format_breakdown(time_breakdown(rows))[0]


def _timed_run(path, config, rows):
    from tests.conftest import write_run

    history, seconds = [], 0.0
    for epoch, (factor, metric, epoch_seconds, compile_seconds) in enumerate(rows, 1):
        seconds += epoch_seconds
        history.append(dict(epoch=epoch, phase=1, factor=factor, val_metric=metric, cumulative_flops=float(epoch),
                            cumulative_seconds=seconds, compile_seconds=compile_seconds))
    return write_run(path, config=config, history=history, summary={"metric": "accuracy"})


def test_report_gives_the_time_saved_without_compilation(tmp_path):
    from kc2f.experiments.report import build_report

    # Baseline: best at epoch 2 after 10 + 10 s, 4 s of it compilation.
    base = _timed_run(tmp_path / "base", {"factors": [1]}, [(1, 0.5, 10, 4), (1, 0.8, 10, 0)])
    # 2 -> 1: reaches 0.8 at epoch 3 after 6 + 4 + 8 s, 3 + 3 s compilation (one per phase).
    run = _timed_run(tmp_path / "c2f", {"factors": [2, 1]}, [(2, 0.4, 6, 3), (2, 0.6, 4, 0), (1, 0.8, 8, 3)])
    row = build_report([run], base)["table2"][0]
    assert row["time_save_pct"] == pytest.approx(100 * (1 - 18 / 20))
    assert row["steady_time_save_pct"] == pytest.approx(100 * (1 - 12 / 16))
    old = _timed_run(tmp_path / "old", {"factors": [2, 1]}, [(2, 0.4, 6, None), (1, 0.8, 8, None)])
    assert build_report([old], base)["table2"][0]["steady_time_save_pct"] is None


def test_the_headline_time_saved_is_wall_time_with_evaluation(tmp_path):
    from kc2f.experiments.report import build_report, format_text
    from tests.conftest import write_run

    def run(path, factors, rows):  # (factor, metric, train seconds, compile seconds, eval seconds)
        history, seconds = [], 0.0
        for epoch, (factor, metric, train, compiled, evaluated) in enumerate(rows, 1):
            seconds += train
            history.append(dict(epoch=epoch, phase=1, factor=factor, val_metric=metric, cumulative_flops=float(epoch),
                                cumulative_seconds=seconds, compile_seconds=compiled, eval_seconds=evaluated))
        return write_run(path, config={"factors": factors}, history=history, summary={"metric": "accuracy"})

    # Baseline to its best (epoch 2): 20 s training (4 s compiling) + 3 + 3 s evaluation = 26 s.
    base = run(tmp_path / "base", [1], [(1, 0.5, 10, 4, 3), (1, 0.8, 10, 0, 3)])
    # 2 -> 1 to epoch 3: 18 s training (6 s compiling) + 1 + 1 + 3 s evaluation = 23 s.
    c2f = run(tmp_path / "c2f", [2, 1], [(2, 0.4, 6, 3, 1), (2, 0.6, 4, 0, 1), (1, 0.8, 8, 3, 3)])
    report = build_report([c2f], base)
    row = report["table2"][0]
    assert row["time_counts"] == "train+eval"
    assert row["time_save_pct"] == pytest.approx(100 * (1 - 23 / 26))
    assert row["train_time_save_pct"] == pytest.approx(100 * (1 - 18 / 20))
    assert row["steady_time_save_pct"] == pytest.approx(100 * (1 - 12 / 16))
    text = format_text(report, "accuracy")
    assert f"| {100 * (1 - 23 / 26):.2f} | 25.00 | 3 |" in text
    assert "time save %: wall time to that epoch, training, compilation and evaluation" in text
