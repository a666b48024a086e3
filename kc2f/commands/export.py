"""`kc2f export`: a run's model as a TensorFlow SavedModel (and a `.keras` file)."""

import json

import click

from kc2f.export import FORMATS


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The model's base directory; the export goes to OUT/N (N: --model-version).")
@click.option("--model-version", type=click.IntRange(min=1), default=1, show_default=True,
              help="Version number N (TF Serving serves the highest under OUT).")
@click.option("--factor", type=click.IntRange(min=1),
              help="Export at compression factor C (flexible resolution; default: the trained one).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="saved_model", show_default=True,
              help="saved_model: SavedModel + .keras; keras: the .keras file with its labels only.")
@click.option("--overwrite", is_flag=True, help="Replace an existing export of the same version.")
@click.option("--json", "as_json", is_flag=True, help="Print the export summary as JSON.")
def export(run_dir, out_dir, model_version, factor, fmt, overwrite, as_json):
    """Export RUN_DIR's model for serving: waveform and sample rate in, scores and labels out.

    Writes OUT/N/ (TF Serving's layout): the SavedModel, whose `serving_default`
    signature takes float32 waveforms [batch, samples] of any length and their
    `sample_rate`, resamples, slides windows over long clips and returns
    `scores`, `logits`, `label`, `labels` and `window_scores`; the .keras model;
    assets/labels.txt and assets/kc2f.json; and README.md, the model card.
    Works whatever KERAS_BACKEND is set.
    """
    from kc2f.export import export_run

    try:
        result = export_run(run_dir, out_dir, factor=factor, format=fmt, overwrite=overwrite,
                            version=model_version)
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
        click.echo("  signature serving_default(waveform: float32 [batch, samples], sample_rate: int32) -> "
                   "scores, logits, label, labels, window_scores, windows")
        click.echo(f"  sample rates: {', '.join(map(str, result['sample_rates']))} Hz")
    click.echo(f"  keras: {result['keras']}")
    click.echo(f"  labels: {result['labels']}")
    click.echo(f"  model card: {result['model_card']}")
