"""`kc2f predict`: top labels of audio files, with sliding windows over long files."""

import json

import click

from kc2f.inference import AGGREGATES


def _echo_result(result):
    if "error" in result:
        click.echo(f"Error: {result['error']}", err=True)
        return
    click.echo(
        f"{result['file']}  ({result['duration']:.2f} s, {result['windows']} window"
        f"{'s' if result['windows'] != 1 else ''} of {result['window']:g} s, hop {result['hop']:g} s, "
        f"{result['aggregate']})"
    )
    width = max(len(entry["label"]) for entry in result["top"])
    for rank, entry in enumerate(result["top"], 1):
        click.echo(f"  {rank:2d}. {entry['label']:<{width}}  {entry['score']:.4f}")
    for row in result.get("per_window", []):
        best = ", ".join(f"{e['label']} {e['score']:.3f}" for e in row["top"])
        click.echo(f"      [{row['start']:7.2f} – {row['end']:7.2f} s]  {best}")


@click.command()
@click.argument("model", type=click.Path(exists=True))
@click.argument("files", nargs=-1, required=True, type=click.Path(), metavar="FILE...")
@click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False),
              help="Label names (.json list or one per line); default: beside the model.")
@click.option("--window", type=float, help="Window length, seconds (default: the training clip length).")
@click.option("--hop", type=float, help="Seconds between windows (default: window / 2).")
@click.option("--aggregate", type=click.Choice(AGGREGATES), default="mean", show_default=True,
              help="How window scores make the file's scores.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Labels to print.")
@click.option("--factor", type=click.IntRange(min=1),
              help="Run a run dir / .keras model at compression factor C (flexible resolution).")
@click.option("--multilabel/--single-label", default=None,
              help="Force sigmoid / softmax scores (default: from the run or export metadata).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Windows per model call.")
@click.option("--per-window", is_flag=True, help="Also report every window's scores.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout, one object per file.")
@click.option("--quiet", is_flag=True, help="Accepted as by the other commands; predict draws no progress (errors "
              "are still reported).")
@click.pass_context
def predict(ctx, model, files, labels_file, window, hop, aggregate, top_k, factor, multilabel, batch_size,
            per_window, as_json, quiet):
    """Predict FILE... with MODEL: a run directory, a .keras file or an exported SavedModel.

    Files are decoded (WAV, FLAC, Ogg Vorbis, MP3), mixed to mono and resampled
    to the model's rate; long files are scored in sliding windows whose scores
    are aggregated. A file that cannot be read is reported and skipped; the exit
    status is then 1.
    """
    from kc2f.inference import predict_files

    del quiet  # no per-file warnings since a file shorter than one frame is an error

    def show(result):
        if as_json:
            if "error" in result:
                click.echo(f"Error: {result['error']}", err=True)
        else:
            _echo_result(result)

    try:
        results = predict_files(
            model, files, window=window, hop=hop, aggregate=aggregate, top_k=top_k, factor=factor,
            labels=labels_file, multilabel=multilabel, per_window=per_window, batch_size=batch_size,
            on_result=show,
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(results, indent=2))
    failed = [r["file"] for r in results if "error" in r]
    if failed:
        click.echo(f"{len(failed)} of {len(results)} files could not be predicted: {', '.join(failed)}",
                   err=True)
        ctx.exit(1)
