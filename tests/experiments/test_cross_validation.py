"""ESC-50's fold option and `kc2f cv`: five runs, resumable, mean ± std of the per-fold metric."""

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.data import registry
from kc2f.experiments.cross_validation import summarize
from kc2f.training.preparation import prepare_data, resolve
from kc2f.training.run_config import RunConfig
from kc2f.training.run_directory import RunDirectory
from kc2f.training.run_error import RunError
from tests.conftest import TINY_MODEL, cli_sets, write_run, write_wav

CLASSES = ("dog", "rain", "siren", "clock")
RATE = 16000


def write_esc50(root, clips_per_fold=1):
    """`root/meta/esc50.csv` (5 folds x CLASSES x clips_per_fold) and `root/audio/*.wav` (0.3 s tones)."""
    rows = []
    for fold in range(1, 6):
        for target, category in enumerate(CLASSES):
            for take in range(clips_per_fold):
                name = f"{fold}-{target}{take}-A-{target}.wav"
                t = np.arange(int(0.3 * RATE)) / RATE
                tone = np.sin(2 * np.pi * 300 * (target + 1) * t) * (0.3 + 0.1 * fold)
                write_wav(root / "audio" / name, tone + 0.01 * np.random.default_rng([fold, target, take])
                          .standard_normal(t.size), RATE)
                rows.append({"filename": name, "fold": fold, "target": target, "category": category,
                             "esc10": "False", "src_file": name, "take": "A"})
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def small_esc50(monkeypatch):
    # The layout, folds and labels are ESC-50's; the clip is shortened (0.32 s, 32 frames, 64 mel)
    # and the class count taken from the data, so that five tiny runs stay fast.
    spec = registry.DATASETS["esc50"].replace(num_classes=None, clip_seconds=0.32, target_frames=32,
                                               num_mel_bins=64, freqm=4, timem=8)
    monkeypatch.setitem(registry.DATASETS, "esc50", spec)
    return spec


def test_fold_option_selects_the_held_out_fold(tmp_path):
    root = write_esc50(tmp_path / "esc50", clips_per_fold=2)
    # The registry's own ESC-50 recipe wants 50 classes; the fold logic is the layout's.
    spec = registry.DATASETS["esc50"].replace(num_classes=None)
    config = RunConfig.from_sources(None, ["dataset=esc50", f"data_dir={root}", "fold=3"])
    config, _ = resolve(config)
    _, data = prepare_data(config, spec, log=lambda line: None)
    folds = {int(e.path.split("/")[-1].split("-")[0]) for e in data.evaluation}
    assert folds == {3} and len(data.evaluation) == 2 * len(CLASSES)
    assert {int(e.path.split("/")[-1].split("-")[0]) for e in data.train} == {1, 2, 4, 5}
    assert len(data.train) == 4 * 2 * len(CLASSES)
    assert data.labels == list(CLASSES)

    with pytest.raises(ValueError, match="Option 'fold' must be one of 1..5.*fold=6"):
        RunConfig.from_sources(None, ["fold=6"])
    with pytest.raises(RunError, match="dataset 'fsdd' has no folds"):
        resolve(RunConfig(dataset="fsdd", fold=2))


def test_summary_is_the_numpy_mean_and_std_of_the_folds(tmp_path):
    rng = np.random.default_rng(0)
    curves = rng.uniform(0.2, 0.9, (5, 3))
    for fold, curve in enumerate(curves, 1):
        summary = {"metric": "accuracy", "final_metric": float(curve[-1])}
        if fold == 4:  # a weight-averaged fold delivers (and counts) its average
            summary.update(averaged_metric=0.5, delivered_model="weight average of epochs 2..3")
        write_run(tmp_path / f"fold{fold}", summary=summary,
                  history=[{"epoch": e + 1, "val_metric": float(v)} for e, v in enumerate(curve)])
    result = summarize(tmp_path)
    delivered = np.array([*curves[:3, -1], 0.5, curves[4, -1]])
    assert [row["metric"] for row in result["folds"]] == list(delivered)
    assert result["mean"] == pytest.approx(delivered.mean()) and result["std"] == pytest.approx(delivered.std())
    assert result["folds"][3]["model"] == "weight average of epochs 2..3"
    best = int(np.argmax(curves.mean(axis=0)))
    selection = result["ast_epoch_selection"]
    assert selection["epoch"] == best + 1 and selection["per_fold"] == pytest.approx(curves[:, best])
    assert selection["mean"] == pytest.approx(curves[:, best].mean())
    assert selection["std"] == pytest.approx(curves[:, best].std())
    RunDirectory(tmp_path / "fold5").file("summary.json").unlink()
    with pytest.raises(ValueError, match="fold5 has not finished"):
        summarize(tmp_path)


