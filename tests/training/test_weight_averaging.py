"""`--average-checkpoints FIRST..LAST`: the mean of checkpoint weights, delivered, exported, resumable;
and the AudioSet configs' learning rate per epoch against AST's official schedule."""

import json
import pathlib

import keras
import numpy as np
import pytest

from kc2f.export import export_run
from kc2f.families import load_model
from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.training.checkpoint_store import MODEL_FILE, CheckpointStore
from kc2f.training.evaluation import evaluate_run
from kc2f.training.run_config import RunConfig
from kc2f.training.run_directory import RunDirectory
from kc2f.training.run_error import RunError
from kc2f.training.trainer import fit
from kc2f.training.warmup_step_decay import WarmupStepDecay
from tests.conftest import REPO

SMALL = {"num_classes": 3, "hidden_dim": 8, "depth": 1, "num_heads": 1, "target_frames": 32,
         "num_mel_bins": 16, "sample_rate": 8000, "freqm": 2, "timem": 4}


def _key(path):
    return path.split("/", 1)[1]  # without the model's own name (it differs between instances)


def _checkpoint_mean(run_dir, epochs):
    """`{variable path: float64 mean}` of the float arrays of those epochs' `model.npz`, with NumPy."""
    stacks = {}
    for epoch in epochs:
        with np.load(RunDirectory(run_dir).checkpoints / RunDirectory.checkpoint_name(epoch) / MODEL_FILE) as data:
            names = [str(name) for name in data["__names__"]]
            for i, name in enumerate(names):
                value = data[f"{i:05d}"]
                if np.issubdtype(value.dtype, np.floating):
                    stacks.setdefault(_key(name), []).append(value.astype(np.float64))
    return {name: np.mean(values, axis=0) for name, values in stacks.items()}


def _assert_weights_are(model, expected):
    checked = 0
    for weight in model.weights:
        if _key(weight.path) in expected:
            np.testing.assert_allclose(keras.ops.convert_to_numpy(weight), expected[_key(weight.path)],
                                       rtol=1e-6, atol=1e-7, err_msg=weight.path)
            checked += 1
    assert checked == len(model.trainable_weights) > 0


def test_average_model_is_the_elementwise_mean_of_the_checkpoints(tmp_path):
    model = AudioSpectrogramTransformer(method="maxpool", factor=1, **SMALL)
    store = CheckpointStore(tmp_path, keep_last=1, protect=[CheckpointStore.name(e) for e in (1, 2, 3)])
    rng = np.random.default_rng(0)
    for epoch in (1, 2, 3, 4):
        for weight in model.trainable_weights:
            weight.assign(rng.standard_normal(weight.shape).astype("float32"))
        store.save(store.name(epoch), model, None, {"history": [{"epoch": e} for e in range(1, epoch + 1)]})
    # keep_last=1 would leave only epoch 4: the protected range survives pruning.
    assert sorted(p.name for p in RunDirectory(tmp_path).checkpoints.iterdir()) == \
        [f"epoch-000{e}" for e in (1, 2, 3, 4)]
    averaged = AudioSpectrogramTransformer(method="maxpool", factor=1, **SMALL)
    store.average_model([store.name(e) for e in (1, 2, 3)], averaged)
    _assert_weights_are(averaged, _checkpoint_mean(tmp_path, (1, 2, 3)))
    # A damaged checkpoint is named, not averaged.
    (RunDirectory(tmp_path).checkpoints / "epoch-0002" / MODEL_FILE).write_bytes(b"damaged")
    with pytest.raises(ValueError, match=r"epoch-0002.*damaged"):
        store.average_model([store.name(e) for e in (1, 2, 3)], averaged)


def _tiny(data_dir, **options):
    values = {"dataset": "synthetic", "data_dir": str(data_dir), "hidden_dim": 16, "depth": 1, "num_heads": 1,
              "warmup_steps": 2, "max_train_examples": 16, "max_eval_examples": 16, "batch_size": 8,
              "factors": (1,), "epochs": 3, "keep_checkpoints": 1, "average_checkpoints": "1..3"}
    return RunConfig.from_dict({**values, **options})


def test_averaged_run_delivers_and_exports_the_mean_and_survives_a_rerun(tmp_path, synthetic_dir):
    run_dir = tmp_path / "run"
    summary = fit(_tiny(synthetic_dir), run_dir=run_dir, verbose=0, log=lambda line: None)
    # Epochs 1..3 kept despite keep_checkpoints=1.
    names = sorted(p.name for p in RunDirectory(run_dir).checkpoints.iterdir())
    assert names == ["epoch-0001", "epoch-0002", "epoch-0003"]
    expected = _checkpoint_mean(run_dir, (1, 2, 3))
    _assert_weights_are(load_model(run_dir / "model.keras"), expected)
    assert summary["averaged_epochs"] == [1, 2, 3]
    assert summary["delivered_model"] == "weight average of epochs 1..3"
    # The file holds no absolute path (the run can move); the returned summary adds run_dir.
    assert {**json.loads((run_dir / "summary.json").read_text()), "run_dir": str(run_dir)} == summary
    # The recorded metric is the averaged model's (kc2f evaluate scores model.keras).
    assert summary["averaged_metric"] == pytest.approx(evaluate_run(run_dir)[0]["metric"], abs=1e-6)
    assert {"best_metric", "final_metric"} <= set(summary)

    exported = export_run(run_dir, tmp_path / "export", format="keras")
    _assert_weights_are(load_model(exported["keras"]), expected)
    training = json.loads((pathlib.Path(exported["out_dir"]) / "assets" / "kc2f.json").read_text())["training"]
    assert training["score"] == summary["averaged_metric"]
    assert training["delivered_model"] == "weight average of epochs 1..3"

    # Killed while finishing (model.keras and summary.json not written): the same command averages
    # the same committed checkpoints again.
    (run_dir / "model.keras").unlink()
    (run_dir / "summary.json").unlink()
    again = fit(_tiny(synthetic_dir), run_dir=run_dir, verbose=0, log=lambda line: None)
    # The finishing process's own clock readings (its data preparation; the last checkpoint
    # save, which is counted only in memory, one save behind the commit) are its own.
    def committed(result):
        breakdown = {k: v for k, v in result["time_breakdown"].items()
                     if k not in ("preparation_seconds", "checkpoint_seconds")}
        return {**result, "time_breakdown": breakdown}

    assert again["time_breakdown"]["preparation_seconds"] >= 0
    assert committed(again) == committed(summary)
    _assert_weights_are(load_model(run_dir / "model.keras"), expected)
    # A finished run is not redone.
    lines = []
    assert fit(_tiny(synthetic_dir), run_dir=run_dir, verbose=0, log=lines.append) == again
    assert any("already finished" in line for line in lines)


