"""TensorBoard records of a run: per-step loss, accuracy and lr, validation loss, hparams, one run per directory."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from kc2f.cli import main
from kc2f.training.run_directory import RunDirectory
from kc2f.training.step_recorder import per_step_values
from tests.conftest import TINY_MODEL, cli_sets

# 32 training clips after the 20 % hold-out of 40: 4 steps of 8 per epoch.
STEPS_PER_EPOCH = 4


def read_events(run_dir):
    """Every event of every event file of a run, raw (no TensorBoard purging): `(tag, step, value)` lists."""
    scalars, tensors = [], []
    for path in RunDirectory(run_dir).event_files():
        for record in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.append((value.tag, event.step, value.simple_value))
                elif value.HasField("tensor") or value.HasField("metadata"):
                    tensors.append((value.tag, event.step, value))
    return scalars, tensors


def scalar(scalars, tag):
    return [(step, value) for name, step, value in scalars if name == tag]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_dir):
    run = tmp_path_factory.mktemp("tb") / "run"
    result = CliRunner().invoke(main, [
        "fit", "--dataset", "synthetic", "--data-dir", str(synthetic_dir), "--factors", "2,1",
        "--phase-epochs", "1,1", "--batch-size", "8", "--val-fraction", "0.2", "--run-dir", str(run), "--quiet",
        *cli_sets(["max_train_examples=40", "max_eval_examples=16", "lr=0.001", *TINY_MODEL]),
    ])
    assert result.exit_code == 0, result.output
    return run


def test_per_step_values_recover_each_step_from_running_means():
    steps = np.random.default_rng(0).uniform(0.5, 3.0, 50)
    means = (np.cumsum(steps) / np.arange(1, 51)).astype(np.float32)  # what Keras reports, in float32
    recovered = per_step_values(means)
    np.testing.assert_allclose(recovered, steps, atol=50 * 6e-8 * 3 * 2)
    assert np.abs(recovered - steps).max() > 0  # float32 means: recovered, not copied


def test_event_files_sit_in_the_run_directory_one_tensorboard_run_each(run_dir):
    assert RunDirectory(run_dir).event_files()
    assert not (run_dir / "tensorboard").exists()  # `tensorboard --logdir runs/` lists it as `run`


def test_per_step_loss_and_accuracy_agree_with_the_epoch_means(run_dir):
    scalars, _ = read_events(run_dir)
    history = json.loads((run_dir / "history.json").read_text())
    losses, accuracy = scalar(scalars, "step/loss"), scalar(scalars, "step/accuracy")
    assert [step for step, _ in losses] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert [step for step, _ in accuracy] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    for epoch, row in enumerate(history):
        window = slice(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)
        # The epoch's reported loss is the mean of its steps' losses (equal batches).
        assert np.mean([v for _, v in losses[window]]) == pytest.approx(row["loss"], rel=1e-5)
        step_accuracy = [v for _, v in accuracy[window]]
        assert np.mean(step_accuracy) == pytest.approx(row["train_accuracy"], abs=1e-5)
        # A step's accuracy on 8 clips is k/8.
        np.testing.assert_allclose(np.array(step_accuracy) * 8, np.round(np.array(step_accuracy) * 8), atol=1e-4)
    assert [step for step, _ in scalar(scalars, "train/loss")] == [1, 2]


def test_per_step_learning_rate_is_the_schedule_restarted_each_phase(run_dir):
    scalars, _ = read_events(run_dir)
    rates = [value for _, value in scalar(scalars, "step/lr")]
    # warm-up over 2 steps to lr 1e-3, restarted at the phase switch (NumPy reference of AST's schedule).
    phase = [1e-3 * min(1.0, (k + 1) / 2) for k in range(STEPS_PER_EPOCH)]
    np.testing.assert_allclose(rates, phase + phase, rtol=1e-6)


def test_validation_loss_is_the_cross_entropy_of_the_validation_split(run_dir):
    scalars, _ = read_events(run_dir)
    history = json.loads((run_dir / "history.json").read_text())
    val_loss = scalar(scalars, "val/loss")
    assert [step for step, _ in val_loss] == [1, 2]
    assert [value for _, value in val_loss] == pytest.approx([row["val_loss"] for row in history], rel=1e-6)
    assert [value for _, value in scalar(scalars, "val/accuracy")] == pytest.approx(
        [row["val_metric"] for row in history])
    # 8 classes: a barely trained model is near the uniform prediction's log(8).
    assert all(0.5 * np.log(8) < row["val_loss"] < 2 * np.log(8) for row in history)
    assert not scalar(scalars, "test/accuracy")  # the test split is scored once, at the best epoch


def test_hparams_record_holds_the_config_and_the_final_metrics(run_dir):
    scalars, tensors = read_events(run_dir)
    (record,) = [value for tag, _, value in tensors if tag == "_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(record.metadata.plugin_data.content)
    hparams = data.session_start_info.hparams
    assert hparams["factors"].string_value == "2,1" and hparams["val_fraction"].number_value == pytest.approx(0.2)
    assert hparams["method"].string_value == "maxpool" and hparams["init"].string_value == "none"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert scalar(scalars, "final/best_val_accuracy") == [(2, pytest.approx(summary["best_metric"]))]
    assert scalar(scalars, "final/test_accuracy_at_best") == [(2, pytest.approx(summary["test_metric_at_best"]))]
    assert [text for tag, _, text in tensors if tag == "phase_switch"]
