"""Issue 33 item 6: numbers are read the way a user writes them, in --set and in YAML files."""

import math

import pytest

from kc2f.training.run_config import RunConfig, load_file


@pytest.mark.parametrize("name, text, expected", [
    ("switch_budget", "0.9e12", 0.9e12), ("lr", "1e-4", 1e-4), ("lr", "2.5E-4", 2.5e-4), ("mixup", ".5", 0.5),
    ("lr", "3", 3.0), ("epochs", "12", 12), ("epochs", "1e1", 10), ("warmup_steps", "1_000", 1000),
    ("clip_seconds", "1", 1.0),
])
def test_set_reads_numbers_as_written(name, text, expected):
    value = RunConfig.parse_value(name, text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("name, text, message", [
    ("lr", "fast", "Option 'lr' expects float or null. Received: lr='fast'"),
    ("epochs", "2.5", "Option 'epochs' expects int or null. Received: epochs=2.5"),
    ("lr", "nan", "Option 'lr' must be a finite number"),
    ("switch_budget", "inf", "Option 'switch_budget' must be a finite number"),
])
def test_what_is_no_number_of_the_options_kind_is_refused_by_name(name, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.parse_value(name, text)


def test_a_yaml_file_and_set_items_take_exponents(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("switch: budget\nswitch_budget: 0.9e12\nlr: 1e-4\nfactors: [2, 1]\nval_fraction: 0.1\n")
    config = RunConfig.from_sources(path, sets=["weight_decay=5e-7"])
    assert (config.switch_budget, config.lr, config.weight_decay) == (0.9e12, 1e-4, 5e-7)
    assert load_file(path)["switch_budget"] == "0.9e12"  # what YAML 1.1 gives: the coercion reads it
    assert math.isclose(RunConfig.from_dict({"std": "4.2e0"}).std, 4.2)


def test_a_plateau_switch_that_cannot_fire_is_refused_before_the_run(tmp_path):
    # Issue 33 item 5: 6 epochs cap a 2 -> 1 run's coarse phase at 3, and patience 3 needs 4.
    from kc2f.training.run_error import RunError
    from kc2f.training.trainer import fit, plan_run

    config = RunConfig(factors=(2, 1), epochs=6, switch="plateau", val_fraction=0.2)
    with pytest.raises(RunError, match=r"--switch plateau cannot fire: a coarse phase trains at most 3 epochs "
                                       r"\(half of the 6 epochs over 1 coarse phase\(s\)\), but switch_patience 3 "
                                       r"needs 4"):
        fit(config, run_dir=tmp_path / "run", verbose=0, log=lambda line: None)
    assert not (tmp_path / "run").exists()
    plan_run(config.replace(switch_patience=2))
    plan_run(config.replace(switch_max_epochs=4))
