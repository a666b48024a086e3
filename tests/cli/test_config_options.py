"""CLI options generated from `RunConfig`'s fields: one help text, type and choice list per option."""

import dataclasses

import click
import pytest
from click.testing import CliRunner

from kc2f.cli import main
from kc2f.commands.config_options import config_option, config_options, option_help
from kc2f.training.run_config import RunConfig

FIELDS = {field.name: field for field in dataclasses.fields(RunConfig)}


def _params(command):
    return {param.name: param for param in command.params}


@pytest.mark.parametrize("command", ["fit", "pretrain", "sweep", "cv"])
def test_run_options_of_the_commands_come_from_run_config(command):
    params = _params(main.commands[command])
    shared = [name for name in params if name in FIELDS]
    assert shared, command
    for name in shared:
        field, param = FIELDS[name], params[name]
        if field.metadata["choices"] is not None:
            assert list(param.type.choices) == list(field.metadata["choices"]), name
    # fit states every run option it takes in RunConfig's own words.
    if command == "fit":
        for name in shared:
            assert params[name].help == option_help(FIELDS[name]), name
        assert {"dataset", "factors", "switch", "val_fraction", "average_checkpoints"} <= set(shared)


def test_option_help_is_the_field_help_with_its_default():
    assert option_help(FIELDS["seed"]) == "Seed of initialisation, data order and augmentation (default 0)."
    assert option_help(FIELDS["factors"]).endswith("(default 1).")
    # A help whose first word is a choice keeps its case; one that explains None shows no default.
    assert option_help(FIELDS["distribute"]).startswith("none | data-parallel")
    assert "(default" not in option_help(FIELDS["epochs"])


def test_integer_lists_are_parsed_and_bad_ones_named():
    @click.command()
    @config_options("factors", "phase_epochs", defaults={"factors": (4, 1)})
    def show(factors, phase_epochs):
        click.echo(f"{factors} {phase_epochs}")

    runner = CliRunner()
    assert runner.invoke(show, []).output.strip() == "(4, 1) None"
    assert runner.invoke(show, ["--factors", "2,1", "--phase-epochs", "3,7"]).output.strip() == "(2, 1) (3, 7)"
    bad = runner.invoke(show, ["--factors", "2,x"])
    assert bad.exit_code == 2 and "factors" in bad.output and "'2,x'" in bad.output


def test_unknown_fields_and_flags_are_refused():
    with pytest.raises(ValueError, match="no option 'nope'"):
        config_option("nope")
    with pytest.raises(ValueError, match="--set cache=true"):
        config_option("cache")
    with pytest.raises(ValueError, match="not given"):
        config_options("seed", paths={"data_dir": "dir"})
