"""The `kc2f` command line: thin commands, each calling one library function.

Library modules are imported inside the commands: they pull in TensorFlow and
Keras (seconds), which `kc2f --help`, `--version` and `kc2f datasets` do not need.
"""

import json
import pathlib
import sys

import click

from kc2f import __version__
from kc2f.commands.backend import missing_backend
from kc2f.commands.config_options import config_options
from kc2f.commands.output import keras_verbosity, log_function, results_stdout
from kc2f.options import parse_ints
from kc2f.training.run_config import RunConfig, load_file


def _fail(error):
    raise click.ClickException(str(error)) from None


# Commands that never import Keras, and so run whatever backend is set or installed.
WITHOUT_BACKEND = ("datasets", "report", "plot")


class _Commands(click.Group):
    """The command group; a command that loads Keras first checks that its backend is installed."""

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in WITHOUT_BACKEND and not {"--help", "-h"} & set(rest):
            message = missing_backend()
            if message:
                _fail(message)
        return name, command, rest


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kc2f")
def main():
    """Coarse-to-fine training of Audio Spectrogram Transformers (Feng et al., ICASSP 2024).

    Keras 3 multi-backend: set KERAS_BACKEND=jax (fastest on GPU), tensorflow or torch.
    """


@main.command()
@config_options("dataset", "data_dir", "model", "method", "factors", "epochs", "phase_epochs", "initial_fraction",
                "switch", "target", "baseline", "val_fraction", "preset", "init", "batch_size", "lr", "seed",
                "on_bad_audio", "distribute", "average_checkpoints",
                paths={"data_dir": "dir", "baseline": "dir", "init": "existing"})
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run directory (default runs/<dataset>-<method>-<factors>-s<seed>).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of options.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any option (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout (logs on stderr).")
def fit(config_file, sets, run_dir, quiet, as_json, **options):
    """Train a baseline or coarse-to-fine run; re-run the same command to resume it.

    Every option is also a key of --config files and --set (kc2f.training.run_config.RunConfig).
    The model family's own options (the AST's hidden_dim, patch_size, ...; `kc2f models` lists
    them) go in a config file's model_options: section or --set NAME=VALUE.
    """
    from kc2f.training.trainer import fit as fit_run

    try:
        config = RunConfig.from_sources(config_file, sets, **options)
        with results_stdout(as_json):
            summary = fit_run(config, run_dir=run_dir, verbose=keras_verbosity(quiet, as_json),
                              log=log_function(as_json))
    except ValueError as error:  # RunError is a ValueError
        _fail(error)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"Summary: {pathlib.Path(summary['run_dir']) / 'summary.json'}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", help="Split to evaluate (default: the run's eval split).")
@click.option("--factors", default=None, help="Evaluate at these compression factors, e.g. 1,2,4 (default: the trained one).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Dataset root, if it moved.")
@click.option("--batch-size", type=int, help="Batch size.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON on stdout.")
def evaluate(run_dir, split, factors, data_dir, batch_size, as_json):
    """Metric of a trained run on a split, optionally at other compression factors."""
    from kc2f.training.evaluation import evaluate_run

    try:
        parsed = list(parse_ints(factors, "factors")) if factors else None
        rows = evaluate_run(run_dir, split=split, factors=parsed, data_dir=data_dir, batch_size=batch_size)
    except ValueError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"| factor | tokens | {rows[0]['metric_name']} | clips/s |\n|---|---|---|---|")
    for row in rows:
        click.echo(f"| {row['factor']} | {row['tokens']} | {100 * row['metric']:.2f} | {row['clips_per_second']:.1f} |")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--baseline", type=click.Path(exists=True, file_okay=False),
              help="The baseline run: compare RUN_DIRS with it (Tables 2 and 3; Table 6 for pretraining runs). "
                   "Without it, summarise each run.")
