"""Predicting audio files with a trained model: sliding windows, aggregation, top-k.

A model is given by reference (`model_ref`):

* a run directory (`model.keras`, `config.json`, `labels.json`): labels from
  `labels.json`, single/multi-label and the training clip length from the
  run's dataset spec;
* a `.keras` file (or a directory holding `model.keras` without a
  `config.json`, such as a `kc2f export --format keras` output): labels from
  `labels.json` or `labels.txt` beside it, or `labels=`; metadata from a
  `config.json` (run) or `kc2f.json` (export) beside it, if any;
* an exported SavedModel directory (`saved_model.pb`, from `kc2f export`):
  labels and metadata from its assets. Runs with plain TensorFlow whatever the
  Keras backend.

A file is decoded and resampled to the model's rate (`kc2f.data.audio.load_audio`),
cut into windows of `window` seconds every `hop` seconds, and every window is
scored like a training clip: a window shorter than `window` (the file's tail,
or a short file) is zero-padded and its true `length` is passed to the model,
which ignores the padding, as in training. Window scores (softmax or sigmoid)
are aggregated by their mean or maximum over the file.
"""

import math
import os
import pathlib

import numpy as np

from kc2f.data import registry
from kc2f.export import (
    ASSETS,
    KERAS_FILE,
    LABELS_FILE,
    LENGTH_SIGNATURE,
    METADATA_FILE,
    export_version_dir,
    read_labels,
    read_run,
    serving_windows,
)
from kc2f.training.run_directory import RunDirectory, read_json

AGGREGATES = ("mean", "max")


class Predictor:
    """A loaded model that scores batches of fixed-length windows.

    Attributes:
        kind: `"run"`, `"keras"` or `"saved_model"`.
        path: what was loaded.
        labels: label names, one per class.
        sample_rate: rate the model expects, Hz.
        multilabel: sigmoid scores if `True`, softmax otherwise.
        clip_seconds: training clip length (the default window).
        span_seconds: the longest window the model sees entirely: its fbank
            covers `(target_frames - 1) * shift + frame_length`.
        factor: compression factor the model runs at.
        frame_length_ms: the fbank's frame length; a clip shorter than one
            frame gives the model nothing to score.
    """

    def __init__(self, kind, path, labels, sample_rate, multilabel, clip_seconds, span_seconds, factor,
                 logits_fn, frame_length_ms=25.0):
        self.kind = kind
        self.path = str(path)
        self.labels = list(labels)
        self.sample_rate = int(sample_rate)
        self.multilabel = bool(multilabel)
        self.clip_seconds = float(clip_seconds)
        self.span_seconds = float(span_seconds)
        self.factor = int(factor)
        self.frame_length_ms = float(frame_length_ms)
        self._logits_fn = logits_fn

    @property
    def min_samples(self):
        """Samples of one fbank frame: the shortest clip the model can score."""
        return int(round(self.frame_length_ms * self.sample_rate / 1000.0))

    def scores(self, waveform, length):
        """Scores of a batch of windows.

        Args:
            waveform: float32 `(batch, samples)`, zero-padded windows.
            length: int32 `(batch,)`, valid samples of each window.

        Returns:
            float32 NumPy `(batch, classes)`: softmax or sigmoid of the logits.
        """
        logits = np.asarray(self._logits_fn(waveform, length), np.float64)
        return scores_from_logits(logits, self.multilabel)


def scores_from_logits(logits, multilabel):
    """Sigmoid (multi-label) or softmax (single-label) of `(batch, classes)` logits, float32."""
    logits = np.asarray(logits, np.float64)
    if multilabel:
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def _span_seconds(target_frames, frame_shift_ms, frame_length_ms):
    # Full-resolution span: every compression method covers the same clip (the
    # fshift front-end at C loses at most C-1 shifts of its tail, a few ms).
    return ((target_frames - 1) * frame_shift_ms + frame_length_ms) / 1000.0


def _read_optional_json(path):
    return read_json(path) if pathlib.Path(path).is_file() else None


