#!/usr/bin/env python
"""Converts a pretrained ViT/DeiT, AST or kc2f checkpoint into a kc2f `.keras` file, once.

Runs then start from the `.keras` file without converting again (and without
torch). The model is built by its model family (`--model`, default `ast`) from
the options below, and the family's `initialize` converts the checkpoint into
it (for the AST, `kc2f.families.ast.ast_pretrained.initialize_from`); the report says
what was copied, resized, re-initialised or left unused.

Example (AST's AudioSet checkpoint into AST-Base for ESC-50, 16×16 patches, stride 16):

    python tools/convert_checkpoint.py audioset_10_10_0.4593.pth --out ast_esc50.keras \\
        --num-classes 50 --preset base --method maxpool --factor 1 --target-frames 512

Real checkpoints are not downloaded by kc2f; see the docstring of
`kc2f.families.ast.ast_pretrained` and the README for where to get them.
"""

import types

import click

from kc2f.families import get_family
from kc2f.options import parse_ints
from kc2f.training.run_config import RunConfig


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .keras file.")
@click.option("--num-classes", required=True, type=int, help="Classes of the new model's head.")
@click.option("--model", default="ast", show_default=True, help="Model family.")
@click.option("--method", default="maxpool", show_default=True, help="Compression method of the family.")
@click.option("--factor", default=1, show_default=True, type=int, help="Compression factor C.")
@click.option("--preset", default="base", show_default=True,
              help="Size preset (ast: tiny, small, base); 'none' uses --hidden-dim/--depth/--num-heads.")
@click.option("--hidden-dim", type=int, default=768, show_default=True)
@click.option("--depth", type=int, default=12, show_default=True)
@click.option("--num-heads", type=int, default=12, show_default=True)
@click.option("--mlp-ratio", type=float, default=4.0, show_default=True)
@click.option("--patch-size", default="16,16", show_default=True, help="Full-resolution (freq,time) patch.")
@click.option("--patch-stride", default=None, help="(freq,time) stride; default: the patch size.")
@click.option("--num-prefix-tokens", type=click.IntRange(0, 2), default=2, show_default=True)
@click.option("--sample-rate", type=int, default=16000, show_default=True)
@click.option("--target-frames", type=int, default=1024, show_default=True)
@click.option("--num-mel-bins", type=int, default=128, show_default=True)
@click.option("--mean", type=float, default=None, help="fbank normalisation mean (with --std).")
@click.option("--std", type=float, default=None, help="fbank normalisation std.")
@click.option("--skip-head/--keep-head", default=None,
              help="Re-initialise / require the checkpoint's head (default: load it if the class count matches).")
@click.option("--source-grid", default=None, help="(freq,time) token grid of SRC when it cannot be inferred.")
def main(src, out, num_classes, model, method, factor, preset, hidden_dim, depth, num_heads, mlp_ratio,
         patch_size, patch_stride, num_prefix_tokens, sample_rate, target_frames, num_mel_bins,
         mean, std, skip_head, source_grid):
    """Converts SRC (.pth/.safetensors/.npz, .keras or a run directory) into a kc2f .keras file."""
    if not str(out).endswith(".keras"):
        raise click.ClickException(f"--out must end in .keras. Received: out={out}")
    try:
        sizes = dict(hidden_dim=hidden_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                     patch_size=_pair("--patch-size", patch_size),
                     patch_stride=None if patch_stride is None else _pair("--patch-stride", patch_stride),
                     num_prefix_tokens=num_prefix_tokens)
        # The AST-shaped options above, as far as the family has them (HTS-AT: no patch options).
        own = get_family(model).options_class.names()
        config = RunConfig(model=model, method=method, preset=None if preset == "none" else preset,
                           model_options={k: v for k, v in sizes.items() if k in own}, mean=mean, std=std,
                           freqm=0, timem=0)
        # The model's input geometry, as a dataset recipe would give it.
        spec = types.SimpleNamespace(sample_rate=sample_rate, target_frames=target_frames,
                                     num_mel_bins=num_mel_bins, clip_samples=target_frames * sample_rate // 100)
        family = get_family(config.model)
        network = family.build(config, spec, num_classes, factor)
        grid = None if source_grid is None else _pair("--source-grid", source_grid)
        report = family.initialize(network, src, skip_head=skip_head, source_grid=grid)
        network.save(out)
    except (ValueError, FileNotFoundError, ImportError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(str(report))
    click.echo(f"wrote {out}")


def _pair(option, text):
    values = parse_ints(text, option)
    if len(values) != 2:
        raise ValueError(f"{option} must be two integers 'freq,time'. Received: {text!r}")
    return values


if __name__ == "__main__":
    main()