@click.option("--fine-tuned", "fine_tuned", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Pretraining runs: the fine-tuned run of each RUN_DIR, in order (repeatable).")
@click.option("--baseline-fine-tuned", type=click.Path(exists=True, file_okay=False),
              help="Pretraining runs: the fine-tuned run of the baseline pretraining run.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Also write report.json, report.csv and report.md into this directory.")
def report(run_dirs, baseline, fine_tuned, baseline_fine_tuned, as_json, out_dir):
    """The paper's Table 2 (FLOPs/time saved to reach the baseline) and Table 3 (best metric);
    for pretraining runs (kc2f pretrain), Table 6 (pretraining savings, fine-tuned metric and Δ);
    without --baseline, each run's metric, best epoch, FLOPs and time.

    Metrics are labelled with their split: `val` (a run with --val-fraction) or
    `test` (the paper's protocol, eval_split test); a run with a validation
    split also shows its test metric at the best (selected) epoch.
    """
    from kc2f.experiments import report as report_lib
    from kc2f.experiments.pretraining_report import build_any_report, format_any_text

    try:
        if baseline is None:
            if fine_tuned or baseline_fine_tuned:
                raise ValueError("--fine-tuned and --baseline-fine-tuned compare pretraining runs with "
                                 "--baseline: give it.")
            tables = report_lib.build_run_summaries(run_dirs)
            text = report_lib.format_summaries(tables)
        else:
            tables = build_any_report(run_dirs, baseline, fine_tuned, baseline_fine_tuned)
            text = format_any_text(tables)
        if out_dir:
            report_lib.write_report(tables, out_dir, text)
    except ValueError as error:
        _fail(error)
    except OSError as error:
        _fail(f"Cannot write the report to {out_dir}: {error.strerror or error}")
    click.echo(json.dumps(tables, indent=2) if as_json else text)


@main.command()
@click.option("--dataset", required=True, help="Dataset name.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Dataset root on disk.")
@click.option("--split", default="train", show_default=True, help="Split to compute the statistics on.")
@click.option("--max-examples", type=int, help="Use only this many clips.")
@click.option("--write", "write_path", type=click.Path(dir_okay=False),
              help="Also write `mean:` and `std:` to this YAML config (for --config).")
@click.option("--sample-rate", type=click.IntRange(min=1), help="Resample to this rate, Hz (as fit's option).")
@click.option("--clip-seconds", type=click.FloatRange(min=0, min_open=True),
              help="Crop clips to this length, as fit's clip_seconds (default: the recipe's).")
@click.option("--num-mel-bins", type=click.IntRange(min=1),
              help="Mel filters of the fbank, as fit's num_mel_bins (default: the recipe's).")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON on stdout.")
def stats(dataset, data_dir, split, max_examples, write_path, sample_rate, clip_seconds, num_mel_bins, as_json):
    """Fbank mean/std of a dataset split, without augmentation (for normalisation)."""
    from kc2f.data.stats import dataset_stats
    from kc2f.training.run_config import set_options_in_file

    try:
        if write_path and pathlib.Path(write_path).exists():
            load_file(write_path)  # refused before the statistics are computed, not after
        inputs = {key: value for key, value in (("sample_rate", sample_rate), ("clip_seconds", clip_seconds),
                                                ("num_mel_bins", num_mel_bins)) if value is not None}
        mean, std, count = dataset_stats(dataset, data_dir, split, max_examples=max_examples, **inputs)
    except (ValueError, OSError) as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps({"dataset": dataset, "split": split, "clips": count, "mean": float(mean),
                               "std": float(std)}, indent=2))
    else:
        click.echo(f"{dataset} {split} ({count} clips): mean={mean:.7g} std={std:.7g}")
    if write_path:
        try:
            # The input options too: the statistics hold for that input only.
            set_options_in_file(write_path, {"dataset": dataset, **inputs, "mean": float(mean), "std": float(std)})
        except ValueError as error:
            _fail(error)
        log_function(as_json)(f"Wrote {'/'.join([*inputs, 'mean', 'std'])} to {write_path}; use it with "
                              f"--config {write_path}.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print every dataset's recipe as JSON on stdout.")
def datasets(as_json):
    """List the datasets kc2f knows, with their recipe values."""
    import dataclasses

    from kc2f.data.registry import DATASETS

    if as_json:
        click.echo(json.dumps({name: dataclasses.asdict(spec) for name, spec in DATASETS.items()}, indent=2))
        return
    click.echo("| name | layout | classes | metric | rate | clip s | frames | mel | epochs (initial) |")
    click.echo("|---|---|---|---|---|---|---|---|---|")
    for name, spec in DATASETS.items():
        click.echo(
            f"| {name} | {spec.layout} | {spec.num_classes or 'data'} | {spec.metric} | {spec.sample_rate} | "
            f"{spec.clip_seconds:g} | {spec.target_frames} | {spec.num_mel_bins} | {spec.epochs} ({spec.initial_epochs}) |"
        )


from kc2f.commands.bench import bench  # noqa: E402
from kc2f.commands.cv import cv  # noqa: E402
from kc2f.commands.demo import demo  # noqa: E402
from kc2f.commands.export import export  # noqa: E402
from kc2f.commands.models import models  # noqa: E402
from kc2f.commands.plot import plot  # noqa: E402
from kc2f.commands.predict import predict  # noqa: E402
from kc2f.commands.pretrain import pretrain  # noqa: E402
from kc2f.commands.sweep import sweep  # noqa: E402

main.add_command(bench)
main.add_command(cv)
main.add_command(demo)
main.add_command(export)
main.add_command(models)
main.add_command(predict)
main.add_command(pretrain)
main.add_command(sweep)
main.add_command(plot)

if __name__ == "__main__":
    sys.exit(main())
