"""The model-family seam: what the trainer needs from a kind of model, and the registry.

kc2f trains any Keras audio classifier coarse-to-fine through a `ModelFamily`.
The trainer, the benchmark, evaluation at another factor, export and the
checkpoint converter never name a model class: they ask the family of the run
(`get_family(config.model)`) or of a loaded model (`family_of(model)`).

A family says how to build the model of one phase from the run's options, which
compression methods it implements, how to carry a trained model's weights into
the next phase's model (resizing whatever depends on the token grid), and how
many FLOPs one training sample costs. Registering a family is all it takes to
train a new model with `kc2f fit --model NAME`:

    class TinyFamily(kc2f.families.ModelFamily):
        name = "tiny-cnn"
        methods = ("maxpool",)
        model_classes = (TinyCnn,)

        def build(self, config, spec, num_classes, factor):
            return TinyCnn(num_classes, factor=factor, sample_rate=spec.sample_rate)

        def transfer(self, source, target):
            ...  # copy each weight, resample the ones whose shape follows the token grid

        def training_flops_per_sample(self, model):
            return 3.0 * model.forward_flops()

    kc2f.families.register_family(TinyFamily())

`tests/families/toy_family.py` is a complete, tested example.
"""

import math
import os

import keras

from kc2f.options import ModelOptions