def load_predictor(model_ref, labels=None, factor=None, multilabel=None):
    """Loads a run directory, `.keras` file or exported SavedModel for prediction.

    Args:
        model_ref: path of a run directory, a `.keras` file, a directory with a
            `model.keras`, or a SavedModel directory exported by `kc2f export`.
        labels: label file (`.json` list or text, one a line) overriding the
            one found beside the model.
        factor: run a full-resolution Keras model at compression C (flexible
            resolution, `ModelFamily.at_factor`); not possible for
            a SavedModel, whose graph is fixed at export.
        multilabel: force sigmoid (`True`) or softmax (`False`) scores; `None`
            takes it from the run's dataset or the export's metadata
            (softmax when a bare `.keras` file has neither).

    Returns:
        `Predictor`.

    Raises:
        ValueError: the reference is not a model, a label or metadata file is
            missing or malformed, the label count does not match the model, or
            `factor` is not possible (messages name the file or option).
    """
    if factor is not None and (not isinstance(factor, int) or isinstance(factor, bool) or factor < 1):
        raise ValueError(f"factor must be an integer >= 1. Received: factor={factor!r}")
    path = pathlib.Path(model_ref)
    if not path.exists():
        raise ValueError(f"Model {path} does not exist.")
    version = export_version_dir(path) if path.is_dir() and not (path / RunDirectory.CONFIG).is_file() else None
    if version is not None:
        path = version
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _load_saved_model(path, labels, factor, multilabel)
    if path.is_dir() and (path / KERAS_FILE).is_file():
        if (path / RunDirectory.CONFIG).is_file():
            run = read_run(path)
            return _load_keras(
                "run", run["model_path"], read_labels(labels) if labels else run["labels"], factor,
                run["spec"].multilabel if multilabel is None else multilabel, run["spec"].clip_seconds,
            )
        path = path / KERAS_FILE
    if path.is_file() and path.suffix == ".keras":
        return _load_keras_file(path, labels, factor, multilabel)
    raise ValueError(
        "MODEL must be a run directory, a .keras file or a SavedModel directory exported by "
        f"`kc2f export`. Received: {path}"
    )


def _sidecar_labels(path, labels):
    if labels:
        return read_labels(labels)
    for candidate in (path.parent / RunDirectory.LABELS, path.parent / LABELS_FILE,
                      path.parent / ASSETS / LABELS_FILE):
        if candidate.is_file():
            return read_labels(candidate)
    raise ValueError(
        f"No labels for {path}: put labels.json or {LABELS_FILE} beside it, or pass --labels FILE."
    )


def _load_keras_file(path, labels, factor, multilabel):
    labels = _sidecar_labels(path, labels)
    clip_seconds = None
    config = _read_optional_json(path.parent / RunDirectory.CONFIG)
    metadata = _read_optional_json(path.parent / ASSETS / METADATA_FILE) or _read_optional_json(
        path.parent / METADATA_FILE)
    if isinstance(config, dict) and "dataset" in config:
        spec = registry.input_spec(config["dataset"], config)
        clip_seconds = spec.clip_seconds
        multilabel = spec.multilabel if multilabel is None else multilabel
    elif isinstance(metadata, dict):
        clip_seconds = metadata.get("clip_seconds")
        multilabel = metadata.get("multilabel", False) if multilabel is None else multilabel
    return _load_keras("keras", path, labels, factor, bool(multilabel), clip_seconds)


def _load_keras(kind, path, labels, factor, multilabel, clip_seconds):
    # Deferred: Keras and its backend take seconds to import; a SavedModel needs neither.
    import keras

    from kc2f.families import family_of, load_model

    model = load_model(path)
    family = family_of(model)  # ValueError naming the class when no family builds it
    if factor is not None and factor != model.factor:
        model = family.at_factor(model, factor)
    info = family.serving_info(model)
    if info["num_classes"] != len(labels):
        raise ValueError(
            f"{path} has {info['num_classes']} outputs but the labels list {len(labels)} names."
        )
    span = _span_seconds(info["target_frames"], info["frame_shift_ms"], info["frame_length_ms"])
    if clip_seconds is None:
        # No dataset recipe at hand: the clip the fbank was sized for.
        clip_seconds = info["target_frames"] * info["frame_shift_ms"] / 1000.0

    def logits_fn(waveform, length):
        out = model.predict_on_batch({"waveform": waveform, "length": length})
        return keras.ops.convert_to_numpy(out)

    return Predictor(kind, path, labels, info["sample_rate"], multilabel, clip_seconds, span, info["factor"],
                     logits_fn, frame_length_ms=info["frame_length_ms"])


