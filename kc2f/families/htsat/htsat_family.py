"""HTS-AT as a model family: how kc2f builds, resizes and counts HTS-AT."""

from kc2f.families.htsat.htsat import HTSAT_METHODS, HTSAT_PRESETS, Htsat
from kc2f.families.htsat.htsat_checkpoint import initialize_htsat, is_reference_checkpoint
from kc2f.families.htsat.htsat_flops import htsat_training_flops_per_sample
from kc2f.families.htsat.htsat_options import HtsatOptions
from kc2f.families.htsat.htsat_transfer import transfer_swin_weights
from kc2f.families.model_family import ModelFamily


class HtsatFamily(ModelFamily):
    """`--model htsat`: HTS-AT (https://arxiv.org/abs/2202.00874) trained coarse-to-fine.

    *From Coarse to Fine* (https://arxiv.org/abs/2401.08415, Table 6) trains
    HTS-AT with Fshift 4 → 1. Sizes come from a preset (`--preset base`, HTS-AT's
    own, 64 mel bins; `--preset tiny` for CPU runs); without one, `hidden_dim`
    is the first stage's width, `depth` the number of stages (two blocks each)
    and `num_heads` the first stage's heads (doubled per stage), with HTS-AT's
    window 8, patch 4 and 64 mel bins. The clip's frames are the dataset's
    (`target_frames`, 10 ms hops: 1024 for 10 s) at the dataset's (or
    `--sample-rate`'s) rate. Its options are `HtsatOptions`; the run's `mean`/`std`
    do not apply (HTS-AT normalises with its own BatchNorm).
    """

    name = "htsat"
    methods = HTSAT_METHODS
    presets = HTSAT_PRESETS
    model_classes = (Htsat,)
    options_class = HtsatOptions

    def build(self, config, spec, num_classes, factor):
        return Htsat(
            num_classes=num_classes,
            method=config.method,
            factor=factor,
            sample_rate=spec.sample_rate,
            target_frames=spec.target_frames,
            mlp_ratio=config.model_options.mlp_ratio,
            freqm=config.freqm,
            timem=config.timem,
            stretch_frames=config.model_options.stretch_frames,
            seed=config.seed,
            name=f"htsat_c{factor}",
            **self.sizes(config),
        )

    def sizes(self, config):
        """The preset's or the run's sizes (`run_sizes`), with the run's `num_mel_bins` where it gives one."""
        sizes = super().sizes(config)
        if config.num_mel_bins is not None:
            sizes["num_mel_bins"] = config.num_mel_bins
        return sizes

    def run_sizes(self, config):
        """Swin stages of two blocks, heads doubling per stage (HTS-AT's window 8 and 64 mel bins)."""
        options = config.model_options
        return {
            "embed_dim": options.hidden_dim,
            "depths": (2,) * options.depth,
            "num_heads": tuple(options.num_heads * 2**i for i in range(options.depth)),
            "window_size": 8,
            "num_mel_bins": 64,
        }

    def frames_multiple(self, config):
        return Htsat.frames_multiple(self.sizes(config)["depths"])

    def resolve_options(self, config, spec):
        """`stretch_frames`: initialised from HTS-AT's own checkpoint, a clip shorter than the model's
        frames is stretched to them as the reference does (1001 -> 1024 for 10 s), not zero-padded,
        so that the official weights see their time scale."""
        if (config.model_options.stretch_frames is not None or config.init is None
                or not is_reference_checkpoint(config.init)):
            return {}
        frames = 1 + round(spec.clip_seconds * spec.sample_rate) // Htsat.default_hop(spec.sample_rate)
        return {"stretch_frames": frames} if frames < spec.target_frames else {}

    def transfer(self, source, target):
        return transfer_swin_weights(source, target)

    def training_flops_per_sample(self, model):
        return htsat_training_flops_per_sample(model)

    def initialize(self, model, path, **options):
        """`kc2f.families.htsat.htsat_checkpoint.initialize_htsat` (option: `skip_head`)."""
        return initialize_htsat(model, path, **options)
