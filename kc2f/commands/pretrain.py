"""`kc2f pretrain`: SSAST self-supervised pretraining, coarse-to-fine, counted in steps."""

import json

import click

from kc2f.commands.config_options import config_options
from kc2f.commands.output import keras_verbosity
from kc2f.options import parse_ints
from kc2f.training.run_config import RunConfig


@click.command(name="pretrain")
@config_options(
    "dataset", "data_dir", "method", "factors", paths={"data_dir": "dir"},
    defaults={"method": "fshift", "factors": (4, 1)},
    helps={"dataset": "Dataset name (labels are ignored); 'unlabelled' reads every audio file under --data-dir.",
           "method": "Compression of the coarse phases: fshift, maxpool or avgpool.",
           "factors": "Compression factors per phase; 1 alone is full-resolution pretraining."},
)
@click.option("--steps", required=True, type=int, help="Optimizer steps in all (SSAST: 600000).")
@click.option("--phase-steps", help="Steps per phase, e.g. 100000,500000 (default: 1/6 coarse, as Table 6).")
@click.option("--eval-every", type=int, default=4000, show_default=True,
              help="Steps between evaluations and commits (SSAST's epoch_iter: 4000).")
@config_options(
    "preset", "batch_size", "lr", "seed", "on_bad_audio",
    helps={"preset": "Encoder size preset (the AST's: tiny, small, base).",
           "lr": "Peak learning rate (default: SSAST's 1e-4)."},
)
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="Run directory (default runs/pretrain-<dataset>-<method>-<factors>-s<seed>).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of options.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any option (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def pretrain(config_file, sets, run_dir, quiet, phase_steps, steps, eval_every, **options):
    """Pretrain an AST encoder by masked patch modelling (SSAST); re-run the same command to resume.

    Fine-tune the result with `kc2f fit --model ast --init RUN_DIR` (the head then reads the mean
    of the patch tokens, as SSAST's ft_avgtok).
    """
    # Deferred: training imports TensorFlow and Keras, which `kc2f --help` must not wait for.
    from kc2f.families import pretraining_family
    from kc2f.training.pretraining import pretrain as pretrain_run

    try:
        parsed = parse_ints(phase_steps, "phase_steps") if phase_steps is not None else None
        config = RunConfig.from_sources(config_file, sets, model=pretraining_family().name, **options)
        summary = pretrain_run(config, steps, eval_every, phase_steps=parsed, run_dir=run_dir,
                               verbose=keras_verbosity(quiet), log=click.echo)
    except ValueError as error:  # RunError is a ValueError
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(summary, indent=2))