def _load_saved_model(path, labels, factor, multilabel):
    # Deferred: only a SavedModel needs TensorFlow itself.
    import tensorflow as tf

    metadata = None
    for candidate in (path / ASSETS / METADATA_FILE, path / METADATA_FILE):
        metadata = _read_optional_json(candidate)
        if metadata is not None:
            break
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} is a SavedModel without {METADATA_FILE}: was it exported by `kc2f export`?")
    if factor is not None and factor != metadata["factor"]:
        raise ValueError(
            f"--factor applies to run directories and .keras files; the SavedModel {path} was exported "
            f"at factor {metadata['factor']} (export again with --factor). Received: factor={factor}"
        )
    if labels:
        labels = read_labels(labels)
    else:
        labels = read_labels(path / ASSETS / LABELS_FILE)
    if len(labels) != metadata["num_classes"]:
        raise ValueError(
            f"{path} has {metadata['num_classes']} outputs but the labels list {len(labels)} names."
        )
    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures[LENGTH_SIGNATURE]
    except (OSError, KeyError, ValueError, tf.errors.OpError) as error:
        raise ValueError(f"Cannot load the SavedModel {path}: {error}") from None

    def logits_fn(waveform, length):
        out = signature(waveform=tf.constant(waveform, tf.float32), length=tf.constant(length, tf.int32))
        return out["logits"].numpy()

    span = _span_seconds(metadata["target_frames"], metadata["frame_shift_ms"], metadata["frame_length_ms"])
    return Predictor(
        "saved_model", path, labels, metadata["sample_rate"],
        metadata["multilabel"] if multilabel is None else multilabel,
        metadata["clip_seconds"], span, metadata["factor"], logits_fn,
        frame_length_ms=metadata["frame_length_ms"],
    )


def window_starts(num_samples, window, hop):
    """First sample of every window that covers a signal.

    Windows start at `0, hop, 2 hop, ...` until one reaches the end, so there
    are `1 + ceil((num_samples - window) / hop)` of them (1 if the signal fits
    in one window); the last may be partial.

    Args:
        num_samples: signal length.
        window: window length, samples (> 0).
        hop: distance between window starts, samples (0 < hop <= window).

    Returns:
        list of int.
    """
    if num_samples <= window:
        return [0]
    return [i * hop for i in range(1 + math.ceil((num_samples - window) / hop))]


def _top(scores, labels, k):
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"label": labels[i], "index": int(i), "score": float(scores[i])} for i in order]


def _batch_shape(n, batch_size):
    # Powers of two up to batch_size: few distinct shapes, so a jit-compiling
    # backend compiles a handful of times, not once per file.
    return min(batch_size, 1 << max(n - 1, 0).bit_length())


def predict_files(model_ref, files, window=None, hop=None, aggregate="mean", top_k=5, factor=None, *,
                  labels=None, multilabel=None, per_window=False, batch_size=16, on_result=None):
    """Predicts audio files with sliding windows; one result per file, bad files included.

    Windows of consecutive files share model calls (`batch_size` windows each),
    so many short files cost a few large batches, not one small call each.

    Args:
        model_ref: run directory, `.keras` file or exported SavedModel directory
            (see `load_predictor`), or a loaded `Predictor`.
        files: audio file paths (WAV, FLAC, Ogg Vorbis, MP3; any rate, any channels).
        window: window length in seconds; default the training clip length. It
            may not exceed the model's input span (`Predictor.span_seconds`):
            the model would silently ignore the rest.
        hop: seconds between window starts; default `window / 2`; at most `window`.
        aggregate: `"mean"` or `"max"` of the window scores.
        top_k: labels to report per file (and per window).
        factor: run a Keras model at compression C (flexible resolution).
        labels: label file overriding the model's.
        multilabel: force sigmoid (`True`) / softmax (`False`) scores.
        per_window: add every window's scores to the results.
        batch_size: windows per model call.
        on_result: called with each result as soon as it is ready, in order.

    Returns:
        list of dict, in the order of `files`. A predicted file: `file`,
        `duration` (s), `windows`, `window` (s), `hop` (s), `aggregate`, `top`
        (list of `{"label", "index", "score"}`, best first), `scores` (the
        aggregated scores, a float per class) and, with `per_window`,
        `per_window` (list of `{"start", "end", "top", "scores"}`, seconds and
        `{label: score}`). A file that cannot be read: `file` and `error` (the
        reason, naming the file).

    Raises:
        ValueError: bad model or option (the message names it). Unreadable audio
            files do not raise; they are reported in their result.
    """
    predictor = _checked_predictor(model_ref, aggregate, top_k, batch_size, window, hop, labels, factor,
                                   multilabel)
    return predict_waveforms(predictor, audio_items(files, predictor.sample_rate), window=window, hop=hop,
                             aggregate=aggregate, top_k=top_k, per_window=per_window, batch_size=batch_size,
                             on_result=on_result)


