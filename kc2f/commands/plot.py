"""`kc2f plot`: metric vs FLOPs / time and step time per phase, as PNG files."""

import json

import click


@click.command(name="plot")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--baseline", type=click.Path(exists=True, file_okay=False),
              help="The baseline run: its curve dashed and its best metric as a horizontal line.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for the PNG files.")
@click.option("--json", "as_json", is_flag=True, help="Print the written files as a JSON list on stdout.")
def plot(run_dirs, baseline, out_dir, as_json):
    """Plot RUN_DIRS: metric_vs_flops.png, metric_vs_time.png, step_time_per_phase.png."""
    # Deferred: matplotlib and the run readers are not needed for `kc2f --help`.
    from kc2f.experiments.plots import make_plots

    try:
        paths = make_plots(run_dirs, out_dir, baseline_dir=baseline)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(
            f"--out {out_dir}: cannot write the plots there: {error.strerror or error}") from None
    if as_json:
        click.echo(json.dumps([str(path) for path in paths], indent=2))
        return
    for path in paths:
        click.echo(str(path))
