"""The typed run configuration: every option's name, type, default, help and choices.

`RunConfig` is the one place that knows the options of a run. YAML files
(`--config`), `--set key=value` overrides, the click options of `kc2f fit` and
`kc2f sweep`, `config.json` in a run directory and the Python API all go
through it, so a wrong name or type is an error that names the option before
anything runs. Values left `None` are filled from the dataset's recipe
(`kc2f.data.registry`) when the run is resolved
(`kc2f.training.preparation.resolve`), so a config file only names what
differs from the recipe. The compression methods and size presets come from the
model family (`kc2f.families.get_family(model)`), not from a list here, and so
do the model's own options: the family's `options_class` dataclass, held as
`model_options` (`kc2f models` lists them; `split_options` reads them flat or
nested).
"""

import dataclasses
import json
import math
import os
import pathlib
import re

import yaml

from kc2f.options import OptionSet, option as _option

# `fit`'s learning-rate schedule where `lr_schedule` / `warmup_steps` are left None (`kc2f pretrain`
# fills SSAST's instead: kc2f.training.pretraining).
DEFAULT_LR_SCHEDULE = "warmup-step-decay"
DEFAULT_WARMUP_STEPS = 100
MODEL_OPTIONS = "model_options"
_MODEL_PREFIX = MODEL_OPTIONS + "."


def selection_split(options):
    """The split a run's `val_metric` is on, from its options (a `config.json` mapping): `"val"` or `"test"`.

    `"val"` with `val_fraction` (a hold-out of the training split, or the
    dataset's own validation split) or `eval_split: valid`; `"test"` for the
    paper's protocol (`eval_split: test`, the default), where the test split
    selects the best epoch.
    """
    if options.get("val_fraction") is not None:
        return "val"
    return "val" if options.get("eval_split", "test") == "valid" else "test"


def parse_average_best(text):
    """`"best:5"` -> `5` (another form, or `None` -> `None`); ValueError naming `average_checkpoints` for
    a count below 1."""
    if text is None or not str(text).startswith("best:"):
        return None
    try:
        count = int(str(text)[5:])
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError("Option 'average_checkpoints' best:K needs a whole K >= 1 (e.g. best:5). "
                         f"Received: average_checkpoints={text!r}")
    return count


def parse_average_range(text):
    """`"1..5"` -> `(1, 5)` (`None` or `"best:K"` -> `None`); ValueError naming `average_checkpoints`
    otherwise."""
    if text is None or parse_average_best(text) is not None:
        return None
    first, sep, last = str(text).partition("..")
    try:
        first, last = int(first), int(last)
    except ValueError:
        first = last = None
    if not sep or first is None or not 1 <= first <= last:
        raise ValueError(
            "Option 'average_checkpoints' expects FIRST..LAST, two epochs with 1 <= FIRST <= LAST "
            f"(e.g. 1..5), or best:K. Received: average_checkpoints={text!r}"
        )
    return first, last


