"""Run options: files, --set overrides and their type checks."""

import pytest

from kc2f import config


def test_defaults_then_file_then_set_then_cli(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: fsdd\nepochs: 12\nlr: 0.001\nfactors: [2, 1]\n")
    built = config.build(path, ["epochs=7", "mixup=0.5", "target=null"], method="fshift", epochs=None)
    assert built["dataset"] == "fsdd"
    assert built["epochs"] == 7
    assert built["lr"] == 0.001
    assert built["factors"] == [2, 1]
    assert built["mixup"] == 0.5
    assert built["method"] == "fshift"
    assert built["target"] is None
    assert built["seed"] == 0


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
        config.build(None, [item])


def test_bad_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [1\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        config.build(path)
    path.write_text("depth: 2.5\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*|depth"):
        config.build(path)
    with pytest.raises(ValueError, match="Cannot read config file"):
        config.build(tmp_path / "missing.yaml")


def test_int_is_accepted_for_float_options():
    assert config.build(None, ["lr=1"])["lr"] == 1.0
    assert isinstance(config.build(None, ["lr=1"])["lr"], float)