def as_waveform(item, index):
    """One waveform of the Python API as mono float32 in [-1, 1], or ValueError naming `inputs[index]`.

    The input contract (README, "Python API"): a 1-D array of finite samples;
    float arrays are taken as they are, integer PCM (`int8`/`int16`/`int32`,
    unsigned 8-bit) is scaled by its type's range as files are; anything else
    (bool, complex, strings, more dimensions) is refused.
    """
    array = np.asarray(item)
    if array.dtype.kind == "u":
        half = (np.iinfo(array.dtype).max + 1) / 2.0
        array = (array.astype(np.float64) - half) / half
    elif array.dtype.kind == "i":
        array = array.astype(np.float64) / -float(np.iinfo(array.dtype).min)
    elif array.dtype.kind != "f":
        raise ValueError(f"Each waveform must hold float samples or integer PCM. Received: inputs[{index}] "
                         f"of dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(
            f"Each waveform must be 1-D (mono). Received: inputs[{index}] with shape {array.shape}"
        )
    waveform = array.astype(np.float32)
    if not np.all(np.isfinite(waveform)):
        bad = int(np.sum(~np.isfinite(waveform)))
        raise ValueError(f"inputs[{index}] holds {bad} NaN or infinite samples: there is nothing to score.")
    return waveform


def audio_items(inputs, rate, sample_rate=None, min_samples=1):
    """`(name, mono float32 waveform at rate)` per input, lazily; an unreadable file gives its error.

    Args:
        inputs: file paths and 1-D waveforms (`as_waveform`'s contract), in any mix.
        rate: the model's rate, Hz.
        sample_rate: rate of the waveforms (files are decoded at their own).
        min_samples: fewest samples a waveform must have at `rate` (one fbank frame).

    Yields:
        `(name, waveform or kc2f.data.audio.AudioError)`; a waveform's name is
        `"waveform[i]"`, `i` its index in `inputs`.

    Raises:
        ValueError: a waveform that breaks the contract (`as_waveform`), is shorter
            than `min_samples`, or comes without `sample_rate`.
    """
    # Deferred: decoding and resampling import TensorFlow (seconds), which option errors need not wait for.
    from kc2f.data.audio import AudioError, load_audio, resample

    for index, item in enumerate(inputs):
        if isinstance(item, (str, os.PathLike)):
            try:
                yield str(item), load_audio(item, rate)
            except AudioError as error:
                yield str(item), error
            except OSError as error:
                yield str(item), AudioError(item, error.strerror or str(error))
            continue
        if sample_rate is None:
            raise ValueError(f"sample_rate is required to predict waveforms (inputs[{index}] is one). "
                             "Received: sample_rate=None")
        waveform = as_waveform(item, index)
        if waveform.size and int(sample_rate) != rate:
            waveform = np.asarray(resample(waveform, int(sample_rate), rate))
        if waveform.size < min_samples:
            raise ValueError(
                f"inputs[{index}] has {waveform.size} samples at {rate} Hz, fewer than one fbank frame "
                f"({min_samples} samples): there is nothing to score. A (samples, channels) array is not "
                "one clip a row: mix it down first, e.g. x.mean(axis=1)."
            )
        yield f"waveform[{index}]", waveform


