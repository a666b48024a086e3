"""The AST as a model family: how kc2f builds, resizes and counts the AST."""

import math

from kc2f.families.ast.ast_flops import training_flops_per_sample
from kc2f.families.ast.ast_minimal import MinimalAst
from kc2f.families.ast.ast_options import AstOptions
from kc2f.families.ast.ast_presets import AST_PRESETS
from kc2f.families.ast.ast_pretrained import initialize_from, is_pretraining_checkpoint
from kc2f.families.ast.ast_transfer import transfer_weights
from kc2f.families.ast.audio_spectrogram_transformer import AudioSpectrogramTransformer
from kc2f.families.ast.front_end import AST_METHODS
from kc2f.families.model_family import ModelFamily


def backbone_options(config, spec, factor):
    """The AST backbone's constructor options that a run's options and dataset fix: its front end
    (method, factor, fbank size and normalisation) and its patches; shared by the families built on
    the AST (`ast`, `ssast`)."""
    return dict(
        method=config.method,
        factor=factor,
        sample_rate=spec.sample_rate,
        target_frames=spec.target_frames,
        num_mel_bins=spec.num_mel_bins,
        fbank_mean=config.mean,
        fbank_std=config.std,
        patch_size=tuple(config.model_options.patch_size),
    )


def ast_run_sizes(config):
    """The AST encoder's size from the run's options (no preset): width, depth and heads; shared by
    the families built on the AST (`ast`, `ssast`)."""
    options = config.model_options
    return dict(hidden_dim=options.hidden_dim, depth=options.depth, num_heads=options.num_heads)


def patch_frames_multiple(config):
    """`ModelFamily.frames_multiple` of the families built on the AST: a whole number of time patches
    at every factor (fshift and pooling divide the frames by C, the patch methods widen the patch C
    times)."""
    return config.model_options.patch_size[1] * math.lcm(*config.factors)


class AstFamily(ModelFamily):
    """`--model ast`: the Audio Spectrogram Transformer with the paper's five front-ends.

    *From Coarse to Fine* (https://arxiv.org/abs/2401.08415): the phase switch
    copies every weight and resizes the two that depend on the token grid, the
    position embedding (interpolated) and, for the patch methods, the patch
    kernel (bilinear or PI resize); see `kc2f.families.ast.transfer_weights`.
    """

    name = "ast"
    methods = AST_METHODS
    presets = AST_PRESETS
    model_classes = (AudioSpectrogramTransformer,)
    options_class = AstOptions

    def build(self, config, spec, num_classes, factor):
        options = config.model_options
        kwargs = dict(
            num_classes=num_classes,
            **backbone_options(config, spec, factor),
            patch_stride=options.patch_stride,
            num_prefix_tokens=options.num_prefix_tokens,
            pooling=options.pooling or "prefix",
            mlp_ratio=options.mlp_ratio,
            dropout_rate=options.dropout_rate,
            freqm=config.freqm,
            timem=config.timem,
            seed=config.seed,
            name=f"ast_c{factor}",
        )
        return AudioSpectrogramTransformer(**self.sizes(config), **kwargs)

    def run_sizes(self, config):
        return ast_run_sizes(config)

    def frames_multiple(self, config):
        return patch_frames_multiple(config)

    def resolve_options(self, config, spec):
        """`pooling`: SSAST's mean of the patch tokens when `--init` is a pretraining run (its prefix
        tokens got no training signal of their own), else the AST's prefix tokens."""
        if config.model_options.pooling is not None:
            return {}
        pretrained = config.init is not None and is_pretraining_checkpoint(config.init)
        return {"pooling": "patch" if pretrained else "prefix"}

    def minimal_twin(self, model, seed=None):
        return MinimalAst.like(model, seed=seed)

    def transfer(self, source, target):
        return transfer_weights(source, target)

    def training_flops_per_sample(self, model):
        return training_flops_per_sample(model)

    def initialize(self, model, path, **options):
        """`kc2f.families.ast.initialize_from` (options: `skip_head`, `source_grid`)."""
        report = initialize_from(model, path, **options)
        if model.pooling_mode == "patch":
            report.notes.append("the head reads the mean of the patch tokens (pooling=patch, SSAST's ft_avgtok); "
                                "the prefix tokens stay in the sequence")
        return report