class ModelFamily:
    """A kind of model that kc2f can train coarse-to-fine (subclass it).

    Models of a family must be Keras models with a `factor` attribute (the
    phase's temporal compression) and `get_config`/`from_config` whose config
    has a `factor` entry, so that the same model can be rebuilt at another
    factor.

    Attributes:
        name: the `--model` name.
        methods: the compression methods the family implements (the first is
            the default).
        presets: size presets, `{name: {constructor argument: value}}`.
        model_classes: the Keras classes of the family's models
            (`family_of` finds the family of a loaded model by its class).
        options_class: the family's own options, a frozen `ModelOptions`
            dataclass (e.g. `AstOptions`); a run holds an instance as
            `config.model_options` (YAML and `config.json`: `model_options:`,
            `--set NAME=VALUE`), and `kc2f models NAME` lists them. The base
            class has none.
        pretrains: a self-supervised pretraining family: `kc2f pretrain`
            trains it (`pretraining_family`), and reports read its runs as
            pretraining runs (the paper's Table 6).
    """

    name = None
    methods = ()
    presets = {}
    model_classes = ()
    options_class = ModelOptions
    pretrains = False
    # Whether one factor's metric compares with another's: a classifier's accuracy does; a metric
    # over each factor's own tokens (SSAST's masked-patch accuracy) does not, and then the best
    # epoch is chosen among the latest factor's (kc2f.training.run_state.best_row).
    metric_across_factors = True

    def build(self, config, spec, num_classes, factor):
        """The model of one phase.

        Args:
            config: the run's `kc2f.training.RunConfig`: its run options, and
                the family's own in `config.model_options` (an instance of
                `options_class`).
            spec: the dataset's `kc2f.data.DatasetSpec` (sample rate, clip
                frames, mel bins).
            num_classes: output classes.
            factor: the phase's compression factor C.

        Returns:
            A built Keras model, logits `(batch, num_classes)` out.
        """
        raise NotImplementedError(f"{type(self).__name__}.build")

    def transfer(self, source, target):
        """Copies `source`'s weights into `target` (another factor), resizing grid-shaped ones.

        Returns:
            A report whose `str()` names every weight and what was done to it,
            and whose `paths("resized")` lists the resized ones.
        """
        raise NotImplementedError(f"{type(self).__name__}.transfer")

    def training_flops_per_sample(self, model):
        """FLOPs of one training sample (forward + backward) of `model`."""
        raise NotImplementedError(f"{type(self).__name__}.training_flops_per_sample")

    def sizes(self, config):
        """The size arguments of the family's model constructor: the preset's
        (`presets[config.preset]`) when the run names one, else `run_sizes(config)`. The one
        way every family resolves `--preset`."""
        if config.preset is not None:
            return dict(self.presets[config.preset])
        return self.run_sizes(config)

    def run_sizes(self, config):
        """Size arguments from the run's model options (`config.model_options`), for a run without a
        preset (default: none)."""
        return {}

    def describe(self):
        """What `kc2f models` prints of the family: its methods, presets and own options (each option's
        name, type, default, choices and help, from `options_class`).

        Returns:
            dict: name, default (whether a run without `model` gets it),
            pretrains, methods, presets (`{name: sizes}`), options.
        """
        return {
            "name": self.name,
            "default": _DEFAULT == [self.name],
            "pretrains": self.pretrains,
            "methods": list(self.methods),
            "presets": {name: {key: list(value) if isinstance(value, tuple) else value
                               for key, value in sizes.items()} for name, sizes in self.presets.items()},
            "options": self.options_class.describe(),
        }

    def resolve_options(self, config, spec):
        """The family's options (`config.model_options`) that a run fills where `config` leaves them
        `None` (recorded in `config.json`), as a dict of changes, given the run's input `spec`; the
        default fills none."""
        return {}

    def initialize(self, model, path, **options):
        """Loads pretrained weights from the local file or run directory `path` into `model`.

        `options` are the family's own (e.g. the AST's `skip_head`).

        Returns:
            A report whose `str()` says what was loaded, resized or left out.
        """
        raise ValueError(f"Model '{self.name}' cannot be initialised from a checkpoint. Received: init={path}")

    def compile_loss(self, multilabel):
        """The loss `model.compile` gets: cross-entropy on the logits (binary for multi-hot labels).

        A family whose models compute their own loss (e.g. self-supervised
        pretraining, `compute_loss` overridden) returns `None`.
        """
        if multilabel:
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.CategoricalCrossentropy(from_logits=True)

    def metric(self, spec):
        """Name of the validation metric the run tracks (higher is better): the dataset's by default."""
        return spec.metric

    def evaluate(self, model, dataset, spec):
        """Validation metrics `{name: value}` of `model` on `dataset`, or `None` (the default).

        `None` lets the trainer score the classifier's logits against the
        labels (accuracy / mAP, exactly). A family whose models are not
        classifiers returns its own metrics, `metric(spec)` among them.
        """
        return None

    def frames_multiple(self, config):
        """What a clip's full-resolution frames must be a multiple of, for every factor of the run.

        Frames chosen by kc2f (`--set clip_seconds=...` alone, or a folder
        dataset's input sized from its clips) are rounded up to it. The default,
        the least common multiple of the factors, lets every phase see a whole
        number of frames; a family whose models cut frames into patches or
        chunks returns a multiple of those too.
        """
        return math.lcm(*config.factors)

    def tokens(self, model):
        """Tokens the model's transformer sees per clip (logged per epoch; 0 if not a transformer)."""
        return int(getattr(model, "num_patch_tokens", 0))

    def serving_info(self, model):
        """What export and prediction need to know of a finished `model`: a dict of

        - `sample_rate` (Hz) of the waveform the model takes;
        - `target_frames`, `frame_shift_ms`, `frame_length_ms`: the full-resolution
          frames of one clip and their hop and length (the clip the model scores
          is `target_frames · frame_shift_ms`, its windows are cut from longer audio);
        - `method`, `factor`, `num_classes`;
        - `token_grid`: the shape of the model's tokens at its factor (for the
          export's metadata).

        The model takes `{"waveform": (batch, samples), "length": (batch,)}` at
        `sample_rate` and returns logits `(batch, num_classes)`. The default reads
        the attributes of that name, which kc2f's models have; a family whose model
        lacks them says here what they are.
        """
        return dict(sample_rate=int(model.sample_rate), target_frames=int(model.target_frames),
                    frame_shift_ms=float(model.frame_shift_ms), frame_length_ms=float(model.frame_length_ms),
                    method=model.method, factor=int(model.factor), num_classes=int(model.num_classes),
                    token_grid=[int(size) for size in model.token_grid])

    def minimal_twin(self, model, seed=None):
        """`model`'s training-step arithmetic written directly in `keras.ops`, for
        `kc2f bench --compare-minimal` (kc2f's step over it is the layers' overhead), or `None`
        when the family has none. It has `model`'s shapes and front end and its own weights.

        Raises:
            ValueError: a `model` the twin cannot mirror.
        """
        return None

    def at_factor(self, model, factor):
        """`model` rebuilt at compression `factor`, its weights transferred.

        Flexible-resolution inference: a model trained at full resolution runs
        on C-times compressed input, trading accuracy for speed.
        """
        if factor == model.factor:
            return model
        config = model.get_config()
        config.update(factor=factor, name=f"{model.name}_c{factor}")
        resized = type(model).from_config(config)
        self.transfer(model, resized)
        return resized

    def inference_copy(self, model):
        """A fresh, uncompiled copy of `model` with its weights (no optimizer, no replicas)."""
        clean = type(model).from_config(model.get_config())
        for clean_weight, weight in zip(clean.weights, model.weights):
            clean_weight.assign(keras.ops.convert_to_numpy(weight))
        return clean


