"""Click options generated from `RunConfig`'s fields, so a run option is described once.

`config_options("dataset", "data_dir", ...)` decorates a command with one
`--name` option per field: its type and choices from the field, its help text
from the field's help (the same text `kc2f.training.run_config` documents and
`--set` accepts), its default from the field's default. Integer lists
(`--factors 2,1`) are parsed to tuples here. A command adds click settings a
field cannot say (`path=` for a directory or an existing file).
"""

import dataclasses

import click

from kc2f.options import parse_ints
from kc2f.training.run_config import RunConfig

_TYPES = {int: int, float: float, str: str, "ints": str}  # integer lists: parsed by `_parse_ints`
# How a path option is checked before the command runs.
PATHS = {
    "dir": click.Path(file_okay=False),
    "existing": click.Path(exists=True),
}


def config_field(name):
    """The `RunConfig` field called `name`; ValueError naming the known ones otherwise."""
    fields = {field.name: field for field in dataclasses.fields(RunConfig)}
    if name not in fields:
        raise ValueError(f"RunConfig has no option {name!r}. Known options: {', '.join(fields)}")
    return fields[name]


def shown(value):
    """An option's value as `--help` and `kc2f models` show it (lists comma-joined)."""
    return ",".join(str(item) for item in value) if isinstance(value, (tuple, list)) else str(value)


def option_help(field):
    """The field's help as a sentence, with its default where it has one."""
    text = field.metadata["help"]
    choices = field.metadata["choices"] or ()
    if not any(text.startswith(str(choice)) for choice in choices):  # "none | data-parallel: ..." stays
        text = text[:1].upper() + text[1:]
    default = field.default
    if default is not None and default is not dataclasses.MISSING and "None:" not in text:
        text = f"{text} (default {shown(default)})"
    return text if text.endswith(".") else text + "."


def _parse_ints(name):
    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            return parse_ints(value, name)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None

    return parse


def config_option(name, *flags, path=None, help=None, default=None):
    """One click option for the `RunConfig` field `name` (see the module docstring).

    Args:
        name: the field, and the command's parameter name.
        *flags: the option's flags (default `--name-with-dashes`).
        path: `"dir"` or `"existing"` (`PATHS`): checked as a path by click.
        help: text replacing the field's (for a command where the option means more).
        default: the command's own default (shown in `--help`), replacing the field's.
    """
    field = config_field(name)
    meta = field.metadata
    if meta["kind"] is bool:
        raise ValueError(f"Option {name!r} is a flag: give it with --set {name}=true.")
    if path is not None:
        kind = PATHS[path]
    elif meta["choices"] is not None:
        kind = click.Choice(tuple(meta["choices"]))
    else:
        kind = _TYPES[meta["kind"]]
    extra = {"callback": _parse_ints(name)} if meta["kind"] == "ints" else {}
    if default is not None:
        extra.update(default=shown(default) if meta["kind"] == "ints" else default, show_default=True)
    flags = flags or (f"--{name.replace('_', '-')}",)
    return click.option(*flags, name, type=kind, help=help or option_help(field), **extra)


def config_options(*names, paths=None, helps=None, defaults=None):
    """A decorator adding `config_option(name)` for each of `names`, in that order in `--help`.

    Args:
        *names: `RunConfig` fields.
        paths: `{name: "dir" | "existing"}` for the path options among them.
        helps, defaults: `{name: text}`, `{name: value}`: a command's own help and default.
    """
    paths, helps, defaults = paths or {}, helps or {}, defaults or {}
    unknown = (set(paths) | set(helps) | set(defaults)) - set(names)
    if unknown:
        raise ValueError(f"paths, helps or defaults name options that are not given: {sorted(unknown)}")

    def decorate(command):
        for name in reversed(names):
            command = config_option(name, path=paths.get(name), help=helps.get(name),
                                    default=defaults.get(name))(command)
        return command

    return decorate
