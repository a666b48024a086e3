"""SSAST pretraining as a model family: masked patch modelling trained coarse-to-fine."""

import keras
import numpy as np

from kc2f.families.ast.ast_family import ast_run_sizes, backbone_options, patch_frames_multiple
from kc2f.families.ast.ast_presets import AST_PRESETS
from kc2f.families.ast.ast_transfer import transfer_weights
from kc2f.families.model_family import ModelFamily
from kc2f.families.ssast.masked_patch_losses import info_nce, patch_mse
from kc2f.families.ssast.ssast_flops import pretraining_flops_per_sample
from kc2f.families.ssast.ssast_options import SsastOptions
from kc2f.families.ssast.ssast_pretrainer import PRETRAINING_METHODS, SsastPretrainer

METRIC = "masked_accuracy"
EVALUATION_SEED = 0x55A57  # the same masks at every evaluation, so epochs compare


class SsastFamily(ModelFamily):
    """`--model ssast` (`kc2f pretrain`): self-supervised pretraining of the AST encoder.

    SSAST (Gong et al., https://arxiv.org/abs/2110.09784) with the
    coarse-to-fine schedule of *From Coarse to Fine*
    (https://arxiv.org/abs/2401.08415, Table 6: Fshift 4 → 1). The model is a
    `kc2f.families.ssast.SsastPretrainer`; its loss is its own (`compile_loss` is
    `None`, the labels are ignored), and the tracked metric is the
    masked-patch accuracy on the evaluation split with fixed masks, beside
    both losses. The phase switch transfers every weight and resamples the
    position embedding, as for the AST (`kc2f.families.ast.transfer_weights`).
    Fine-tune the result with `kc2f fit --model ast --init RUN_DIR`.
    """

    name = "ssast"
    pretrains = True
    methods = PRETRAINING_METHODS
    presets = AST_PRESETS
    model_classes = (SsastPretrainer,)
    options_class = SsastOptions
    # Masked-patch accuracy picks among a factor's own masked patches (100 at Fshift 4, 400 at C = 1).
    metric_across_factors = False

    def build(self, config, spec, num_classes, factor):
        del num_classes  # no classifier: the labels are ignored
        options = config.model_options  # SsastOptions: no patch overlap (checked there)
        return SsastPretrainer(
            **backbone_options(config, spec, factor),
            **self.sizes(config),
            mlp_ratio=options.mlp_ratio,
            dropout_rate=options.dropout_rate,
            num_prefix_tokens=options.num_prefix_tokens,
            mask_share=options.mask_share,
            cluster=options.mask_cluster,
            seed=config.seed,
            name=f"ssast_c{factor}",
        )

    def run_sizes(self, config):
        return ast_run_sizes(config)

    def frames_multiple(self, config):
        return patch_frames_multiple(config)

    def transfer(self, source, target):
        return transfer_weights(source, target)

    def training_flops_per_sample(self, model):
        return pretraining_flops_per_sample(model)

    def compile_loss(self, multilabel):
        return None

    def metric(self, spec):
        return METRIC

    def evaluate(self, model, dataset, spec):
        """Mean `masked_accuracy`, `nce`, `mse` and `loss` over `dataset`, with fixed seeded masks."""
        generator = keras.random.SeedGenerator(EVALUATION_SEED)
        totals, count = np.zeros(3), 0
        for inputs, _ in dataset:
            inputs = keras.tree.map_structure(np.asarray, inputs)
            batch = len(inputs["waveform"]) if isinstance(inputs, dict) else len(inputs)
            scores = keras.random.uniform((batch, model.num_patch_tokens), seed=generator)
            indices, _ = model.masking.select(scores)
            discriminative, generative, targets = model.masked_outputs(inputs, indices=indices)
            nce, accuracy = info_nce(discriminative, targets)
            mse = patch_mse(generative, targets)
            values = np.stack([keras.ops.convert_to_numpy(v) for v in (nce, mse, accuracy)], axis=-1)
            totals += values.astype(np.float64).sum(axis=0)
            count += batch
        if not count:
            raise ValueError("The evaluation dataset is empty.")
        nce, mse, accuracy = (float(v) for v in totals / count)
        return {METRIC: accuracy, "nce": nce, "mse": mse, "loss": nce + model.generative_weight * mse}