@dataclasses.dataclass(frozen=True)
class RunConfig(OptionSet):
    """Options of one training run (immutable; `replace` makes a changed copy).

    Attributes are the run's options below, each with its help text in the
    field's metadata, and `model_options`: the options of the run's model
    family, an instance of its `options_class` (e.g. the AST's `AstOptions`:
    `hidden_dim`, `depth`, `patch_size`, ...). Integer lists are tuples.

    A model option is also accepted where a run option is (`from_dict`,
    `from_sources`, `replace`, YAML files, `--set`) under its own name, as
    before the options were nested: `hidden_dim: 64` and
    `model_options: {hidden_dim: 64}` are the same run.
    """

    dataset: str = _option("synthetic", "dataset name from the registry (kc2f datasets)", str)
    sample_rate: int = _option(None, "resample every clip to this rate, Hz (None: the dataset's; HTS-AT: 32000)",
                               int, nullable=True)
    clip_seconds: float = _option(None, "seconds of audio per model input: longer clips are cropped (at random "
                                  "in training), shorter ones zero-padded (None: the dataset's recipe; folder and "
                                  "manifest datasets: chosen from the training clips and logged)", float,
                                  nullable=True, above=0.0)
    target_frames: int = _option(None, "fbank frames (10 ms) per input at full resolution (None: the recipe's, or "
                                 "clip_seconds' frames rounded up to the model's patch grid)", int, nullable=True,
                                 at_least=1)
    num_mel_bins: int = _option(None, "mel filters of the fbank (None: the dataset's recipe; HTS-AT's presets fix "
                                "their own)", int, nullable=True, at_least=1)
    keywords: str = _option(None, "speechcommands: the words that are classes, comma-separated, or 10 for "
                            "yes,no,up,down,left,right,on,off,stop,go; the other words become the class "
                            "_unknown_ (None: every word is a class)", str, nullable=True)
    data_dir: str = _option(None, "dataset root on disk (None: the registry's default)", str, nullable=True)
    train_split: str = _option("train", "split to train on", str)
    eval_split: str = _option("test", "split the run is scored on: selects the best epoch unless val_fraction is "
                              "set, then scored once at the selected epoch (test_metric_at_best)", str)
    val_fraction: float = _option(None, "share of the training split held out (stratified, seeded) to select the "
                                  "best epoch, stop and switch phases on; datasets with their own validation split "
                                  "(speechcommands, voxceleb) use it instead (None: select on eval_split, the "
                                  "paper's protocol)", float, nullable=True)
    model: str = _option(None, "model family, one of kc2f.families.family_names() (None: the default family, "
                         "the AST)", str, nullable=True)
    method: str = _option("maxpool", "compression of the initial phases (the model family's methods)", str)
    factors: tuple = _option((1,), "compression factors per phase, descending and ending in 1, e.g. 2,1 or "
                             "4,2,1; 1 alone is the baseline; a single factor C > 1 trains and evaluates at C "
                             "only (the paper's coarse-only rows)", "ints")
    epochs: int = _option(None, "total epochs (None: the dataset's recipe)", int, nullable=True, at_least=1)
    phase_epochs: tuple = _option(None, "explicit epochs per phase, e.g. 3,3,14", "ints", nullable=True)
    steps_per_epoch: int = _option(None, "optimizer steps per epoch (None: one pass over the training data); "
                                   "step-based runs (kc2f pretrain) make an epoch an evaluation interval",
                                   int, nullable=True, at_least=1)
    initial_fraction: float = _option(None, "share of epochs for the initial phases (None: the paper's, 0.25 "
                                      "with one initial phase, 0.30 with two: 3,3,14 of 20)", float,
                                      nullable=True, above=0.0, below=1.0)
    switch: str = _option("fixed", "fixed: the phase lengths above (the paper); plateau | budget: adaptive, end "
                          "a coarse phase when its curve flattens / at the predicted best epoch, deciding on "
                          "a held-out split (val_fraction or eval_split: valid)", str,
                          choices=("fixed", "plateau", "budget"))
    switch_monitor: str = _option("metric", "plateau: watch the validation metric or the training loss", str,
                                  choices=("metric", "loss"))
    switch_patience: int = _option(3, "plateau: epochs without improvement that end a coarse phase", int, at_least=1)
    switch_min_delta: float = _option(0.0, "plateau: smallest change that counts as an improvement", float,
                                      at_least=0.0)
    switch_min_epochs: int = _option(2, "adaptive: fewest epochs of a coarse phase", int, at_least=1)
    switch_max_epochs: int = _option(None, "adaptive: most epochs of a coarse phase (None: half the epochs, "
                                     "shared by the coarse phases)", int, nullable=True, at_least=1)
    switch_budget: float = _option(None, "budget: total training FLOPs (None: the epochs alone bound the run)",
                                   float, nullable=True, above=0.0)
    target: float = _option(None, "budget mode: stop the final phase at this metric", float, nullable=True)
    baseline: str = _option(None, "budget mode: stop at this baseline run's best metric", str, nullable=True)
    init: str = _option(None, "initialise from a checkpoint (.pth/.safetensors/.npz/.keras/run dir)", str,
                        nullable=True)
    preset: str = _option(None, "model size preset (the family's presets, e.g. tiny | small | base)", str,
                          nullable=True)
    model_options: object = _option(
        None, "the model family's own options, a mapping (kc2f models MODEL lists them; --set NAME=VALUE or "
        "model_options.NAME=VALUE sets one) (None: the family's defaults)", "model_options", nullable=True)
    batch_size: int = _option(None, "global batch size (None: the dataset's recipe)", int, nullable=True,
                              at_least=1)
    lr: float = _option(None, "peak learning rate (None: the dataset's recipe)", float, nullable=True, above=0.0)
    warmup_steps: int = _option(None, f"linear warm-up steps (None: {DEFAULT_WARMUP_STEPS} in fit, SSAST's 1000 in "
                                "pretrain; AST: 1000)", int, nullable=True, at_least=0)
    decay_start_epoch: int = _option(10, "first decayed epoch of a phase", int, at_least=1)
    decay_every: int = _option(5, "epochs between learning-rate decays", int, at_least=1)
    decay_rate: float = _option(0.5, "learning-rate multiplier per decay", float, above=0.0)
    weight_decay: float = _option(5e-7, "Adam weight decay (AST: 5e-7); AdamW's decoupled decay (HTS-AT: 0.05)",
                                  float, at_least=0.0)
    optimizer: str = _option("adam", "adam (AST) | adamw (decoupled weight decay, e.g. HTS-AT)", str,
                             choices=("adam", "adamw"))
    lr_schedule: str = _option(None, "warmup-step-decay: warm-up then x decay_rate every decay_every epochs "
                               "(AST) | epoch-scales: lr x lr_epoch_scales[epoch] | warmup-plateau: warm-up then x "
                               "decay_rate after lr_patience evaluations without gain (SSAST) (None: warmup-step-decay "
                               "in fit, warmup-plateau in pretrain)", str, nullable=True,
                               choices=("warmup-step-decay", "epoch-scales", "warmup-plateau"))
    lr_patience: int = _option(2, "warmup-plateau: evaluations without gain before a decay (SSAST: 2)", int,
                               at_least=0)
    lr_epoch_scales: str = _option(None, "epoch-scales: one multiplier per epoch of a phase, x*n repeats, the last "
                                   "holds (e.g. 0.02,0.05,0.1*9,0.05*10,0.02*10,0.03)", str, nullable=True)
    beta_1: float = _option(0.95, "Adam beta 1 (AST: 0.95)", float)
    beta_2: float = _option(0.999, "Adam beta 2", float)
    freqm: int = _option(None, "SpecAugment max frequency-mask width", int, nullable=True, at_least=0)
    timem: int = _option(None, "SpecAugment max time-mask width at full resolution", int, nullable=True, at_least=0)
    mixup: float = _option(None, "waveform mixup probability", float, nullable=True, at_least=0.0, at_most=1.0)
    mean: float = _option(None, "fbank normalisation mean (None: registry or `kc2f stats`)", float, nullable=True)
    std: float = _option(None, "fbank normalisation std", float, nullable=True, above=0.0)
    seed: int = _option(0, "seed of initialisation, data order and augmentation", int, at_least=0)
    on_bad_audio: str = _option("error", "error: stop before training with the list; skip: drop and count",
                                str, choices=("error", "skip"))
    precision: str = _option("auto", "auto | float32 | mixed_bfloat16 | mixed_float16", str,
                             choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"))
    jit: str = _option("auto", "auto | on | off: XLA compilation of the train step", str,
                       choices=("auto", "on", "off"))
    distribute: str = _option("none", "none | data-parallel: split each global batch across all devices and hosts",
                              str, choices=("none", "data-parallel"))
    cache: bool = _option(False, "cache decoded audio in memory (small datasets)", bool)
    max_train_examples: int = _option(None, "use only N training clips (a seeded sample)", int,
                                      nullable=True, at_least=1)
    max_eval_examples: int = _option(None, "use only N evaluation clips (a seeded sample)", int,
                                     nullable=True, at_least=1)
    keep_checkpoints: int = _option(2, "newest checkpoints kept (besides the best) to fall back to", int,
                                    at_least=1)
    average_checkpoints: str = _option(
        None, "the delivered model (model.keras, export) is the mean of the weights of the checkpoints of "
        "FIRST..LAST (1-based epochs, inclusive; AST's AudioSet recipes) or of best:K, the final phase's K "
        "best epochs by the selection metric (HTS-AT's save_top_k, then weight_average)", str, nullable=True)
    fold: int = _option(None, "ESC-50: the held-out fold 1..5 (None: fold 1)", int, nullable=True)
    clips_per_class: int = _option(None, "synthetic dataset: training clips per class (None: 100; "
                                   "test clips are a quarter of it)", int, nullable=True, at_least=1)
    test_clips_per_class: int = _option(
        None, "synthetic dataset: test clips per class (None: a quarter of clips_per_class; more makes "
        "the per-epoch accuracy, and so the baseline's best, less noisy)", int, nullable=True, at_least=1)
    include_folders: str = _option(
        None, "folder and speechcommands layouts: folders whose names start with '_' to read as classes, "
        "comma-separated (e.g. _silence_,_unknown_); the others are left out and listed in the log and "
        "summary.json", str, nullable=True)

    NESTED = (MODEL_OPTIONS,)

    def __post_init__(self):
        super().__post_init__()
        family = model_family(self.model)
        object.__setattr__(self, "model", family.name)
        object.__setattr__(self, MODEL_OPTIONS, _family_options(family, self.model_options))
        if self.method not in family.methods:
            raise ValueError(
                f"Option 'method' must be one of {tuple(family.methods)} for model '{self.model}'. "
                f"Received: method={self.method!r}"
            )
        if self.preset is not None and self.preset not in family.presets:
            raise ValueError(
                f"Option 'preset' must be one of {tuple(sorted(family.presets))} for model "
                f"'{self.model}'. Received: preset={self.preset!r}"
            )
        if self.fold is not None and self.fold not in range(1, 6):
            raise ValueError(f"Option 'fold' must be one of 1..5 (ESC-50's folds). Received: fold={self.fold}")
        parse_average_range(self.average_checkpoints)
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"Option 'val_fraction' must be in (0, 1). Received: val_fraction={self.val_fraction}")
        if self.val_fraction is not None and self.eval_split == "valid":
            raise ValueError("Option 'val_fraction' selects on a validation split and scores eval_split at the "
                             "selected epoch; eval_split must then be a test split. Received: eval_split='valid'")
        if self.switch != "fixed" and selection_split(self.to_dict()) == "test":
            # The paper selects on the test split but has no adaptive switch: a rule that ends a
            # phase from the test metric would tune the schedule on the numbers it reports.
            raise ValueError(f"Option 'switch' {self.switch} decides from the metric of a held-out split, not the "
                             "test split: give val_fraction (e.g. --val-fraction 0.1) or eval_split: valid. "
                             f"Received: switch={self.switch!r}, val_fraction=None, eval_split={self.eval_split!r}")
        if self.lr_schedule == "epoch-scales":
            from kc2f.training.epoch_scale_schedule import parse_epoch_scales

            if self.lr_epoch_scales is None:
                raise ValueError("Option 'lr_schedule' epoch-scales needs lr_epoch_scales. Received: "
                                 "lr_epoch_scales=None")
            parse_epoch_scales(self.lr_epoch_scales)
        if self.keywords is not None:
            from kc2f.data.manifest import speech_commands_keywords

            speech_commands_keywords(self.keywords)
        if (self.target_frames is not None and self.factors and min(self.factors) >= 1
                and self.target_frames % math.lcm(*self.factors)):
            raise ValueError(
                f"Option 'target_frames' must be divisible by every factor ({list(self.factors)}): each "
                f"phase sees target_frames / C frames. Received: target_frames={self.target_frames}"
            )
        if self.sample_rate is not None and self.sample_rate < 1:
            raise ValueError(f"Option 'sample_rate' must be a positive rate in Hz. Received: "
                             f"sample_rate={self.sample_rate}")

    @property
    def selection_split(self):
        """`"val"` or `"test"`: the split the best epoch, budget stop and adaptive switch read (`selection_split`)."""
        return selection_split(self.to_dict())

    @property
    def average_best(self):
        """K of `average_checkpoints: best:K`, or `None`."""
        return parse_average_best(self.average_checkpoints)

    @property
    def average_range(self):
        """`(first, last)` epochs (1-based, inclusive) of `average_checkpoints`, or `None`."""
        return parse_average_range(self.average_checkpoints)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def run_names(cls):
        """The run's own options (`model_options` aside)."""
        return tuple(name for name in cls.names() if name != MODEL_OPTIONS)

    @classmethod
    def known_names(cls):
        """Every name a mapping of options may hold: the run's, `model_options` and every registered
        family's model options (which of them a run takes depends on its family: `split_options`)."""
        from kc2f.families import family_names, get_family

        names = dict.fromkeys(cls.names())
        for name in family_names():
            names.update(dict.fromkeys(get_family(name).options_class.names()))
        return tuple(names)

    @classmethod
    def split_options(cls, options, source="options"):
        """`(run options, model options)` of a mapping whose model options may be flat or nested.

        `options` holds run options, the family's options under their own
        names (the flat form of configs written before the nesting) and/or a
        `model_options` mapping. The family is `options["model"]` (default: the
        default family).

        Raises:
            ValueError: a name neither the run nor the family knows (naming
                `source`, and the family that has it), `model_options` not a
                mapping, or an option given both flat and nested with two values.
        """
        family = model_family(options.get("model"))
        nested = options.get(MODEL_OPTIONS)
        if isinstance(nested, OptionSet):
            nested = nested.to_dict()
        elif nested is None:
            nested = {}
        elif not isinstance(nested, dict):
            raise ValueError(f"Option '{MODEL_OPTIONS}' in {source} must be a mapping of the model's options. "
                             f"Received: {MODEL_OPTIONS}={nested!r}")
        flat = {name: value for name, value in options.items() if name not in cls.names()}
        for name in list(flat) + [_MODEL_PREFIX + name for name in nested]:
            _check_model_option(name, family, source)
        for name in set(flat) & set(nested):
            if flat[name] != nested[name]:
                raise ValueError(f"Option '{name}' is given twice in {source}, as {name}: {flat[name]!r} and "
                                 f"as {_MODEL_PREFIX}{name}: {nested[name]!r}. Give one.")
        run = {name: value for name, value in options.items() if name in cls.run_names()}
        return run, {**nested, **flat}

    @classmethod
    def from_dict(cls, options, source="options"):
        """A config from a mapping of options (model options flat or in `model_options`); unknown names
        are errors naming `source`."""
        run, model = cls.split_options(options, source)
        return cls(**run, model_options=model)

    @classmethod
    def from_sources(cls, config_file=None, sets=(), *, defaults=None, **cli):
        """Defaults ← `defaults` ← YAML `config_file` ← `--set key=value` items ← CLI options that are not None.

        A `--set` key is a run option, a model option (`hidden_dim`), or one
        written `model_options.hidden_dim`; model options are parsed with the
        types of the run's family, known once every source is read.
        `defaults` is a dict of options in a config file's form (a command's
        own recipe, e.g. the demo's).
        """
        source = str(config_file) if config_file else "command line"
        options = {**(defaults or {}), **(load_file(config_file) if config_file else {})}
        model_texts = {}
        for item in sets:
            if "=" not in item:
                raise ValueError(f"--set expects key=value. Received: {item!r}")
            name, text = (part.strip() for part in item.split("=", 1))
            if name in cls.run_names():
                options[name] = cls.parse_value(name, text)
            else:
                model_texts[name] = text
        options.update({name: value for name, value in cli.items() if value is not None})
        run, model = cls.split_options(options, source)
        family = model_family(run.get("model"))
        for name, text in model_texts.items():
            _check_model_option(name, family, "--set")
            key = name.removeprefix(_MODEL_PREFIX)
            model[key] = family.options_class.parse_value(key, text)
        return cls(**run, model_options=model)

    @classmethod
    def parse_value(cls, name, text):
        """Parses the text of `--set name=text` into the run option's type (`from_sources` parses
        model options with their family's types)."""
        if name not in cls.run_names():
            raise ValueError(f"Unknown option '{name}'. Known options: {', '.join(sorted(cls.run_names()))}")
        return super().parse_value(name, text)

    def replace(self, **changes):
        """A copy with `changes` applied (checked); a model option may be given under its own name.

        With another `model` and no `model_options`, the options the two
        families share (e.g. `hidden_dim`) are carried over.
        """
        run = {name: value for name, value in changes.items() if name in self.names()}
        flat = {name: value for name, value in changes.items() if name not in self.names()}
        family = model_family(run.get("model", self.model))
        for name in flat:
            _check_model_option(name, family, "options")
        model = _family_options(family, run.get(MODEL_OPTIONS, self.model_options))
        run[MODEL_OPTIONS] = model.replace(**flat) if flat else model
        return dataclasses.replace(self, **run)

    def flat_dict(self):
        """`to_dict` with the model options beside the run's (`flat_options`)."""
        return flat_options(self.to_dict())


