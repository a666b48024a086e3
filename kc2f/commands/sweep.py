"""`kc2f sweep`: the paper's baseline + method × factor-list sweep, tables and plots."""

import json

import click

from kc2f.commands.config_options import config_options
from kc2f.commands.output import keras_verbosity, log_function, results_stdout
from kc2f.training.run_config import RunConfig


@click.command(name="sweep")
@config_options("dataset", "data_dir", paths={"data_dir": "dir"})
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Sweep directory: baseline/, <method>-<factors>/ (e.g. maxpool-2-1/), tables and plots.")
@click.option("--methods", default="maxpool,fshift,avgpool,patch-bl,patch-pi", show_default=True,
              help="Comma-separated compression methods.")
@click.option("--factor-lists", default="2,1;4,1", show_default=True,
              help="Semicolon-separated factor lists, e.g. '2,1;4,1;4,2,1'.")
@click.option("--switch", "switches", default=None,
              help="Comma-separated phase-switch rules to compare, e.g. 'fixed,plateau' (default: the config's, "
                   "fixed); adaptive runs go to <method>-<factors>-<switch>/.")
@click.option("--with-3-phase", "with_3_phase", is_flag=True, help="Also run the 3-phase schedule 4,2,1.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of options.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any option (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the sweep's result (runs and tables) as JSON on stdout.")
def sweep(dataset, data_dir, out_dir, methods, factor_lists, switches, with_3_phase, config_file, sets, quiet,
          as_json):
    """Train the baseline and every method × factor list (same seed and epochs), then write
    Table 2 / Table 3 (tables.md, table2.csv, table3.csv, tables.json) and the plots to --out.

    Re-running the same command reuses finished runs and resumes an interrupted one.
    """
    # Deferred: the sweep imports TensorFlow and Keras, which `kc2f --help` must not wait for.
    from kc2f.experiments.sweep import THREE_PHASE, parse_factor_lists, parse_methods, parse_switches, run_sweep

    try:
        lists = parse_factor_lists(factor_lists)
        if with_3_phase and list(THREE_PHASE) not in lists:
            lists.append(list(THREE_PHASE))
        config = RunConfig.from_sources(config_file, sets, dataset=dataset, data_dir=data_dir)
        with results_stdout(as_json):
            result = run_sweep(config, out_dir, parse_methods(methods, config.model), lists,
                               log=log_function(as_json), verbose=keras_verbosity(quiet, as_json),
                               switches=parse_switches(switches) if switches is not None else None)
    except ValueError as error:  # RunError is a ValueError
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        click.echo(f"Sweep of {len(result['runs'])} runs done: {result['out_dir']}")
