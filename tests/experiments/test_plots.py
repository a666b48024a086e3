"""`kc2f plot` / make_plots: three valid, non-blank PNG files from synthetic histories."""


import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("matplotlib")

import matplotlib.image  # noqa: E402

from kc2f.commands.plot import plot as plot_command  # noqa: E402
from kc2f.experiments.plots import PLOTS, make_plots  # noqa: E402
from tests.conftest import write_run  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_run(run_dir, method, factors, epochs=6):
    rows, flops, seconds = [], 0.0, 0.0
    initial = 0 if factors == [1] else 2 * (len(factors) - 1)
    for epoch in range(1, epochs + 1):
        phase = min(len(factors), 1 + (epoch - 1) // 2) if epoch <= initial else len(factors)
        factor = factors[phase - 1]
        train_seconds = 3.0 / factor
        flops += 2e12 / factor
        seconds += train_seconds
        rows.append({
            "epoch": epoch, "phase": phase, "factor": factor, "tokens": 64 // factor, "loss": 1 / epoch,
            "val_metric": 0.3 + 0.03 * epoch + 0.01 * len(factors), "lr": 1e-4, "samples": 100,
            "train_seconds": train_seconds, "eval_seconds": 0.5, "epoch_flops": 2e12 / factor,
            "cumulative_flops": flops, "cumulative_seconds": seconds,
        })
    return write_run(run_dir, config={"method": method, "factors": factors}, history=rows,
                     summary={"metric": "mAP"})


@pytest.fixture
def runs(tmp_path):
    return (_write_run(tmp_path / "baseline", "maxpool", [1]),
            _write_run(tmp_path / "maxpool-2-1", "maxpool", [2, 1]),
            _write_run(tmp_path / "fshift-4-2-1", "fshift", [4, 2, 1]))


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 5000, (path, len(data))
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert float(np.ptp(pixels[..., :3])) > 0.5, path  # not a blank image
    # Plenty of non-white pixels: axes, lines, bars, text.
    assert np.mean(np.any(pixels[..., :3] < 0.9, axis=-1)) > 0.01, path


def test_make_plots_writes_three_valid_pngs(tmp_path, runs):
    baseline, *others = runs
    paths = make_plots(others, tmp_path / "plots", baseline_dir=baseline)
    assert [p.name for p in paths] == list(PLOTS)
    for path in paths:
        _check_png(path)


def test_make_plots_without_baseline_and_with_duplicates(tmp_path, runs):
    paths = make_plots([runs[1], runs[1]], tmp_path / "plots")
    assert all(p.exists() for p in paths)


def test_plot_command(tmp_path, runs):
    baseline, *others = runs
    out = tmp_path / "cli"
    result = CliRunner().invoke(plot_command, [*map(str, runs), "--baseline", str(baseline), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in PLOTS:
        _check_png(out / name)


def test_plot_command_rejects_a_non_run(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(plot_command, [str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "history.json" in result.output
