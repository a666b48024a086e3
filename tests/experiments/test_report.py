"""Table 2/3 arithmetic against hand-computed values on synthetic histories."""


import pytest

from kc2f.experiments.report import build_report, format_csv, format_text
from tests.conftest import write_run


def _write_run(path, config, rows):
    history = []
    flops = seconds = 0.0
    for epoch, (factor, metric, epoch_flops, epoch_seconds) in enumerate(rows, 1):
        flops += epoch_flops
        seconds += epoch_seconds
        history.append(dict(epoch=epoch, factor=factor, val_metric=metric,
                            cumulative_flops=flops, cumulative_seconds=seconds))
    return write_run(path, config=config, history=history, summary={"metric": "accuracy"})


@pytest.fixture
def runs(tmp_path):
    # Baseline: 100 FLOPs / 10 s per epoch; best 0.80 first at epoch 3 (cost 300, 30 s).
    baseline = _write_run(tmp_path / "base", {"factors": [1], "method": "maxpool"},
                          [(1, 0.5, 100, 10), (1, 0.7, 100, 10), (1, 0.8, 100, 10), (1, 0.8, 100, 10)])
    # 2→1: coarse epochs cost 50 / 4 s. Reaches 0.80 at epoch 4 (cost 50+50+100+100 = 300?).
    # Coarse metric 0.85 at epoch 2 must not count: only the final phase may stop.
    c2f = _write_run(tmp_path / "c2f", {"factors": [2, 1], "method": "maxpool"},
                     [(2, 0.6, 50, 4), (2, 0.85, 50, 4), (1, 0.82, 100, 10), (1, 0.9, 100, 10)])
    # Never reaches the baseline: best 0.75 at epoch 2.
    weak = _write_run(tmp_path / "weak", {"factors": [4, 1], "method": "fshift"},
                      [(4, 0.6, 25, 3), (1, 0.75, 100, 10), (1, 0.7, 100, 10)])
    return baseline, c2f, weak


def test_table2_and_table3_rows(runs):
    baseline, c2f, weak = runs
    report = build_report([c2f, weak], baseline)
    first, second = report["table2"]
    # c2f reaches 0.80 at epoch 3 (0.82): cost 200 FLOPs, 18 s vs 300, 30 s.
    assert first["name"] == "maxpool 2→1"
    assert first["reached"] and first["epoch"] == 3
    assert first["metric"] == pytest.approx(0.82)
    assert first["delta"] == pytest.approx(0.02)
    assert first["flops_save_pct"] == pytest.approx(100 * (1 - 200 / 300))
    assert first["time_save_pct"] == pytest.approx(100 * (1 - 18 / 30))
    assert not second["reached"] and second["epoch"] == 2
    assert second["flops_save_pct"] == pytest.approx(100 * (1 - 125 / 300))
    assert second["delta"] == pytest.approx(-0.05)
    best_c2f, best_weak = report["table3"]
    assert best_c2f["best_metric"] == pytest.approx(0.9) and best_c2f["delta"] == pytest.approx(0.1)
    assert best_weak["best_metric"] == pytest.approx(0.75)
    text = format_text(report, "accuracy")
    # Histories without eval_seconds or compile_seconds: the training time, no steady figure, said so.
    assert first["time_counts"] == "train" and first["train_time_save_pct"] == first["time_save_pct"]
    assert "| maxpool 2→1 | 82.00 (+2.00) | 33.33 | 40.00 | n/a | 3 | 2/4 |" in text
    assert "time save %: wall time to that epoch, training and compilation (evaluation not recorded" in text
    assert "| fshift 4→1 | 75.00 | -5.00 | 2 | 1/3 |" in text
    assert [row["phase_ends"] for row in report["table3"]] == ["2/4", "1/3"]
    assert "(not reached)" in text
    csv_text = format_csv(report["table2"])
    assert csv_text.splitlines()[0].startswith("name,run_dir,metric,delta,flops_save_pct")
    assert len(csv_text.splitlines()) == 3


def test_report_names_a_directory_that_is_not_a_run(tmp_path, runs):
    with pytest.raises(ValueError, match="not a kc2f run directory"):
        build_report([tmp_path], runs[0])


def test_an_adaptive_run_is_named_by_its_switch_rule(tmp_path, runs):
    baseline = runs[0]
    adaptive = _write_run(tmp_path / "plateau", {"factors": [2, 1], "method": "maxpool", "switch": "plateau"},
                          [(2, 0.6, 50, 4), (2, 0.7, 50, 4), (2, 0.7, 50, 4), (1, 0.85, 100, 10)])
    row = build_report([adaptive], baseline)["table2"][0]
    assert row["name"] == "maxpool 2→1 (plateau)" and row["phase_ends"] == "3/4" and row["epoch"] == 4
