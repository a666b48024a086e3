"""`kc2f models`: the model families, their compression methods, presets and own options."""

import json

import click

from kc2f.commands.config_options import shown


def format_family(info):
    """Markdown of one family's `ModelFamily.describe()`: methods, presets and an options table."""
    tags = [tag for tag, on in (("default", info["default"]), ("pretraining: kc2f pretrain", info["pretrains"]))
            if on]
    lines = [f"## {info['name']}" + (f" ({', '.join(tags)})" if tags else ""), "",
             f"methods: {', '.join(info['methods'])}",
             f"presets: {', '.join(info['presets']) or 'none'}", ""]
    if not info["options"]:
        return "\n".join(lines + ["No options of its own."])
    lines += ["Options (--set NAME=VALUE, or a config file's model_options: section):", "",
              "| option | type | default | help |", "|---|---|---|---|"]
    for option in info["options"]:
        help_text = option["help"] + (f" (one of {', '.join(option['choices'])})" if option["choices"] else "")
        lines.append(f"| {option['name']} | {option['type']} | {shown(option['default'])} | {help_text} |")
    return "\n".join(lines)


@click.command()
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the families as JSON on stdout.")
def models(names, as_json):
    """List the model families (--model NAME): methods, presets and each family's own options.

    A family's options go in a config file's `model_options:` section or `--set NAME=VALUE`;
    installed families (entry-point group kc2f.families) are listed too.
    """
    from kc2f.families import family_names, get_family

    try:
        families = [get_family(name) for name in names or family_names()]
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    infos = [family.describe() for family in families]
    if as_json:
        click.echo(json.dumps(infos, indent=2))
    else:
        click.echo("\n\n".join(format_family(info) for info in infos))
