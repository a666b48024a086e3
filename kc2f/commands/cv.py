"""`kc2f cv`: ESC-50's 5-fold cross-validation, one run per held-out fold, mean ± std."""

import json

import click

from kc2f.commands.config_options import config_options
from kc2f.commands.output import keras_verbosity, log_function, results_stdout
from kc2f.options import parse_ints
from kc2f.training.run_config import RunConfig


@click.command(name="cv")
@config_options("dataset", "data_dir", paths={"data_dir": "dir"}, defaults={"dataset": "esc50"},
                helps={"dataset": "Dataset with folds (esc50)."})
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Cross-validation directory: fold1/ ... fold5/ (one run each), cv.json, cv.md.")
@click.option("--folds", default="1,2,3,4,5", show_default=True, help="Held-out folds to run.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of options.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any option (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the cross-validation result as JSON on stdout.")
def cv(dataset, data_dir, out_dir, folds, config_file, sets, quiet, as_json):
    """Train one run per held-out fold (same options otherwise), then print and write
    (cv.json, cv.md) the mean ± std of the per-fold metric, as AST reports ESC-50.

    Re-running the same command reuses finished folds and resumes an interrupted one.
    """
    # Deferred: training imports TensorFlow and Keras, which `kc2f --help` must not wait for.
    from kc2f.experiments.cross_validation import run_cross_validation

    try:
        config = RunConfig.from_sources(config_file, sets, dataset=dataset, data_dir=data_dir)
        with results_stdout(as_json):
            result = run_cross_validation(config, out_dir, parse_ints(folds, "folds"), log=log_function(as_json),
                                          verbose=keras_verbosity(quiet, as_json))
    except ValueError as error:  # RunError is a ValueError
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    click.echo(f"{result['metric']}: {100 * result['mean']:.2f} ± {100 * result['std']:.2f} % "
               f"over {len(result['folds'])} folds ({out_dir})")
