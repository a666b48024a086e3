"""Run options: files, --set overrides and their type checks."""

import pytest

from kc2f.training.run_config import RunConfig


def test_defaults_then_file_then_set_then_cli(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: fsdd\nepochs: 12\nlr: 0.001\nfactors: [2, 1]\n")
    built = RunConfig.from_sources(path, ["epochs=7", "mixup=0.5", "target=null"], method="fshift", epochs=None)
    assert built.dataset == "fsdd"
    assert built.epochs == 7
    assert built.lr == 0.001
    assert built.factors == (2, 1)
    assert built.mixup == 0.5
    assert built.method == "fshift"
    assert built.target is None
    assert built.seed == 0
    assert RunConfig.from_dict(built.to_dict()) == built


@pytest.mark.parametrize(
    "item,match",
    [
        ("epochs=ten", "Option 'epochs' expects int or null. Received: epochs='ten'"),
        ("bogus=1", "Unknown option 'bogus'"),
        ("method=median", "must be one of"),
        ("factors=2,x", "comma-separated integers"),
        ("cache=maybe", "Option 'cache' expects bool"),
        ("noequals", "key=value"),
    ],
)
def test_bad_overrides_are_named(item, match):
    with pytest.raises(ValueError, match=match):
        RunConfig.from_sources(None, [item])


def test_bad_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [1\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        RunConfig.from_sources(path)
    path.write_text("depth: 2.5\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*|depth"):
        RunConfig.from_sources(path)
    with pytest.raises(ValueError, match="Cannot read config file"):
        RunConfig.from_sources(tmp_path / "missing.yaml")


def test_int_is_accepted_for_float_options():
    assert RunConfig.from_sources(None, ["lr=1"]).lr == 1.0
    assert isinstance(RunConfig.from_sources(None, ["lr=1"]).lr, float)


def test_method_and_preset_come_from_the_model_family():
    with pytest.raises(ValueError, match="Option 'model' must be one of"):
        RunConfig(model="nope")
    with pytest.raises(ValueError, match="Option 'preset' must be one of"):
        RunConfig(preset="huge")
    assert RunConfig(method="patch-pi", preset="tiny").method == "patch-pi"


def test_replace_validates_and_keeps_the_original():
    config = RunConfig()
    assert config.replace(epochs=3).epochs == 3 and config.epochs is None
    with pytest.raises(ValueError, match="Unknown option 'bogus'"):
        config.replace(bogus=1)
    with pytest.raises(ValueError, match="batch_size"):
        config.replace(batch_size=0)