def model_family(model):
    """The registered family called `model` (`None`: the default family); ValueError naming the option."""
    # Deferred: the model families import Keras and its backend (seconds), which the
    # command line must not pay before a command runs.
    from kc2f.families import default_family, family_names, get_family

    if model is None:
        return default_family()
    try:
        return get_family(model)
    except ValueError:
        raise ValueError(f"Option 'model' must be one of {family_names()}. Received: model={model!r}") from None


def _check_model_option(name, family, source):
    """ValueError unless `name` (`hidden_dim` or `model_options.hidden_dim`) is an option of `family`;
    the message names the families that have it."""
    from kc2f.families import family_names, get_family

    key = name.removeprefix(_MODEL_PREFIX)
    if key in family.options_class.names():
        return
    owners = [other for other in family_names() if key in get_family(other).options_class.names()]
    if owners:
        raise ValueError(f"Option '{name}' in {source} is not an option of model '{family.name}' (it is of "
                         f"{', '.join(repr(owner) for owner in owners)}). Its options: "
                         f"{', '.join(family.options_class.names()) or 'none'}.")
    raise ValueError(f"Unknown option '{name}' in {source}. Known options: "
                     f"{', '.join(sorted(RunConfig.run_names()))}; model '{family.name}': "
                     f"{', '.join(family.options_class.names()) or 'none'}.")


