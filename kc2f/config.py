"""Run configuration: defaults, YAML files, `key=value` overrides, type checks.

A run is described by one flat dictionary. Values left `None` are filled from
the dataset registry (`kc2f.data.registry`) when the run is resolved, so
`configs/*.yaml` and `--set` only need to name what differs from a dataset's
recipe.
"""

import pathlib

import yaml

# name: (types accepted, default, help)
OPTIONS = {
    "dataset": (str, "synthetic", "dataset name from the registry"),
    "data_dir": ((str, type(None)), None, "dataset root on disk (None: the registry's default)"),
    "train_split": (str, "train", "split to train on"),
    "eval_split": (str, "test", "split the validation metric is computed on"),
    "method": (str, "maxpool", "fshift | maxpool | avgpool | patch-bl | patch-pi"),
    "factors": (list, [1], "descending compression factors ending in 1; [1] is the baseline"),
    "epochs": ((int, type(None)), None, "total epochs (None: the dataset's recipe)"),
    "phase_epochs": ((list, type(None)), None, "explicit epochs per phase"),
    "initial_fraction": (float, 0.25, "share of epochs for the initial phases"),
    "target": ((float, type(None)), None, "budget mode: stop the final phase at this metric"),
    "baseline": ((str, type(None)), None, "budget mode: stop at this baseline run's best metric"),
    "init": ((str, type(None)), None, "initialise from a checkpoint (.pth/.safetensors/.npz/.keras/run dir)"),
    "preset": ((str, type(None)), None, "model size preset: tiny | small | base"),
    "hidden_dim": (int, 128, "token width (ignored with a preset)"),
    "depth": (int, 4, "transformer blocks (ignored with a preset)"),
    "num_heads": (int, 4, "attention heads (ignored with a preset)"),
    "mlp_ratio": (float, 4.0, "MLP width / token width"),
    "patch_size": (list, [16, 16], "full-resolution (freq, time) patch size"),
    "dropout_rate": (float, 0.0, "dropout inside the transformer blocks"),
    "batch_size": ((int, type(None)), None, "batch size (None: the dataset's recipe)"),
    "lr": ((float, type(None)), None, "peak learning rate (None: the dataset's recipe)"),
    "warmup_steps": (int, 100, "linear warm-up steps (AST: 1000)"),
    "decay_start_epoch": (int, 10, "first decayed epoch of a phase"),
    "decay_every": (int, 5, "epochs between learning-rate decays"),
    "decay_rate": (float, 0.5, "learning-rate multiplier per decay"),
    "weight_decay": (float, 5e-7, "Adam weight decay (AST: 5e-7)"),
    "beta_1": (float, 0.95, "Adam beta 1 (AST: 0.95)"),
    "beta_2": (float, 0.999, "Adam beta 2"),
    "freqm": ((int, type(None)), None, "SpecAugment max frequency-mask width"),
    "timem": ((int, type(None)), None, "SpecAugment max time-mask width at full resolution"),
    "mixup": ((float, type(None)), None, "waveform mixup probability"),
    "mean": ((float, type(None)), None, "fbank normalisation mean (None: registry or `kc2f stats`)"),
    "std": ((float, type(None)), None, "fbank normalisation std"),
    "seed": (int, 0, "seed of initialisation, data order and augmentation"),
    "on_bad_audio": (str, "error", "error: stop before training with the list; skip: drop and count"),
    "precision": (str, "auto", "auto | float32 | mixed_bfloat16 | mixed_float16"),
    "jit": (str, "auto", "auto | on | off: XLA compilation of the train step"),
    "distribute": (str, "none", "none | data-parallel: split each global batch across all devices and hosts"),
    "cache": (bool, False, "cache decoded audio in memory (small datasets)"),
    "max_train_examples": ((int, type(None)), None, "use only the first N training clips"),
    "max_eval_examples": ((int, type(None)), None, "use only the first N evaluation clips"),
}

CHOICES = {
    "method": ("fshift", "maxpool", "avgpool", "patch-bl", "patch-pi"),
    "on_bad_audio": ("error", "skip"),
    "precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    "jit": ("auto", "on", "off"),
    "distribute": ("none", "data-parallel"),
}


def defaults():
    """A fresh dictionary of every option's default."""
    return {name: (list(d) if isinstance(d, list) else d) for name, (_, d, _) in OPTIONS.items()}


def _coerce(name, value):
    types, _, _ = OPTIONS[name]
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        raise ValueError(f"Option '{name}' expects {_names(types)}. Received: {name}={value!r}")
    if isinstance(value, int) and float in types and int not in types:
        value = float(value)
    if list in types and isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, types):
        raise ValueError(f"Option '{name}' expects {_names(types)}. Received: {name}={value!r}")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"Option '{name}' must be one of {CHOICES[name]}. Received: {name}={value!r}")
    if isinstance(value, list) and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"Option '{name}' expects a list of integers. Received: {name}={value!r}")
    return value


def _names(types):
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def parse_value(name, text):
    """Parses the text of `--set name=text` into the option's type."""
    if name not in OPTIONS:
        raise ValueError(f"Unknown option '{name}'. Known options: {', '.join(sorted(OPTIONS))}")
    types, _, _ = OPTIONS[name]
    types = types if isinstance(types, tuple) else (types,)
    if text.strip().lower() in ("null", "none") and type(None) in types:
        return None
    if list in types:
        try:
            return _coerce(name, [int(item) for item in text.split(",") if item.strip()])
        except ValueError:
            raise ValueError(
                f"Option '{name}' expects comma-separated integers. Received: {name}={text!r}"
            ) from None
    if str in types:
        return _coerce(name, text)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    return _coerce(name, value)


def merge(config, overrides, source="override"):
    """Returns `config` updated with `overrides`, type-checked; unknown keys are errors."""
    merged = dict(config)
    for name, value in overrides.items():
        if name not in OPTIONS:
            raise ValueError(
                f"Unknown option '{name}' in {source}. Known options: {', '.join(sorted(OPTIONS))}"
            )
        merged[name] = _coerce(name, value)
    return merged


def load_file(path):
    """Reads a YAML config file into a dictionary of options."""
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
    return merge({}, data, source=str(path))


def build(config_file=None, sets=(), **cli):
    """Defaults ← config file ← `--set key=value` ← explicit CLI options (not None)."""
    config = defaults()
    if config_file:
        config = merge(config, load_file(config_file), source=str(config_file))
    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set expects key=value. Received: {item!r}")
        name, text = item.split("=", 1)
        config[name.strip()] = parse_value(name.strip(), text.strip())
    return merge(config, {k: v for k, v in cli.items() if v is not None}, source="command line")
