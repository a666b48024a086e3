"""Presets in keras-hub's sense: a directory holding a model's config and weights.

`save_to_preset(model, "my_preset")` writes

    my_preset/config.json          the model's serialised config (`keras.saving.serialize_keras_object`)
    my_preset/model.weights.h5     its weights
    my_preset/metadata.json        kc2f and Keras versions, class, parameter count

and `load_preset("my_preset")` rebuilds the model from them, as keras-hub's
`Backbone.from_preset` does for a local directory (https://keras.io/keras_hub/).
`load_preset` also takes a kc2f run directory or export (a `model.keras`
inside), so a finished run is a preset as it is. Any kc2f model class works;
the model classes expose both as `Model.from_preset` / `model.save_to_preset`.
"""

import json
import os
import pathlib
import shutil

import keras

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
KERAS_FILE = "model.keras"


def is_preset_path(preset):
    """Whether `preset` is a path (a `PathLike`, a name with a separator, or an existing path)."""
    return isinstance(preset, os.PathLike) or (
        isinstance(preset, str) and (os.sep in preset or os.path.exists(preset)))


def save_to_preset(model, preset_dir):
    """Writes `model` as a preset directory (see the module docstring).

    The files are written to a temporary sibling and moved into place, so an
    interrupted save leaves no half-written preset.

    Args:
        model: a built kc2f Keras model.
        preset_dir: directory to create; it must not exist or be empty.

    Raises:
        ValueError: `preset_dir` exists and is not empty (the message names it).
    """
    from kc2f import __version__

    preset_dir = pathlib.Path(preset_dir)
    if preset_dir.exists() and (not preset_dir.is_dir() or any(preset_dir.iterdir())):
        raise ValueError(f"Preset directory {preset_dir} exists and is not empty.")
    staging = preset_dir.parent / f".{preset_dir.name}.preset-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        config = keras.saving.serialize_keras_object(model)
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        model.save_weights(staging / WEIGHTS_FILE)
        metadata = {"kc2f_version": __version__, "keras_version": keras.__version__,
                    "class_name": type(model).__name__, "parameter_count": int(model.count_params())}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        if preset_dir.exists():
            preset_dir.rmdir()
        os.replace(staging, preset_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_preset(preset, load_weights=True, **overrides):
    """Rebuilds a model from a preset directory, a run directory, an export or a `.keras` file.

    Args:
        preset: a `save_to_preset` directory, or a directory with `model.keras`
            (a run, an export version), or a `.keras` file.
        load_weights: load the saved weights (`False`: a fresh model of the
            same architecture).
        **overrides: constructor arguments replacing the saved ones (only
            with `load_weights=False` if they change a weight's shape).

    Returns:
        The Keras model.

    Raises:
        ValueError: not a preset (the message names the path and what is missing).
    """
    path = pathlib.Path(preset)
    if path.is_dir() and (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        config["config"] = {**config["config"], **overrides}
        model = keras.saving.deserialize_keras_object(config)
        if load_weights:
            model.load_weights(path / WEIGHTS_FILE)
        return model
    keras_file = path / KERAS_FILE if path.is_dir() else path
    if keras_file.is_file() and keras_file.suffix == ".keras":
        model = keras.saving.load_model(keras_file, compile=False)
        if overrides or not load_weights:
            config = {**model.get_config(), **overrides}
            fresh = type(model).from_config(config)
            if load_weights:
                fresh.set_weights(model.get_weights())
            model = fresh
        return model
    raise ValueError(
        f"{path} is not a preset: expected {CONFIG_FILE} + {WEIGHTS_FILE} (kc2f save_to_preset), a "
        f"directory with {KERAS_FILE} (a run or an export), or a .keras file."
    )