def test_best_k_averages_the_final_phases_best_epochs_kept_on_disk(tmp_path, synthetic_dir):
    # HTS-AT's recipe: keep the top-k checkpoints by the metric (save_top_k), average them at the end.
    run_dir = tmp_path / "run"
    summary = fit(_tiny(synthetic_dir, factors=(2, 1), epochs=None, phase_epochs=(1, 4),
                        average_checkpoints="best:2"), run_dir=run_dir, verbose=0, log=lambda line: None)
    history = json.loads((run_dir / "history.json").read_text())
    final = sorted((row for row in history if row["factor"] == 1), key=lambda r: (-r["val_metric"], r["epoch"]))
    best = sorted(row["epoch"] for row in final[:2])  # NumPy-free reference of the choice
    assert summary["averaged_epochs"] == best
    names = {p.name for p in RunDirectory(run_dir).checkpoints.iterdir()}
    assert {f"epoch-{e:04d}" for e in best} <= names  # kept despite keep_checkpoints=1
    _assert_weights_are(load_model(run_dir / "model.keras"), _checkpoint_mean(run_dir, tuple(best)))
    assert summary["averaged_metric"] == pytest.approx(evaluate_run(run_dir)[0]["metric"], abs=1e-6)
    with pytest.raises(RunError, match="only 4 epochs to choose 5 from"):
        fit(_tiny(synthetic_dir, factors=(2, 1), epochs=None, phase_epochs=(1, 4), average_checkpoints="best:5"),
            run_dir=tmp_path / "other", verbose=0, log=lambda line: None)
    with pytest.raises(ValueError, match="best:K needs a whole K >= 1"):
        RunConfig(average_checkpoints="best:0")


@pytest.mark.parametrize("options, match", [
    ({"average_checkpoints": "2..4"}, "epoch 4 is beyond the run's 3 epochs"),
    ({"factors": (2, 1), "phase_epochs": (1, 2), "epochs": None, "average_checkpoints": "1..3"},
     r"spans the phase switch after epoch 1 \(C=2 -> C=1\).*different shapes.*e\.g\. 2\.\.3"),
    ({"target": 0.5}, "budget-mode"),
])
def test_invalid_ranges_fail_before_training(tmp_path, options, match):
    with pytest.raises(RunError, match=match):
        fit(_tiny(tmp_path / "data", **options), run_dir=tmp_path / "run", verbose=0, log=lambda line: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["3..1", "0..2", "1-5", "5", "a..b"])
def test_range_syntax_is_checked(text):
    with pytest.raises(ValueError, match=f"average_checkpoints={text!r}"):
        RunConfig(average_checkpoints=text)


def _lr_per_epoch(config, steps_per_epoch):
    schedule = WarmupStepDecay(config.lr, warmup_steps=config.warmup_steps, steps_per_epoch=steps_per_epoch,
                               decay_start_epoch=config.decay_start_epoch, decay_every=config.decay_every,
                               decay_rate=config.decay_rate)
    # The rate of each epoch's last step (after the warm-up).
    return [float(keras.ops.convert_to_numpy(schedule((epoch + 1) * steps_per_epoch - 1)))
            for epoch in range(config.epochs)], schedule


def test_audioset_config_follows_asts_official_schedule():
    from kc2f.training.preparation import resolve

    # A baseline of configs/audioset.yaml (one phase): AST egs/audioset/run.sh (set=full),
    # MultiStepLR milestones 2, 3, 4 stepped after each 1-based epoch.
    config, _ = resolve(RunConfig.from_sources(REPO / "configs" / "audioset.yaml",
                                               ["factors=1", "average_checkpoints=1..5"]))
    assert (config.lr, config.epochs, config.mixup, config.warmup_steps) == (1e-5, 5, 0.5, 1000)
    lrs, schedule = _lr_per_epoch(config, steps_per_epoch=2000)
    np.testing.assert_allclose(lrs, [1e-5, 1e-5, 5e-6, 2.5e-6, 1.25e-6], rtol=1e-6)
    # Warm-up: linear over the first 1000 steps of epoch 1.
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 499, 999, 1000)],
                               [1e-8, 5e-6, 1e-5, 1e-5], rtol=1e-5)
    assert config.average_range == (1, 5)

    # The balanced set: run.sh set=balanced, milestones 10, 15, 20.
    balanced, _ = resolve(RunConfig.from_sources(REPO / "configs" / "audioset_balanced.yaml", ["factors=1"]))
    lrs, _ = _lr_per_epoch(balanced, steps_per_epoch=2000)
    np.testing.assert_allclose(lrs, [5e-5] * 10 + [2.5e-5] * 5 + [1.25e-5] * 5 + [6.25e-6] * 5, rtol=1e-6)
