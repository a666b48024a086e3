"""Table 6 arithmetic (pretraining savings, fine-tuned metric and Δ) on synthetic histories, and the CLI."""

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.experiments.pretraining_report import table6
from tests.conftest import write_run


def _run(path, config, rows, metric):
    history, flops, seconds = [], 0.0, 0.0
    for epoch, (factor, value, epoch_flops, epoch_seconds) in enumerate(rows, 1):
        flops += epoch_flops
        seconds += epoch_seconds
        history.append(dict(epoch=epoch, factor=factor, val_metric=value, cumulative_flops=flops,
                            cumulative_seconds=seconds))
    return write_run(path, config=config, history=history, summary={"metric": metric})


@pytest.fixture
def pair(tmp_path):
    ssast = {"model": "ssast", "method": "fshift", "steps_per_epoch": 100}
    # Full resolution: 3 intervals of 100 FLOPs / 10 s. Coarse-to-fine: 1 at 20 FLOPs / 3 s, then 2 full.
    full = _run(tmp_path / "full", {**ssast, "factors": [1]}, [(1, 0.1, 100, 10)] * 3, "masked_accuracy")
    c2f = _run(tmp_path / "c2f", {**ssast, "factors": [4, 1]},
               [(4, 0.5, 20, 3), (1, 0.15, 100, 10), (1, 0.3, 100, 10)], "masked_accuracy")
    ast = {"model": "ast", "factors": [1]}
    tuned_full = _run(tmp_path / "ft-full", ast, [(1, 0.80, 1, 1), (1, 0.90, 1, 1)], "accuracy")
    tuned_c2f = _run(tmp_path / "ft-c2f", ast, [(1, 0.93, 1, 1), (1, 0.92, 1, 1)], "accuracy")
    return full, c2f, tuned_full, tuned_c2f


def test_table6_row(pair):
    full, c2f, tuned_full, tuned_c2f = pair
    report = table6([c2f], full, [tuned_c2f], tuned_full)
    row = report["rows"][0]
    assert row["flops_save_pct"] == pytest.approx(100 * (1 - 220 / 300))
    assert row["time_save_pct"] == pytest.approx(100 * (1 - 23 / 30))
    # The coarse phase's 0.5 (fewer patches to tell apart) does not count.
    assert row["steps"] == 300 and row["masked_accuracy"] == pytest.approx(0.3)
    assert row["downstream"] == pytest.approx(0.93) and row["delta"] == pytest.approx(0.03)
    assert report["baseline"]["flops_save_pct"] == 0 and report["baseline"]["delta"] == 0
    assert report["metric"] == "accuracy"
    # Without the fine-tuned runs: the pretraining columns only.
    assert "downstream" not in table6([c2f], full)["rows"][0]
    with pytest.raises(ValueError, match="not a pretraining run"):
        table6([tuned_c2f], full)
    with pytest.raises(ValueError, match="one --fine-tuned run per pretraining run"):
        table6([c2f], full, [tuned_c2f])


def test_report_command_prints_table6(pair):
    full, c2f, tuned_full, tuned_c2f = pair
    result = CliRunner().invoke(main, ["report", str(c2f), "--baseline", str(full), "--fine-tuned", str(tuned_c2f),
                                       "--baseline-fine-tuned", str(tuned_full)])
    assert result.exit_code == 0, result.output
    assert "Table 6" in result.output
    assert "| fshift 4→1 | 300 | 26.67 | 23.33 | 30.00 | 93.00 (+3.00) |" in result.output
    assert "| full resolution | 300 | 0.00 | 0.00 | 10.00 | 90.00 (+0.00) |" in result.output
    bad = CliRunner().invoke(main, ["report", str(tuned_c2f), "--baseline", str(tuned_full),
                                    "--fine-tuned", str(tuned_c2f)])
    assert bad.exit_code != 0 and "for pretraining runs" in bad.output