def _checked_predictor(model_ref, aggregate, top_k, batch_size, window, hop, labels=None, factor=None,
                       multilabel=None):
    if aggregate not in AGGREGATES:
        raise ValueError(
            f"aggregate must be one of {', '.join(AGGREGATES)}. Received: aggregate={aggregate!r}"
        )
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1. Received: top_k={top_k!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1. Received: batch_size={batch_size!r}")
    for name, value in (("window", window), ("hop", hop)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number of seconds. Received: {name}={value!r}")
    if isinstance(model_ref, Predictor):
        return model_ref
    return load_predictor(model_ref, labels=labels, factor=factor, multilabel=multilabel)


def predict_waveforms(predictor, items, window=None, hop=None, aggregate="mean", top_k=5, per_window=False,
                      batch_size=16, on_result=None):
    """Predicts waveforms at the model's rate with sliding windows, batching windows across items.

    Args:
        predictor: a loaded `Predictor`.
        items: iterable of `(name, waveform)`: float32 mono `(samples,)` at
            `predictor.sample_rate`, or an exception (reported as the item's
            `error`).
        window, hop, aggregate, top_k, per_window, batch_size, on_result: as
            for `predict_files`.

    Returns:
        list of dict, one per item, as `predict_files` (`file` is the name).
    """
    predictor = _checked_predictor(predictor, aggregate, top_k, batch_size, window, hop)
    window = predictor.clip_seconds if window is None else float(window)
    hop = window / 2.0 if hop is None else float(hop)
    if window > predictor.span_seconds + 1e-9:
        raise ValueError(
            f"window is longer than the model's input span of {predictor.span_seconds:g} s (the training "
            f"clip is {predictor.clip_seconds:g} s); the model would ignore the rest of each window. "
            f"Received: window={window:g}"
        )
    if hop > window:
        raise ValueError(
            f"hop must not exceed window ({window:g} s); audio would be skipped. Received: hop={hop:g}"
        )
    rate = predictor.sample_rate
    if window == predictor.clip_seconds and hop == window / 2.0:
        # The serving signatures' windows, to the sample.
        window_samples, hop_samples = serving_windows(window, rate)
    else:
        window_samples, hop_samples = max(int(round(window * rate)), 1), max(int(round(hop * rate)), 1)
    options = {"window": window_samples, "hop": hop_samples, "aggregate": aggregate,
               "k": min(top_k, len(predictor.labels)), "per_window": per_window}

    results, pending, queue = [], [], []  # finished results; items awaiting scores; (item, row, window)

    def flush(limit):
        while len(queue) >= limit and queue:
            chunk, queue[:] = queue[:batch_size], queue[batch_size:]
            rows = _batch_shape(len(chunk), batch_size)
            # Padding rows have length 0: the model sees silence there; their scores are dropped.
            waveform = np.zeros((rows, window_samples), np.float32)
            length = np.zeros((rows,), np.int32)
            for i, (_, _, samples) in enumerate(chunk):
                waveform[i, : len(samples)] = samples
                length[i] = len(samples)
            scores = predictor.scores(waveform, length)
            for (item, row, _), row_scores in zip(chunk, scores):
                item["scores"][row] = row_scores
                item["missing"] -= 1
        while pending and pending[0]["missing"] == 0:
            result = _result(predictor, pending.pop(0), options)
            results.append(result)
            if on_result is not None:
                on_result(result)

    for name, audio in items:
        if isinstance(audio, BaseException):
            item = {"name": name, "error": str(audio), "missing": 0}
        elif len(audio) < predictor.min_samples:
            # The input contract (as for arrays, `audio_items`): no fbank frame, nothing to score.
            rate = predictor.sample_rate
            item = {"name": name, "missing": 0, "error": (
                f"{name}: only {len(audio)} samples ({len(audio) / rate * 1000:.1f} ms at {rate} Hz), shorter "
                f"than one fbank frame ({predictor.min_samples} samples): there is nothing to score")}
        else:
            audio = np.asarray(audio, np.float32)
            starts = window_starts(len(audio), window_samples, hop_samples)
            spans = [(start, min(start + window_samples, len(audio))) for start in starts]
            item = {"name": name, "audio_length": len(audio), "spans": spans, "missing": len(spans),
                    "scores": [None] * len(spans)}
            queue.extend((item, row, audio[start:end]) for row, (start, end) in enumerate(spans))
        pending.append(item)
        flush(batch_size)
    flush(1)
    return results


def _result(predictor, item, options):
    """The result dict of one finished item."""
    if "error" in item:
        return {"file": item["name"], "error": item["error"]}
    rate, k = predictor.sample_rate, options["k"]
    scores = np.stack(item["scores"])
    total = scores.mean(axis=0) if options["aggregate"] == "mean" else scores.max(axis=0)
    result = {
        "file": item["name"],
        "duration": item["audio_length"] / rate,
        "windows": len(scores),
        "window": options["window"] / rate,
        "hop": options["hop"] / rate,
        "aggregate": options["aggregate"],
        "top": _top(total, predictor.labels, k),
        "scores": [float(score) for score in total],
    }
    if options["per_window"]:
        result["per_window"] = [
            {
                "start": start / rate,
                "end": end / rate,
                "top": _top(row, predictor.labels, k),
                "scores": {name: float(s) for name, s in zip(predictor.labels, row)},
            }
            for row, (start, end) in zip(scores, item["spans"])
        ]
    return result
