"""Exporting a trained run: a versioned TensorFlow SavedModel for serving, and a `.keras` file.

The SavedModel is self-contained and cannot be fed wrongly by accident: raw
float32 waveforms at any of the common sample rates in, class scores and names
out; the resampling, the sliding windows over long clips, the Kaldi fbank and
the compression front-end are inside the graph, the label names are both an
asset and an output. It needs neither kc2f nor Keras to run:

    import tensorflow as tf
    serve = tf.saved_model.load("exported/fsdd/1").signatures["serving_default"]
    out = serve(waveform=tf.zeros([1, 48000]), sample_rate=tf.constant(16000))
    out["label"], out["scores"]       # (1,) top label names, (1, classes)

Layout of an export (`OUT/N/` is what TF Serving loads as version N of the model
in `OUT`; several versions may live side by side, each self-contained):

    OUT/N/saved_model.pb, variables/, fingerprint.pb   the SavedModel (`--format saved_model`)
    OUT/N/assets/labels.txt, assets/kc2f.json         label names (one a line), metadata
    OUT/N/model.keras                                 the Keras model, for Keras users
    OUT/N/README.md                                   the model card: data, metric, method, usage

Signatures:

* `serving_default(waveform, sample_rate)`: `waveform` float32 `(batch,
  samples)`, mono, any length, every clip `samples` long; `sample_rate` int32
  scalar, one of `kc2f.json`'s `sample_rates` (the model's own and the common
  rates 8 to 48 kHz; another rate is an `InvalidArgumentError` naming it). The
  waveform is resampled to the model's rate as `kc2f predict` does (the exact
  polyphase filter of `scipy.signal.resample_poly`), cut into windows of the
  training clip length every half window (the last one partial; a short clip is
  one window), each window scored as in training and the window scores averaged:
  the same windows, hop and mean aggregation as `kc2f predict`'s defaults.
* `serving_padded(waveform, sample_rate, length)`: the same for a batch of
  clips of different lengths, zero-padded to `samples`; `length` int32
  `(batch,)` holds each clip's valid samples at `sample_rate`.
* `serving_with_length(waveform, length)`: one window per row at the model's
  rate (`length` valid samples, the rest ignored as in training); `kc2f predict`
  does its own windowing with it.

Input contract, checked in the graph (an `InvalidArgumentError` saying what is
wrong; the signatures declare no shape because a SavedModel signature does not
enforce one): `waveform` is rank 2, `[batch, samples]` (a `[batch, samples,
channels]` array must be mixed down first), holds only finite
samples; `length` has one value per row, none beyond `samples`; for the first
two signatures every clip holds at least one fbank frame (25 ms) at
`sample_rate`, for `serving_with_length` none is negative.

The first two return `scores` float32 `(batch, classes)` (mean of the window
scores: softmax for a single-label dataset, sigmoid for a multi-label one),
`logits` `(batch, classes)` (mean of the window logits), `label` string
`(batch,)` (the top class), `labels` string `(batch, classes)` (the class names,
`labels.txt` on every row, so every output is batch-major for TF Serving's row
format), `window_scores` `(batch, windows, classes)` and `windows` int32
`(batch,)` (valid windows per clip; the others' scores are zero).
`serving_with_length` returns `scores` and `logits` per row.

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

from kc2f import __version__
from kc2f.data import registry
from kc2f.training.run_directory import RunDirectory, read_json

FORMATS = ("saved_model", "keras")
KERAS_FILE = "model.keras"
LABELS_FILE = "labels.txt"
METADATA_FILE = "kc2f.json"
MODEL_CARD = "README.md"
ASSETS = "assets"
SIGNATURE = "serving_default"
PADDED_SIGNATURE = "serving_padded"
LENGTH_SIGNATURE = "serving_with_length"
FORMAT_VERSION = 2
# Rates the serving signatures resample from (besides the model's own): the usual
# recording and codec rates. Each costs one small constant polyphase matrix.
COMMON_SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
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
    spec = registry.input_spec(config["dataset"], config)
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


def export_version_dir(path):
    """The version directory of an export: `path` itself, or its highest numbered `N/`.

    Args:
        path: an export's base directory (`OUT`) or one of its versions (`OUT/N`).

    Returns:
        `pathlib.Path` of the version directory, or `None` if `path` holds no
        kc2f export (no `assets/kc2f.json`).
    """
    path = pathlib.Path(path)
    if (path / ASSETS / METADATA_FILE).is_file():
        return path
    versions = [child for child in path.iterdir() if child.name.isdigit() and
                (child / ASSETS / METADATA_FILE).is_file()] if path.is_dir() else []
    return max(versions, key=lambda child: int(child.name)) if versions else None


def export_run(run_dir, out_dir, factor=None, format="saved_model", overwrite=False, version=1):
    """Exports a run's model as version `version` of a servable model under `out_dir`.

    See the module docstring for the layout and the signatures. The version is
    written to a temporary sibling directory and moved into place at the end, so
    a failed export leaves no half-written version; other versions in `out_dir`
    are left alone. Under a Keras backend other than TensorFlow, the SavedModel
    is written by a child process with `KERAS_BACKEND=tensorflow` (a process
    cannot switch backends, and a SavedModel is a TensorFlow graph); under
    TensorFlow it is written in-process, the same graph without a second start-up.

    Args:
        run_dir: finished run directory (`model.keras`, `config.json`,
            `labels.json`; `summary.json` for the model card's score).
        out_dir: the model's base directory; the export goes to `out_dir/version`.
        factor: compression factor C to export at (flexible resolution: a model
            trained at full resolution, rebuilt at C with its position embedding
            interpolated); `None` keeps the trained factor.
        format: `"saved_model"` (SavedModel + `.keras`) or `"keras"` (`.keras`
            with its assets and model card only; no TensorFlow involved).
        overwrite: replace an existing kc2f export of the same version.
        version: the version number (TF Serving serves the highest), >= 1.

    Returns:
        dict: `out_dir` (the version directory), `version`, `format`,
        `saved_model` (path or `None`), `keras`, `labels` (path of labels.txt),
        `model_card`, `num_classes`, `factor`, `sample_rate`, `sample_rates`,
        `multilabel`, `clip_seconds`, `signatures` (name -> input names),
        `exported_in` (`"process"` or `"child process"`).

    Raises:
        ValueError: bad run directory, factor, format, version or output
            directory (the message names it), or a failure of the export itself.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}. Received: format={format!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"version must be an integer >= 1. Received: version={version!r}")
    _check_factor(factor)
    run = read_run(run_dir)
    run_dir, base = pathlib.Path(run_dir).resolve(), pathlib.Path(out_dir).resolve()
    if base == run_dir or run_dir in base.parents:
        raise ValueError(f"The export directory must not be inside the run directory. Received: out_dir={base}")
    if base.exists() and not base.is_dir():
        raise ValueError(f"Export path {base} exists and is not a directory.")
    out_dir = base / str(version)
    if out_dir.exists():
        contents = list(out_dir.iterdir()) if out_dir.is_dir() else [out_dir]
        if contents and not overwrite:
            raise ValueError(
                f"Export version {out_dir} exists; pass overwrite=True (--overwrite) to replace it, or "
                "export another version."
            )
        if contents and not (out_dir / ASSETS / METADATA_FILE).is_file():
            raise ValueError(
                f"{out_dir} is not empty and is not a kc2f export ({ASSETS}/{METADATA_FILE} is missing); "
                "refusing to delete it."
            )
    created_base = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".{version}.export-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()

    config = run["config"]
    summary = RunDirectory(run_dir).read_summary() if (run_dir / RunDirectory.SUMMARY).is_file() else {}
    job = {
        "model_path": str(run["model_path"]),
        "labels": run["labels"],
        "metadata": {
            "kc2f_version": __version__,
            "run": run_dir.name,
            "dataset": run["spec"].name,
            "multilabel": bool(run["spec"].multilabel),
            "clip_seconds": float(run["spec"].clip_seconds),
            "training": _training_record(config, summary),
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
        if created_base and not any(base.iterdir()):
            base.rmdir()  # a failed first export leaves nothing behind
    for key in ("saved_model", "keras", "labels", "model_card"):
        if result.get(key):
            result[key] = str(out_dir / pathlib.Path(result[key]).relative_to(staging))
    result["out_dir"] = str(out_dir)
    result["version"] = version
    return result


def _default_family_name():
    # Deferred: the families import Keras (seconds).
    from kc2f.families import default_family

    return default_family().name


def _training_record(config, summary):
    """What the model card and metadata say about training (no absolute paths)."""
    factors = list(config.get("factors") or [1])
    record = {
        # Runs recorded before the `model` option trained the default family.
        "model": config.get("model") or _default_family_name(),
        # The method names the compression of the initial phases; a baseline has none.
        "method": "baseline" if factors == [1] else config.get("method"),
        "factors": factors,
        "epochs": summary.get("epochs_trained", config.get("epochs")),
        "seed": config.get("seed"),
        "eval_split": config.get("eval_split"),
        # The split the run's metrics (and so `score`) are on: a validation split with val_fraction.
        "score_split": "validation" if config.get("val_fraction") is not None else config.get("eval_split"),
    }
    if summary:
        # The score of the model the run delivered: the weight average when there is one.
        averaged = summary.get("averaged_metric")
        record.update(metric=summary.get("metric"),
                      score=summary.get("final_metric") if averaged is None else averaged,
                      delivered_model=summary.get("delivered_model", "last epoch"),
                      best_score=summary.get("best_metric"), best_epoch=summary.get("best_epoch"),
                      train_flops=summary.get("train_flops"))
        if summary.get("test_metric_at_best") is not None:
            record.update(test_score_at_best=summary["test_metric_at_best"])
    return record


def _backend():
    # Deferred like every Keras import here: `kc2f predict` and the CLI import this module.
    import keras

    return keras.backend.backend()


def serving_windows(clip_seconds, sample_rate):
    """Window and hop in samples of the serving signatures and of `kc2f predict`'s defaults.

    Args:
        clip_seconds: the training clip length (the window).
        sample_rate: the model's rate, Hz.

    Returns:
        `(window, hop)`: `round(clip_seconds * rate)` and half of that (rounded), >= 1.
    """
    window = max(int(round(clip_seconds * sample_rate)), 1)
    hop = max(int(round(clip_seconds / 2.0 * sample_rate)), 1)
    return window, hop


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
    info = family_of(model).serving_info(model)
    rate = info["sample_rate"]
    window, hop = serving_windows(metadata["clip_seconds"], rate)
    signatures = {LENGTH_SIGNATURE: ["waveform", "length"]}
    if format == "saved_model":
        signatures.update({SIGNATURE: ["waveform", "sample_rate"],
                           PADDED_SIGNATURE: ["waveform", "sample_rate", "length"]})
    metadata = dict(
        metadata,
        format_version=FORMAT_VERSION,
        num_classes=info["num_classes"],
        sample_rate=rate,
        sample_rates=sorted(set(COMMON_SAMPLE_RATES) | {rate}),
        window_samples=window,
        hop_samples=hop,
        aggregate="mean",
        method=info["method"],
        factor=info["factor"],
        trained_factor=int(trained_factor),
        target_frames=info["target_frames"],
        frame_length_ms=info["frame_length_ms"],
        frame_shift_ms=info["frame_shift_ms"],
        token_grid=info["token_grid"],
        scores="sigmoid" if metadata["multilabel"] else "softmax",
        signatures=signatures,
    )
    (out_dir / ASSETS).mkdir()
    labels_path = out_dir / ASSETS / LABELS_FILE
    labels_path.write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
    metadata_path = out_dir / ASSETS / METADATA_FILE
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    card_path = out_dir / MODEL_CARD
    card_path.write_text(model_card(metadata, labels, format), encoding="utf-8")
    saved_model = None
    if format == "saved_model":
        write_saved_model(model, out_dir, labels, metadata, assets=(labels_path, metadata_path))
        saved_model = str(out_dir)
    return {
        "format": format,
        "saved_model": saved_model,
        "keras": str(out_dir / KERAS_FILE),
        "labels": str(labels_path),
        "model_card": str(card_path),
        "num_classes": metadata["num_classes"],
        "factor": metadata["factor"],
        "sample_rate": metadata["sample_rate"],
        "sample_rates": metadata["sample_rates"],
        "multilabel": metadata["multilabel"],
        "clip_seconds": metadata["clip_seconds"],
        "signatures": metadata["signatures"],
    }


def model_card(metadata, labels, format):
    """The export's `README.md`: what the model is, how well it did, how to call it."""
    training = metadata["training"]
    score = training.get("score")
    metric = training.get("metric") or "metric"
    lines = [
        f"# {metadata['dataset']} classifier ({training['model']}, kc2f {metadata['kc2f_version']})",
        "",
        f"Trained by kc2f {metadata['kc2f_version']} (coarse-to-fine training of audio spectrogram "
        "transformers, https://arxiv.org/abs/2401.08415) in run `" + metadata["run"] + "`.",
        "",
        "## Data and score",
        "",
        f"- Dataset: `{metadata['dataset']}`, {metadata['num_classes']} classes "
        f"({'multi-label, sigmoid' if metadata['multilabel'] else 'single-label, softmax'} scores), "
        f"{metadata['clip_seconds']:g} s clips at {metadata['sample_rate']} Hz.",
    ]
    if score is not None:
        lines.append(
            f"- {metric} of this model ({training.get('delivered_model', 'last epoch')}) on the "
            f"`{training.get('score_split', training.get('eval_split'))}` split: {100 * score:.2f} (after "
            f"{training.get('epochs')} epochs; best epoch {training.get('best_epoch')}: "
            f"{100 * training['best_score']:.2f})."
        )
        if training.get("test_score_at_best") is not None:
            lines.append(f"- {metric} on the `{training.get('eval_split')}` split with the best epoch's weights "
                         f"(selected on the validation split): {100 * training['test_score_at_best']:.2f}.")
    else:
        lines.append("- No score: the run has no summary.json.")
    lines += [
        f"- Training: {training['method']}, factors {','.join(map(str, training['factors']))}, "
        f"seed {training.get('seed')}; exported at compression factor {metadata['factor']}.",
        f"- Classes: {', '.join(labels[:20])}{', ...' if len(labels) > 20 else ''} "
        f"(all in `{ASSETS}/{LABELS_FILE}`).",
        "",
        "## How to call it",
        "",
    ]
    if format == "saved_model":
        lines += [
            "Plain TensorFlow, no kc2f needed (the resampling, windows, fbank and labels are in the graph):",
            "",
            "```python",
            "import tensorflow as tf",
            "serve = tf.saved_model.load(\"THIS_DIRECTORY\").signatures[\"serving_default\"]",
            "out = serve(waveform=tf.constant(batch_float32), sample_rate=tf.constant(16000))",
            "out[\"label\"], out[\"scores\"], out[\"window_scores\"]",
            "```",
            "",
            f"`waveform` is mono float32 `[batch, samples]`; `sample_rate` one of "
            f"{', '.join(map(str, metadata['sample_rates']))}. Clips longer than "
            f"{metadata['window_samples'] / metadata['sample_rate']:g} s are scored in windows every "
            f"{metadata['hop_samples'] / metadata['sample_rate']:g} s and the window scores averaged. "
            f"Clips of different lengths: `{PADDED_SIGNATURE}` with `length`.",
            "",
            "TF Serving: point `--model_base_path` at the directory holding this version directory and "
            "send the columnar `inputs` format, e.g. "
            "`{\"inputs\": {\"waveform\": [[...]], \"sample_rate\": 16000}}`.",
            "",
        ]
    lines += [
        "kc2f: `kc2f predict THIS_DIRECTORY clip.wav` or, in Python, "
        "`kc2f.load(\"THIS_DIRECTORY\").predict([\"clip.wav\"])`.",
        "",
    ]
    return "\n".join(lines)


def write_saved_model(model, path, labels, metadata, assets=()):
    """Writes `model` as a SavedModel with the signatures of this module.

    Needs the TensorFlow backend (the model's variables must be TF variables).

    Args:
        model: `AudioSpectrogramTransformer` (or any Keras model taking
            `{"waveform", "length"}` at `metadata["sample_rate"]`, logits out).
        path: SavedModel directory; the files in `assets` are copied into its
            `assets/` folder under their own names.
        labels: class names, one per output.
        metadata: the export's metadata: `sample_rate`, `sample_rates`,
            `window_samples`, `hop_samples`, `multilabel`.
        assets: paths of files to ship with the SavedModel.
    """
    import tensorflow as tf

    from kc2f.data.audio import get_resampler

    if _backend() != "tensorflow":
        raise ValueError(
            "write_saved_model needs KERAS_BACKEND=tensorflow; use export_run, which switches "
            f"to a TensorFlow child process. Received backend: {_backend()}"
        )
    rate, multilabel = int(metadata["sample_rate"]), bool(metadata["multilabel"])
    window, hop = int(metadata["window_samples"]), int(metadata["hop_samples"])
    rates = [int(r) for r in metadata["sample_rates"]]
    resamplers = [get_resampler(r, rate) for r in rates]
    inexact = [r.rate_in for r in resamplers if not r.identity and not r.exact]
    if inexact:
        raise ValueError(f"No exact in-graph resampler from {inexact} Hz to {rate} Hz.")
    label_names = tf.constant(labels)

    def window_outputs(waveform, length):
        logits = tf.cast(model({"waveform": waveform, "length": length}, training=False), tf.float32)
        scores = tf.sigmoid(logits) if multilabel else tf.nn.softmax(logits, axis=-1)
        return scores, logits

    def resample(waveform, sample_rate, length):
        known = tf.equal(tf.constant(rates), sample_rate)
        check = tf.debugging.Assert(tf.reduce_any(known), [
            f"sample_rate is not one this model resamples from ({', '.join(map(str, rates))} Hz); "
            "resample the audio to one of them first. Received: sample_rate=", sample_rate])
        with tf.control_dependencies([check]):
            index = tf.argmax(tf.cast(known, tf.int32), output_type=tf.int32)

        def branch(resampler):
            def run():
                if resampler.identity:
                    return waveform, length
                out = tf.map_fn(resampler, waveform, fn_output_signature=tf.TensorSpec([None], tf.float32))
                new_length = resampler.output_length(tf.cast(length, tf.int64))
                return out, tf.cast(new_length, tf.int32)
            return run

        return tf.switch_case(index, [branch(r) for r in resamplers])

    def windowed(waveform, sample_rate, length):
        waveform, length = resample(waveform, sample_rate, length)
        batch, total = tf.shape(waveform)[0], tf.shape(waveform)[1]
        # Windows start at 0, hop, 2 hop, ... until one reaches the end (as kc2f predict).
        count = 1 + tf.maximum(total - window + hop - 1, 0) // hop
        padded = tf.pad(waveform, [[0, 0], [0, (count - 1) * hop + window - total]])
        frames = tf.signal.frame(padded, window, hop, axis=-1)
        starts = tf.range(count) * hop
        lengths = tf.clip_by_value(length[:, None] - starts[None, :], 0, window)
        windows = 1 + tf.maximum(length - window + hop - 1, 0) // hop
        scores, logits = window_outputs(tf.reshape(frames, [-1, window]), tf.reshape(lengths, [-1]))
        classes = tf.shape(scores)[-1]
        scores = tf.reshape(scores, [batch, count, classes])
        logits = tf.reshape(logits, [batch, count, classes])
        valid = tf.cast(tf.range(count)[None, :] < windows[:, None], tf.float32)[..., None]
        scores, logits = scores * valid, logits * valid
        denominator = tf.reduce_sum(valid, axis=1)
        mean_scores = tf.reduce_sum(scores, axis=1) / denominator
        return {
            "scores": mean_scores,
            "logits": tf.reduce_sum(logits, axis=1) / denominator,
            "label": tf.gather(label_names, tf.argmax(mean_scores, axis=-1)),
            "labels": tf.tile(label_names[None, :], [batch, 1]),
            "window_scores": scores,
            "windows": windows,
        }

    frame_ms = float(metadata["frame_length_ms"])

    def checked(waveform, length, sample_rate=None):
        """The input contract (module docstring), enforced before any op can fail obscurely;
        without `sample_rate` (`serving_with_length`, scored as in training) a clip may be empty."""
        # The signatures declare no rank: a SavedModel signature does not check the rank it
        # declares, and a graph traced for rank 2 fails on a 1-D tensor with an obscure slice
        # error. EnsureShape checks it at run time, naming the input ("Shape of tensor waveform
        # [8000] is not compatible with expected shape [?,?]"); an Assert before it would not
        # be guaranteed to run first.
        waveform = tf.ensure_shape(waveform, [None, None])
        if length is not None:
            length = tf.ensure_shape(length, [None])
        samples = tf.shape(waveform)[1]
        if length is None:
            length = tf.fill(tf.shape(waveform)[:1], samples)
        checks = [
            tf.debugging.assert_all_finite(waveform, "waveform holds NaN or infinite samples"),
            tf.debugging.assert_equal(tf.shape(length), tf.shape(waveform)[:1], message=(
                "length must hold one value per clip of waveform")),
            tf.debugging.assert_less_equal(length, samples, message="length must not exceed the samples of a row"),
        ]
        if sample_rate is None:
            checks.append(tf.debugging.assert_non_negative(length, message="length must not be negative"))
        else:
            # One fbank frame at the clip's own rate is the shortest clip that can be scored.
            frame = tf.cast(tf.math.ceil(frame_ms * tf.cast(sample_rate, tf.float32) / 1000.0), tf.int32)
            checks.append(tf.debugging.assert_greater_equal(length, frame, message=(
                f"every clip needs at least one fbank frame ({frame_ms:g} ms) of samples")))
        with tf.control_dependencies(checks):
            return tf.identity(waveform), tf.identity(length)

    waveform = tf.TensorSpec(None, tf.float32, name="waveform")  # [batch, samples], checked in `checked`
    sample_rate = tf.TensorSpec([], tf.int32, name="sample_rate")
    length = tf.TensorSpec(None, tf.int32, name="length")  # [batch]

    # autograph=False: the model's Python branches depend on static settings only.
    @tf.function(input_signature=[waveform, sample_rate], autograph=False)
    def serve(waveform, sample_rate):
        waveform, full = checked(waveform, None, sample_rate)
        return windowed(waveform, sample_rate, full)

    @tf.function(input_signature=[waveform, sample_rate, length], autograph=False)
    def serve_padded(waveform, sample_rate, length):
        waveform, length = checked(waveform, length, sample_rate)
        return windowed(waveform, sample_rate, length)

    @tf.function(input_signature=[waveform, length], autograph=False)
    def serve_with_length(waveform, length):
        waveform, length = checked(waveform, length)
        scores, logits = window_outputs(waveform, length)
        return {"scores": scores, "logits": logits}

    module = tf.Module()
    # Tracking the variables (not the Keras model object) keeps the SavedModel
    # free of Keras-specific objects, as keras.export.ExportArchive does.
    module.model_variables = list(model.variables)
    module.serve, module.serve_padded, module.serve_with_length = serve, serve_padded, serve_with_length
    module.assets = [tf.saved_model.Asset(str(asset)) for asset in assets]
    tf.saved_model.save(
        module,
        str(path),
        signatures={
            SIGNATURE: serve.get_concrete_function(),
            PADDED_SIGNATURE: serve_padded.get_concrete_function(),
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
