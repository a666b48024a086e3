"""`kc2f export`: a run's model as a TensorFlow SavedModel (and a `.keras` file)."""

import json

import click

from kc2f.export import FORMATS


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write (created; must be empty unless --overwrite).")
@click.option("--factor", type=click.IntRange(min=1),
              help="Export at compression factor C (flexible resolution; default: the trained one).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="saved_model", show_default=True,
              help="saved_model: SavedModel + .keras; keras: the .keras file with its labels only.")
@click.option("--overwrite", is_flag=True, help="Replace a previous kc2f export in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the export summary as JSON.")
def export(run_dir, out_dir, factor, fmt, overwrite, as_json):
    """Export RUN_DIR's model: waveform in, scores and logits out, fbank and labels inside.

    The SavedModel's `serving_default` signature takes float32 waveforms
    [batch, samples] at the model's sample rate and returns `scores` (softmax,
    or sigmoid for multi-label datasets) and `logits`; assets/labels.txt names
    the classes. Works whatever KERAS_BACKEND is set.
    """
    from kc2f.export import export_run

    try:
        result = export_run(run_dir, out_dir, factor=factor, format=fmt, overwrite=overwrite)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    what = "SavedModel + .keras" if result["saved_model"] else ".keras"
    click.echo(
        f"Exported {what} to {result['out_dir']}: {result['num_classes']} classes, "
        f"{result['sample_rate']} Hz, factor {result['factor']}, "
        f"{'sigmoid' if result['multilabel'] else 'softmax'} scores."
    )
    if result["saved_model"]:
        click.echo("  signature serving_default(waveform: float32 [batch, samples]) -> scores, logits")
    click.echo(f"  keras: {result['keras']}")
    click.echo(f"  labels: {result['labels']}")
