"""Each family's options dataclass nested in `RunConfig` (issue 32 item 3), and the flat keys that still work."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.families import family_names, get_family
from kc2f.options import ModelOptions
from kc2f.training.run_config import RunConfig, flat_options


def test_flat_and_nested_spellings_make_one_run(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("dataset: fsdd\nhidden_dim: 64\npatch_size: [8, 8]\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("dataset: fsdd\nmodel_options:\n  hidden_dim: 64\n  patch_size: [8, 8]\n")
    expected = RunConfig.from_sources(flat)
    assert expected.model_options.hidden_dim == 64 and expected.model_options.patch_size == (8, 8)
    assert RunConfig.from_sources(nested) == expected
    assert RunConfig.from_sources(None, ["hidden_dim=64", "model_options.patch_size=8,8"], dataset="fsdd") == expected
    # config.json nests them, and reads back to the same run.
    record = expected.to_dict()
    assert record["model_options"]["patch_size"] == [8, 8] and "hidden_dim" not in record
    assert RunConfig.from_dict(json.loads(json.dumps(record))) == expected
    assert flat_options(record)["hidden_dim"] == 64
    # --set wins over the file, whichever spelling the file used.
    assert RunConfig.from_sources(nested, ["hidden_dim=32"]).model_options.hidden_dim == 32


def test_a_model_option_is_parsed_with_the_types_of_the_run_s_family():
    # `stretch_frames` is HTS-AT's: --model given after --set still decides how it is read.
    config = RunConfig.from_sources(None, ["stretch_frames=101"], model="htsat", method="fshift")
    assert config.model_options.stretch_frames == 101
    assert RunConfig.from_sources(None, ["mask_cluster=null"], model="ssast", method="fshift").model_options == \
        get_family("ssast").options_class()
    with pytest.raises(ValueError, match=r"Option 'hidden_dim' must be >= 1\. Received: hidden_dim=0"):
        RunConfig.from_sources(None, ["hidden_dim=0"])


@pytest.mark.parametrize("options, message", [
    ({"mask_share": 0.5}, r"Option 'mask_share' in x\.yaml is not an option of model 'ast' \(it is of 'ssast'\)"),
    ({"model": "htsat", "method": "fshift", "patch_size": [8, 8]},
     r"Option 'patch_size' in x\.yaml is not an option of model 'htsat' \(it is of 'ast', 'ssast'\)"),
    ({"model_options": {"bogus": 1}}, r"Unknown option 'model_options\.bogus' in x\.yaml\. Known options: .*"
                                      r"; model 'ast': hidden_dim, depth"),
    ({"hidden_dim": 64, "model_options": {"hidden_dim": 32}},
     r"Option 'hidden_dim' is given twice in x\.yaml, as hidden_dim: 64 and as model_options\.hidden_dim: 32"),
    ({"model_options": [1, 2]}, r"Option 'model_options' in x\.yaml must be a mapping"),
])
def test_a_wrong_model_option_is_named_with_where_it_belongs(options, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(options, source="x.yaml")


def test_replace_takes_a_model_option_by_name_and_carries_shared_ones_to_another_family():
    config = RunConfig().replace(hidden_dim=64, seed=3)
    assert config.model_options.hidden_dim == 64 and config.seed == 3
    swin = config.replace(model="htsat", method="fshift")
    assert type(swin.model_options).__name__ == "HtsatOptions" and swin.model_options.hidden_dim == 64
    with pytest.raises(ValueError, match="'pooling' in options is not an option of model 'htsat'"):
        swin.replace(pooling="patch")


@pytest.mark.parametrize("name", ["ast", "htsat", "ssast"])
def test_every_family_declares_its_own_options_apart_from_the_run_s(name):
    options_class = get_family(name).options_class
    assert issubclass(options_class, ModelOptions) and dataclasses.is_dataclass(options_class)
    assert options_class.names() and not set(options_class.names()) & set(RunConfig.names())
    assert all(field.metadata["help"] for field in dataclasses.fields(options_class))
    assert RunConfig(model=name, method=get_family(name).methods[0]).model_options == options_class()


def test_kc2f_models_lists_each_family_s_options_from_its_dataclass():
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listed = {info["name"]: info for info in json.loads(result.output)}
    assert set(family_names()) <= set(listed)
    for name in ("ast", "htsat", "ssast"):
        fields = dataclasses.fields(get_family(name).options_class)
        assert [(o["name"], o["help"]) for o in listed[name]["options"]] == \
            [(field.name, field.metadata["help"]) for field in fields]
    assert listed["ast"]["default"] and listed["ssast"]["pretrains"]
    text = CliRunner().invoke(main, ["models", "htsat"]).output
    assert "| stretch_frames | int or null | None |" in text and "| patch_size" not in text
    unknown = CliRunner().invoke(main, ["models", "nope"])
    assert unknown.exit_code != 0 and "Unknown model 'nope'" in unknown.output


def test_a_family_without_the_default_method_resumes_its_runs(tmp_path, monkeypatch):
    # Resume compares against the family's defaults, built with the run's own method.
    from kc2f.families import model_family as registry
    from kc2f.training.preparation import _config_changes
    from kc2f.training.run_directory import RunDirectory
    from tests.families.toy_family import ToyFamily

    class ShiftOnly(ToyFamily):
        name = "shift-only"
        methods = ("fshift",)

    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    registry.register_family(ShiftOnly())
    config = RunConfig(model="shift-only", method="fshift", model_options={"frames": 32})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(config.to_dict()))
    run = RunDirectory(tmp_path / "run")
    assert _config_changes(run, config) is None
    assert _config_changes(run, config.replace(frames=16)) == "frames: 32 -> 16"


def test_a_config_file_s_model_options_follow_the_model_given_on_the_command_line(tmp_path):
    # The file leaves `model` to --model: its HTS-AT option is checked against HTS-AT, not the default family.
    path = tmp_path / "htsat.yaml"
    path.write_text("stretch_frames: 101\n")
    config = RunConfig.from_sources(path, model="htsat", method="fshift")
    assert config.model_options.stretch_frames == 101
    with pytest.raises(ValueError, match="not an option of model 'ast'"):
        RunConfig.from_sources(path)