@pytest.mark.slow  # five tiny trainings: about 1-4 minutes on 2 shared CPU cores
def test_cv_runs_five_folds_resumes_and_reports_mean_and_std(tmp_path, small_esc50):
    root = write_esc50(tmp_path / "esc50")
    out = tmp_path / "cv"
    args = ["cv", "--data-dir", str(root), "--out", str(out), "--quiet",
            *cli_sets([*TINY_MODEL, "factors=1", "epochs=2", "batch_size=4"])]
    first = CliRunner().invoke(main, [*args[:5], "--folds", "1,2", *args[5:]])
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["fold1", "fold2"]

    # Fold 2 "killed" after its first epoch: its commit rolled back to epoch 1's checkpoint.
    fold2 = RunDirectory(out / "fold2")
    for name in ("summary.json", "model.keras"):
        (out / "fold2" / name).unlink()
    shutil.copy(fold2.checkpoints / "epoch-0001" / "state.json", fold2.file("state.json"))

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"Run {out / 'fold1'} already finished" in result.output
    assert f"Resuming {out / 'fold2'} after epoch 1" in result.output
    summaries = [RunDirectory(out / f"fold{k}").read_summary() for k in range(1, 6)]
    assert all(s is not None and s["epochs_trained"] == 2 for s in summaries)
    configs = [RunDirectory(out / f"fold{k}").read_config() for k in range(1, 6)]
    assert [c["fold"] for c in configs] == [1, 2, 3, 4, 5]

    values = np.array([s["final_metric"] for s in summaries])
    saved = json.loads((out / "cv.json").read_text())
    assert [row["metric"] for row in saved["folds"]] == list(values)
    assert saved["mean"] == pytest.approx(values.mean()) and saved["std"] == pytest.approx(values.std())
    assert f"accuracy: {100 * values.mean():.2f} ± {100 * values.std():.2f} % over 5 folds" in result.output
    assert f"{100 * values.mean():.2f} ± {100 * values.std():.2f}" in (out / "cv.md").read_text()
    # AST's report: every fold at the epoch of best fold-averaged accuracy.
    curves = np.array([[row["val_metric"] for row in RunDirectory(out / f"fold{k}").read_history()]
                       for k in range(1, 6)])
    best = int(np.argmax(curves.mean(axis=0)))
    assert saved["ast_epoch_selection"]["epoch"] == best + 1
    assert saved["ast_epoch_selection"]["mean"] == pytest.approx(curves[:, best].mean())

    # A third run trains nothing and reports the same.
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and again.output.count("already finished") == 5
    assert json.loads((out / "cv.json").read_text()) == saved


def test_cv_refuses_a_fixed_fold_and_datasets_without_folds(tmp_path):
    out = str(tmp_path / "cv")
    fixed = CliRunner().invoke(main, ["cv", "--data-dir", str(tmp_path), "--out", out, "--set", "fold=2"])
    assert fixed.exit_code != 0 and "remove the 'fold' option" in fixed.output
    other = CliRunner().invoke(main, ["cv", "--dataset", "fsdd", "--data-dir", str(tmp_path), "--out", out])
    assert other.exit_code != 0 and "dataset 'fsdd' has none" in other.output
