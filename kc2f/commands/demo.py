"""`kc2f demo`: baseline vs maxpool 2→1 on the embedded data, the paper's tables and plot."""

import json
import sys

import click

from kc2f.commands.output import keras_verbosity, log_function, results_stdout


@click.command(name="demo")
@click.option("--out", "out_dir", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Directory of the two runs, the tables and the plots.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where the synthetic set is generated (default: the kc2f cache, $KC2F_CACHE_DIR).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of both runs.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any of the demo's options, as kc2f fit's --set (repeatable), e.g. --set decay_rate=0.85.")
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON on stdout (logs go to stderr).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir, data_dir, seed, sets, as_json, quiet):
    """Train the full-resolution baseline and a maxpool 2→1 run on the embedded synthetic set
    (8 classes, generated on first use; about 2 minutes on 2 CPU cores), then print Table 2
    (accuracy when the coarse-to-fine run first reaches the baseline's best, FLOPs and time
    saved) and Table 3 (best accuracy), and the path of the accuracy-vs-FLOPs plot.

    Re-running the same command reuses the finished runs and resumes an interrupted one.
    """
    # Deferred: training imports TensorFlow and Keras, which `kc2f --help` must not wait for.
    from kc2f.experiments.demo import run_demo

    try:
        with results_stdout(as_json):  # --json: Keras' progress bars go to stderr with the logs
            result = run_demo(out_dir, log=log_function(as_json), verbose=keras_verbosity(quiet, as_json), sets=sets,
                              data_dir=data_dir, seed=seed)
    except ValueError as error:  # RunError is a ValueError
        raise click.ClickException(str(error)) from None
    if as_json:
        json.dump({**result["report"], "plot": result["plot"], "out_dir": result["out_dir"]}, sys.stdout, indent=2)
        click.echo()
    else:
        click.echo(f"Plot of accuracy against training FLOPs: {result['plot']}")
