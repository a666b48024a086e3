"""Exporting a trained run: a TensorFlow SavedModel for serving and a `.keras` file.

The SavedModel is self-contained: raw float32 waveforms in, class scores out,
the Kaldi fbank and the compression front-end inside the graph, the label names
as an asset. It needs neither kc2f nor Keras to run:

    import tensorflow as tf
    serve = tf.saved_model.load("export_dir").signatures["serving_default"]
    out = serve(waveform=tf.zeros([1, 16000]))  # {"scores": (1, classes), "logits": ...}

Layout of an export directory:

    saved_model.pb, variables/, fingerprint.pb   the SavedModel (`--format saved_model`)
    assets/labels.txt, assets/kc2f.json          its assets: label names, metadata
    model.keras, labels.txt, kc2f.json           the Keras model for Keras users, with
                                                 its labels and metadata beside it

Signatures:

* `serving_default(waveform)`: `waveform` float32 `(batch, samples)`, any batch
  and any number of samples, mono, at the model's sample rate (see
  `assets/kc2f.json`). Every clip of the batch is taken to be `samples` long.
* `serving_with_length(waveform, length)`: the same plus `length` int32
  `(batch,)`, each clip's number of valid samples (the rest is zero padding), the
  way the model saw short clips in training. `kc2f predict` uses it for the
  last, partial window of a long file.

Both return `scores` float32 `(batch, classes)`, softmax for a single-label
dataset and sigmoid for a multi-label one (from the run's dataset spec), and
`logits` float32 `(batch, classes)`. A clip longer than the model's input span
(`target_frames` fbank frames, the training clip length) is cut to that span by
the fbank, exactly as in Keras; use `kc2f predict` for sliding windows.

Why a child process. A `.keras` file is backend-independent, but a SavedModel
is a TensorFlow graph, and Keras fixes its backend when it is first imported: a
process running JAX or PyTorch cannot trace the model with TensorFlow ops.
`export_run` therefore loads the `.keras` file in a child Python process with
`KERAS_BACKEND=tensorflow` whenever the current backend is not TensorFlow. When
it already is, the export runs in-process: the result is the same graph, and it
saves the several seconds a second TensorFlow + Keras start-up costs. The child
sees no GPU: tracing and saving need none, a SavedModel records no devices, and
TensorFlow must not grab the accelerator memory the parent process holds.

TensorFlow is imported lazily, only by the functions that write the SavedModel,
and is the only backend-specific code of kc2f outside the data package.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

from kc2f.data import registry
from kc2f.training.run_directory import RunDirectory, read_json

FORMATS = ("saved_model", "keras")
KERAS_FILE = "model.keras"
LABELS_FILE = "labels.txt"
METADATA_FILE = "kc2f.json"
SIGNATURE = "serving_default"
LENGTH_SIGNATURE = "serving_with_length"
# Files the SavedModel writer creates (besides the assets, copied from out_dir).
_SAVED_MODEL_FILES = ("saved_model.pb", "fingerprint.pb", "variables", "assets")
# Exit status of the child process for a user error (its stderr holds the message).
_USER_ERROR = 3
_ERROR_PREFIX = "kc2f-export-error: "


def read_run(run_dir):
    """Reads and checks what inference needs from a run directory.

    Args:
        run_dir: a finished run directory (`model.keras`, `config.json`,
            `labels.json`).

    Returns:
        dict: `model_path` (`pathlib.Path`), `config` (dict), `spec`
        (`kc2f.data.registry.DatasetSpec` of `config["dataset"]`), `labels`
        (list of str).

    Raises:
        ValueError: a file is missing or malformed; the message names it.
    """
    run = RunDirectory(run_dir)
    if not run.path.is_dir():
        raise ValueError(f"Run directory {run} does not exist (or is not a directory).")
    model_path = run.require_model()
    config = run.read_config()
    if "dataset" not in config:
        raise ValueError(f"{run.file(run.CONFIG)} has no 'dataset' entry; is {run} a kc2f run directory?")
    spec = registry.get_dataset_spec(config["dataset"])
    labels = read_labels(run.file(run.LABELS))
    return {"model_path": model_path, "config": config, "spec": spec, "labels": labels}


def read_labels(path):
    """Label names from a JSON list (`.json`) or a text file with one name a line.

    Args:
        path: `labels.json` or `labels.txt`.

    Returns:
        list of str.

    Raises:
        ValueError: missing, empty or malformed file (the message names it).
    """
    path = pathlib.Path(path)
    if path.suffix == ".json":
        labels = read_json(path)
        if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
            raise ValueError(f"{path} must hold a JSON list of label names. Received: {str(labels)[:80]}")
    else:
        if not path.is_file():
            raise ValueError(f"Label file {path} does not exist.")
        labels = path.read_text(encoding="utf-8").splitlines()
        # A trailing newline is not a label; a blank line in the middle would shift them.
        while labels and not labels[-1].strip():
            labels.pop()
    if not labels:
        raise ValueError(f"Label file {path} lists no labels.")
    return labels


def _check_factor(factor):
    if factor is not None and (not isinstance(factor, int) or isinstance(factor, bool) or factor < 1):
        raise ValueError(f"factor must be an integer >= 1. Received: factor={factor!r}")


def export_run(run_dir, out_dir, factor=None, format="saved_model", overwrite=False):
    """Exports a run's model as a TensorFlow SavedModel (and a `.keras` file).

    See the module docstring for the directory layout and the signatures. The
    export is written to a temporary sibling directory and moved into place at
    the end, so a failed export leaves no half-written `out_dir`. Under a Keras
    backend other than TensorFlow, the SavedModel is written by a child process
    with `KERAS_BACKEND=tensorflow` (a process cannot switch backends, and a
    SavedModel is a TensorFlow graph); under TensorFlow it is written in-process,
    which is the same graph without a second start-up.

    Args:
        run_dir: finished run directory (`model.keras`, `config.json`,
            `labels.json`).
        out_dir: directory to create. It may exist if it is empty, or if it is a
            previous kc2f export and `overwrite` is set.
        factor: compression factor C to export at (flexible resolution: a model
            trained at full resolution, rebuilt at C with its position embedding
            interpolated); `None` keeps the trained factor.
        format: `"saved_model"` (SavedModel + `.keras`) or `"keras"` (`.keras`
            with labels and metadata only; no TensorFlow involved).
        overwrite: replace an existing kc2f export in `out_dir`.

    Returns:
        dict: `out_dir`, `format`, `saved_model` (path or `None`), `keras`,
        `labels` (path of labels.txt), `num_classes`, `factor`, `sample_rate`,
        `multilabel`, `clip_seconds`, `signatures` (name -> input names),
        `exported_in` (`"process"` or `"child process"`).

    Raises:
        ValueError: bad run directory, factor, format or output directory (the
            message names it), or a failure of the export itself.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}. Received: format={format!r}")
    _check_factor(factor)
    run = read_run(run_dir)
    run_dir, out_dir = pathlib.Path(run_dir).resolve(), pathlib.Path(out_dir).resolve()
    if out_dir == run_dir:
        raise ValueError(f"The export directory must not be the run directory. Received: out_dir={out_dir}")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"Export path {out_dir} exists and is not a directory.")
        contents = list(out_dir.iterdir())
        if contents and not overwrite:
            raise ValueError(
                f"Export directory {out_dir} is not empty; pass overwrite=True (--overwrite) to replace it."
            )
        if contents and not (out_dir / METADATA_FILE).is_file():
            raise ValueError(
                f"Export directory {out_dir} is not empty and is not a kc2f export ({METADATA_FILE} is "
                "missing); refusing to delete it."
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.export-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()

    job = {
        "model_path": str(run["model_path"]),
        "labels": run["labels"],
        "metadata": {
            "dataset": run["spec"].name,
            "multilabel": bool(run["spec"].multilabel),
            "clip_seconds": float(run["spec"].clip_seconds),
            "run_dir": str(run_dir),
        },
        "out_dir": str(staging),
        "factor": factor,
        "format": format,
    }
    try:
        if format == "saved_model" and _backend() != "tensorflow":
            result = _export_in_child(job)
            result["exported_in"] = "child process"
        else:
            result = _export(**job)
            result["exported_in"] = "process"
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    for key in ("saved_model", "keras", "labels"):
        if result.get(key):
            result[key] = str(out_dir / pathlib.Path(result[key]).relative_to(staging))
    result["out_dir"] = str(out_dir)
    return result


def _backend():
    # Deferred like every Keras import here: `kc2f predict` and the CLI import this module.
    import keras

    return keras.backend.backend()


def _export(model_path, labels, metadata, out_dir, factor, format):
    """Loads `model_path`, writes the export into the existing `out_dir`; returns a summary."""
    # Deferred: Keras and its backend take seconds to import, and `export_run` may hand the
    # work to a child process with the TensorFlow backend instead (see the module docstring).
    from kc2f.families import family_of, load_model

    out_dir = pathlib.Path(out_dir)
    model = load_model(model_path)
    if getattr(model, "num_classes", None) != len(labels):
        raise ValueError(
            f"{model_path} has {getattr(model, 'num_classes', '?')} outputs but its label file lists "
            f"{len(labels)} labels."
        )
    trained_factor = model.factor
    if factor is not None and factor != trained_factor:
        model = family_of(model).at_factor(model, factor)
        model.save(out_dir / KERAS_FILE)
    else:
        # The trained file itself, byte for byte.
        shutil.copyfile(model_path, out_dir / KERAS_FILE)
    metadata = dict(
        metadata,
        format_version=1,
        num_classes=int(model.num_classes),
        sample_rate=int(model.sample_rate),
        method=model.method,
        factor=int(model.factor),
        trained_factor=int(trained_factor),
        target_frames=int(model.target_frames),
        frame_length_ms=float(model.frame_length_ms),
        frame_shift_ms=float(model.frame_shift_ms),
        token_grid=list(model.token_grid),
        scores="sigmoid" if metadata["multilabel"] else "softmax",
        signatures={SIGNATURE: ["waveform"], LENGTH_SIGNATURE: ["waveform", "length"]},
    )
    labels_path = out_dir / LABELS_FILE
    labels_path.write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
    metadata_path = out_dir / METADATA_FILE
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    saved_model = None
    if format == "saved_model":
        write_saved_model(model, out_dir, metadata["multilabel"], assets=(labels_path, metadata_path))
        saved_model = str(out_dir)
    return {
        "format": format,
        "saved_model": saved_model,
        "keras": str(out_dir / KERAS_FILE),
        "labels": str(labels_path),
        "num_classes": metadata["num_classes"],
        "factor": metadata["factor"],
        "sample_rate": metadata["sample_rate"],
        "multilabel": metadata["multilabel"],
        "clip_seconds": metadata["clip_seconds"],
        "signatures": metadata["signatures"],
    }


def write_saved_model(model, path, multilabel, assets=()):
    """Writes `model` as a SavedModel with the waveform signatures of this module.

    Needs the TensorFlow backend (the model's variables must be TF variables).

    Args:
        model: `AudioSpectrogramTransformer` (or any Keras model taking
            `(batch, samples)` waveforms or `{"waveform", "length"}`, logits out).
        path: SavedModel directory; the files in `assets` are copied into its
            `assets/` folder under their own names.
        multilabel: sigmoid scores if `True`, softmax otherwise.
        assets: paths of files to ship with the SavedModel.
    """
    import tensorflow as tf

    if _backend() != "tensorflow":
        raise ValueError(
            "write_saved_model needs KERAS_BACKEND=tensorflow; use export_run, which switches "
            f"to a TensorFlow child process. Received backend: {_backend()}"
        )

    def outputs(inputs):
        logits = tf.cast(model(inputs, training=False), tf.float32)
        scores = tf.sigmoid(logits) if multilabel else tf.nn.softmax(logits, axis=-1)
        return {"scores": scores, "logits": logits}

    waveform = tf.TensorSpec([None, None], tf.float32, name="waveform")
    length = tf.TensorSpec([None], tf.int32, name="length")

    # autograph=False: the model's Python branches depend on static settings only.
    @tf.function(input_signature=[waveform], autograph=False)
    def serve(waveform):
        return outputs(waveform)

    @tf.function(input_signature=[waveform, length], autograph=False)
    def serve_with_length(waveform, length):
        return outputs({"waveform": waveform, "length": length})

    module = tf.Module()
    # Tracking the variables (not the Keras model object) keeps the SavedModel
    # free of Keras-specific objects, as keras.export.ExportArchive does.
    module.model_variables = list(model.variables)
    module.serve = serve
    module.serve_with_length = serve_with_length
    module.assets = [tf.saved_model.Asset(str(asset)) for asset in assets]
    tf.saved_model.save(
        module,
        str(path),
        signatures={
            SIGNATURE: serve.get_concrete_function(),
            LENGTH_SIGNATURE: serve_with_length.get_concrete_function(),
        },
    )


def _export_in_child(job):
    """Runs `_export(**job)` in a child Python process with the TensorFlow backend."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "tensorflow"
    env["CUDA_VISIBLE_DEVICES"] = ""  # see the module docstring: no accelerator needed
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The child must import this very kc2f, installed or not.
    root = str(pathlib.Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    process = subprocess.run(
        [sys.executable, "-m", "kc2f.export"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
    )
    if process.returncode == _USER_ERROR:
        message = process.stderr.rsplit(_ERROR_PREFIX, 1)[-1].strip()
        raise ValueError(message)
    if process.returncode != 0:
        tail = "\n".join(process.stderr.strip().splitlines()[-15:])
        raise ValueError(
            f"Exporting {job['model_path']} in a TensorFlow child process failed "
            f"(exit status {process.returncode}):\n{tail}"
        )
    try:
        return json.loads(process.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise ValueError(
            f"The export child process gave no result. Its output:\n{process.stdout[-2000:]}"
            f"\n{process.stderr[-2000:]}"
        ) from None


def _child_main():
    """Entry point of the child process: a JSON job on stdin, a JSON summary on stdout."""
    job = json.loads(sys.stdin.read())
    try:
        result = _export(**job)
    except ValueError as error:
        sys.stderr.write(f"{_ERROR_PREFIX}{error}\n")
        sys.exit(_USER_ERROR)
    # Keras or TF may have printed to stdout; the summary is the last line.
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    _child_main()