_FAMILIES = {}
_DEFAULT = []  # the name of the family a run gets without `model`, once registered
# Installed packages add families under this entry-point group, e.g. in their pyproject.toml:
#   [project.entry-points."kc2f.families"]
#   energy = "my_package.family:EnergyFamily"      (a ModelFamily subclass, or an instance)
ENTRY_POINT_GROUP = "kc2f.families"
_discovered = False


def discover_families():
    """Registers the families of installed packages (the `kc2f.families` entry points), once.

    A built-in or already registered name is kept; a plugin that fails to load
    is named with the error in one line.
    """
    global _discovered
    if _discovered:
        return
    _discovered = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in _FAMILIES:
            continue
        try:
            family = point.load()
            family = family() if isinstance(family, type) else family
            if family.name != point.name:
                raise ValueError(f"its family is named {family.name!r}")
            register_family(family)
        except Exception as error:  # noqa: BLE001  (a plugin's import can fail in any way)
            _discovered = False  # tried again next time, so the error shows where the name is asked for
            raise ValueError(f"Cannot load model family '{point.name}' from entry point {point.value!r} "
                             f"({ENTRY_POINT_GROUP}): {type(error).__name__}: {error}") from None


def register_family(family, default=False):
    """Registers `family` (a `ModelFamily` instance) under `family.name`; returns it.

    `default=True` makes it the family of runs that name none (`default_family`).
    """
    if not isinstance(family, ModelFamily):
        raise ValueError(f"family must be a ModelFamily instance. Received: family={family!r}")
    if not isinstance(family.name, str) or not family.name:
        raise ValueError(f"A model family needs a non-empty name. Received: name={family.name!r}")
    if not family.methods:
        raise ValueError(f"Model family '{family.name}' lists no compression method. Received: methods=()")
    _FAMILIES[family.name] = family
    if default:
        _DEFAULT[:] = [family.name]
    return family


def default_family():
    """The family of a run that names none: the one registered with `default=True`."""
    if not _DEFAULT:
        raise ValueError("No default model family is registered (register_family(family, default=True)).")
    return _FAMILIES[_DEFAULT[0]]


def pretraining_family():
    """The family `kc2f pretrain` trains: the first registered whose `pretrains` is true."""
    discover_families()
    for family in _FAMILIES.values():
        if family.pretrains:
            return family
    raise ValueError(f"No registered model family pretrains (ModelFamily.pretrains). Known models: "
                     f"{', '.join(sorted(_FAMILIES))}")


def get_family(name):
    """The registered (or installed, `discover_families`) family called `name`; ValueError listing the known ones."""
    if name not in _FAMILIES:
        discover_families()
    if name not in _FAMILIES:
        raise ValueError(f"Unknown model '{name}'. Known models: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def family_names():
    """Names of the registered families (installed ones included), in registration order."""
    discover_families()
    return tuple(_FAMILIES)


def load_model(path):
    """A kc2f `.keras` model for inference; ValueError naming the file, in one line, when it cannot load.

    Installed families are discovered first, so that their model classes are known to Keras.
    """
    import zipfile

    discover_families()
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        # Keras says "File not found" for a file that is there but is no zip (truncated, damaged).
        raise ValueError(f"Cannot load the Keras model {path}: the file is not a complete .keras (zip) "
                         f"archive ({os.path.getsize(path)} bytes): truncated or damaged.")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001  (a damaged zip or config raises many types)
        detail = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(f"Cannot load the Keras model {path}: {type(error).__name__}: {detail}") from None


def family_of(model):
    """The family whose `model_classes` include `model`'s class."""
    discover_families()
    for family in _FAMILIES.values():
        if isinstance(model, tuple(family.model_classes)):
            return family
    raise ValueError(
        f"No registered model family builds {type(model).__name__}. "
        f"Known models: {', '.join(sorted(_FAMILIES))}"
    )
