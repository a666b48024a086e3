"""`kc2f bench`: training-step throughput of the kc2f AST on the active backend.

Thin command over `kc2f.benchmark`: the options of what is measured make a
`BenchSpec`, and `kc2f.benchmark.run` runs it. Imports neither TensorFlow nor
`kc2f.data` unless `--from-files` is given, so it runs under a JAX- or
PyTorch-only install:

    KERAS_BACKEND=jax kc2f bench --preset base --factors 1,2,4 --batch-size 64 --precision mixed_bfloat16

`--preset` and `--batch-size` are the names `kc2f fit` uses; the old `--size`
and `--batch` still work (hidden, with a deprecation warning on stderr).

Also runnable as `python -m kc2f.commands.bench ...`.
"""

import json
import sys

import click


def _split(text, convert=str, what="value"):
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise click.BadParameter(f"expects a comma-separated list of {what}. Received: {text!r}") from None


@click.command(name="bench")
@click.option("--model", help="Model family (default: the default family, the AST; any registered one).")
@click.option("--preset", "sizes", default="base", show_default=True,
              help="Model size presets of the family, comma-separated (the AST's: tiny,small,base).")
@click.option("--size", "old_sizes", hidden=True, help="Deprecated name of --preset.")
@click.option("--hidden", type=int, help="Custom size: token width (overrides --preset).")
@click.option("--depth", type=int, help="Custom size: transformer blocks (default 12).")
@click.option("--heads", type=int, help="Custom size: attention heads (default hidden/64).")
@click.option("--methods", default="maxpool", show_default=True,
              help="Compression methods: maxpool,avgpool,fshift,patch-bl,patch-pi.")
@click.option("--factors", default="1,2,4", show_default=True, help="Compression factors C.")
@click.option("--batch-size", "batch", type=int, default=64, show_default=True, help="Batch size.")
@click.option("--batch", "old_batch", type=int, hidden=True, help="Deprecated name of --batch-size.")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Synthetic clip length, s.")
@click.option("--sample-rate", type=int, default=16000, show_default=True, help="Synthetic sample rate, Hz.")
@click.option("--frames", type=int, help="Full-resolution fbank frames (default: 10 ms frames padded "
              "to whole patches at C=4, 1024 for 10 s).")
@click.option("--steps", type=int, default=30, show_default=True, help="Timed steps (median reported).")
@click.option("--warmup", type=int, default=5, show_default=True, help="Warm-up steps (compilation included).")
@click.option("--precision", type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
              default="auto", show_default=True, help="auto: mixed_bfloat16 on GPU/TPU, float32 on CPU.")
@click.option("--jit", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="XLA of the train step (auto: on for JAX and TensorFlow; on: torch.compile on PyTorch).")
@click.option("--num-classes", type=int, default=527, show_default=True, help="Classes of the head.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of data and SpecAugment.")
@click.option("--from-files", "from_files", type=click.Path(exists=True, file_okay=False),
              help="Feed the step from audio files under DIR through the tf.data pipeline. With --profile, "
              "--breakdown, --compare-minimal or --find-max-batch: time the step of DIR's recipe (its clip, "
              "sample rate, frames, mel bins, classes) on synthetic waveforms of that shape.")
@click.option("--dataset", default="folder", show_default=True,
              help="With --from-files: the registry recipe and layout of DIR (e.g. fsdd, esc50, folder).")
@click.option("--split", default="train", show_default=True, help="With --from-files: the split to read.")
@click.option("--find-max-batch", is_flag=True, help="Report the largest batch that fits per size and factor.")
@click.option("--max-batch", type=int, default=4096, show_default=True,
              help="With --find-max-batch: upper bound of the search.")
@click.option("--compare-minimal", "compare_minimal", is_flag=True,
              help="Time kc2f's step against the same arithmetic in plain keras.ops, interleaved; print the "
              "kc2f/minimal throughput ratio.")
@click.option("--breakdown", is_flag=True,
              help="Time the step's parts, each compiled on its own: fbank, fbank+compression, forward, "
              "forward+backward, full step.")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False),
              help="Trace --steps steps of each factor's step with the backend's profiler into DIR (one folder "
              "per configuration, for TensorBoard or Perfetto) and print each one's top ops per step.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout instead of the table.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.pass_context
def bench(ctx, from_files, dataset, split, find_max_batch, max_batch, compare_minimal, breakdown, profile_dir,
          as_json, quiet, old_sizes, old_batch, **measured):
    """Time the training step (fbank, compression, SpecAugment, loss, Adam) on this backend.

    Prints one line per configuration: step_ms (median, device-synchronised),
    samples_per_s, achieved tflops from the closed-form training FLOPs, mfu
    against a matmul peak measured here, step_ratio vs C=1 next to flops_ratio,
    and peak device memory (n/a where the backend does not expose it).
    """
    # Imported when the command runs: kc2f.benchmark imports Keras and its backend, which
    # `kc2f --help` and `kc2f --version` do not need.
    from kc2f import benchmark

    _deprecated_alias(ctx, measured, "sizes", old_sizes, "--size", "--preset")
    _deprecated_alias(ctx, measured, "batch", old_batch, "--batch", "--batch-size")

    def log(line):  # progress on stderr; the table (or JSON) on stdout at the end
        if not quiet:
            click.echo(f"# done: {line}", err=True)

    try:
        result, text = benchmark.run(
            _spec(benchmark, **measured), from_files=from_files, dataset=dataset, split=split,
            find_max_batch=find_max_batch, max_batch=max_batch, log=log,
            compare_minimal=compare_minimal, breakdown=breakdown, profile=profile_dir,
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(result, indent=2) if as_json else text)


def _deprecated_alias(ctx, options, name, value, old, new):
    """Applies the deprecated option `old` (hidden) to `options[name]`, warning on stderr."""
    if value is None:
        return
    source = ctx.get_parameter_source(name)
    if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP") and options[name] != value:
        raise click.UsageError(f"{old} is the deprecated name of {new}; give one of them. "
                               f"Received: {new} {options[name]}, {old} {value}")
    click.echo(f"Warning: {old} is deprecated; use {new}.", err=True)
    options[name] = value


def _spec(benchmark, sizes, hidden, depth, heads, methods, factors, model, **fields):
    """The `BenchSpec` of the options: sizes, methods and factors parsed, the other fields as given."""
    return benchmark.BenchSpec(
        model=model,
        sizes=benchmark.model_sizes(_split(sizes), hidden, depth, heads, model=model),
        methods=_split(methods),
        factors=_split(factors, int, "integers"),
        **fields,
    )


if __name__ == "__main__":
    sys.exit(bench())