def _family_options(family, value):
    """`value` (a mapping, `None` or another family's options) as `family.options_class`."""
    options_class = family.options_class
    if type(value) is options_class:
        return value
    if value is None:
        return options_class()
    if isinstance(value, OptionSet):  # another family's: carry over what the two share
        value = {name: item for name, item in value.to_dict().items() if name in options_class.names()}
    return options_class.from_dict(value, source=f"model '{family.name}''s options")


def flat_options(options):
    """A `config.json` mapping with its `model_options` beside the run's options, as runs recorded them
    before the nesting (and still read them: `kc2f report`, resume's comparison)."""
    nested = options.get(MODEL_OPTIONS) or {}
    return {**{name: value for name, value in options.items() if name != MODEL_OPTIONS}, **nested}


def load_file(path):
    """Reads a YAML config file into a dictionary of options, every name one kc2f knows (whether a
    model option is the run's family's is checked once the family is known: `RunConfig.split_options`,
    since `--model` may come from the command line)."""
    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ValueError(f"Cannot read config file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"Config file {path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"Config file {path} must hold a mapping of options. Received: {type(data).__name__}")
    unknown = sorted(set(data) - set(RunConfig.known_names()))
    if unknown:
        raise ValueError(f"Unknown option '{unknown[0]}' in {path}. "
                         f"Known options: {', '.join(sorted(RunConfig.known_names()))}")
    return data


def set_options_in_file(path, values):
    """Sets top-level options of a YAML config file in place, keeping its comments and order.

    Each option's `name: value` line is rewritten (a trailing comment kept); an
    option the file lacks is appended; a missing file is created. The file is
    checked first (a mapping of known options) and replaced atomically, so a
    refusal or a crash leaves it as it was.

    Args:
        path: the YAML file.
        values: `{option: JSON-serialisable value}`, every option known.

    Raises:
        ValueError: the file is not a mapping of known options, an option is
            unknown, or its line cannot be rewritten in place (a block value).
    """
    path = pathlib.Path(path)
    unknown = sorted(set(values) - set(RunConfig.run_names()))
    if unknown:
        raise ValueError(f"Unknown option '{unknown[0]}'. Known options: {', '.join(sorted(RunConfig.run_names()))}")
    lines = []
    if path.exists():
        load_file(path)
        lines = path.read_text().splitlines(keepends=True)
    for name, value in values.items():
        pattern = re.compile(rf"^{re.escape(name)}\s*:[^#\n]*(#.*)?$")
        for index, line in enumerate(lines):
            match = pattern.match(line.rstrip("\r\n"))
            if match:
                comment = f"  {match.group(1)}" if match.group(1) else ""
                lines[index] = f"{name}: {json.dumps(value)}{comment}\n"
                break
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines.append(f"{name}: {json.dumps(value)}\n")
    text = "".join(lines)
    edited = yaml.safe_load(text) or {}
    if any(edited.get(name) != value for name, value in values.items()):
        raise ValueError(f"Cannot set {', '.join(values)} in {path} in place (a value spans several lines); "
                         "give --write a new file.")
    temporary = path.with_name(f".{path.name}.kc2f-tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ValueError(f"Cannot write config file {path}: {error.strerror or error}") from None
