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
import pathlib

import numpy as np

from kc2f.data import registry
from kc2f.export import KERAS_FILE, LABELS_FILE, LENGTH_SIGNATURE, METADATA_FILE, read_labels, read_run
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
    for name in (RunDirectory.LABELS, LABELS_FILE):
        if (path.parent / name).is_file():
            return read_labels(path.parent / name)
    raise ValueError(
        f"No labels for {path}: put labels.json or {LABELS_FILE} beside it, or pass --labels FILE."
    )


def _load_keras_file(path, labels, factor, multilabel):
    labels = _sidecar_labels(path, labels)
    clip_seconds = None
    config = _read_optional_json(path.parent / RunDirectory.CONFIG)
    metadata = _read_optional_json(path.parent / METADATA_FILE)
    if isinstance(config, dict) and "dataset" in config:
        spec = registry.get_dataset_spec(config["dataset"])
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
    if not hasattr(model, "target_frames"):
        raise ValueError(f"{path} is not a kc2f AudioSpectrogramTransformer ({type(model).__name__}).")
    if model.num_classes != len(labels):
        raise ValueError(
            f"{path} has {model.num_classes} outputs but the labels list {len(labels)} names."
        )
    if factor is not None and factor != model.factor:
        model = family_of(model).at_factor(model, factor)
    span = _span_seconds(model.target_frames, model.frame_shift_ms, model.frame_length_ms)
    if clip_seconds is None:
        # No dataset recipe at hand: the clip the fbank was sized for.
        clip_seconds = model.target_frames * model.frame_shift_ms / 1000.0

    def logits_fn(waveform, length):
        out = model.predict_on_batch({"waveform": waveform, "length": length})
        return keras.ops.convert_to_numpy(out)

    return Predictor(kind, path, labels, model.sample_rate, multilabel, clip_seconds, span, model.factor,
                     logits_fn, frame_length_ms=model.frame_length_ms)


def _load_saved_model(path, labels, factor, multilabel):
    # Deferred: only a SavedModel needs TensorFlow itself.
    import tensorflow as tf

    metadata = None
    for candidate in (path / "assets" / METADATA_FILE, path / METADATA_FILE):
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
        labels = read_labels(path / "assets" / LABELS_FILE)
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
        on_result: called with each result as soon as it is ready.

    Returns:
        list of dict, in the order of `files`. A predicted file: `file`,
        `duration` (s), `windows`, `window` (s), `hop` (s), `aggregate`, `top`
        (list of `{"label", "index", "score"}`, best first) and, with
        `per_window`, `per_window` (list of `{"start", "end", "top", "scores"}`,
        seconds and `{label: score}`). A file that cannot be read: `file` and
        `error` (the reason, naming the file).

    Raises:
        ValueError: bad model or option (the message names it). Unreadable audio
            files do not raise; they are reported in their result.
    """
    # Deferred: decoding imports TensorFlow (seconds), which option errors need not wait for.
    from kc2f.data.audio import AudioError, load_audio

    if aggregate not in AGGREGATES:
        raise ValueError(
            f"aggregate must be one of {', '.join(AGGREGATES)}. Received: aggregate={aggregate!r}"
        )
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1. Received: top_k={top_k!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1. Received: batch_size={batch_size!r}")
    for name, value in (("window", window), ("hop", hop)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number of seconds. Received: {name}={value!r}")
    predictor = model_ref if isinstance(model_ref, Predictor) else load_predictor(
        model_ref, labels=labels, factor=factor, multilabel=multilabel
    )
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
    window_samples = max(int(round(window * rate)), 1)
    hop_samples = max(int(round(hop * rate)), 1)
    k = min(top_k, len(predictor.labels))

    results = []
    for file in files:
        try:
            audio = load_audio(file, rate)
        except (AudioError, OSError) as error:
            result = {"file": str(file), "error": str(error) if isinstance(error, AudioError)
                      else f"{file}: {error.strerror or error}"}
        else:
            scores, spans = _score_windows(predictor, audio, window_samples, hop_samples, batch_size)
            total = scores.mean(axis=0) if aggregate == "mean" else scores.max(axis=0)
            result = {
                "file": str(file),
                "duration": len(audio) / rate,
                "windows": len(scores),
                "window": window_samples / rate,
                "hop": hop_samples / rate,
                "aggregate": aggregate,
                "top": _top(total, predictor.labels, k),
            }
            if len(audio) < predictor.min_samples:
                result["warning"] = (
                    f"{file}: only {len(audio)} samples ({len(audio) / rate * 1000:.1f} ms), shorter than one "
                    f"fbank frame ({predictor.min_samples} samples): its scores carry no information"
                )
            if per_window:
                result["per_window"] = [
                    {
                        "start": start / rate,
                        "end": end / rate,
                        "top": _top(row, predictor.labels, k),
                        "scores": {name: float(s) for name, s in zip(predictor.labels, row)},
                    }
                    for row, (start, end) in zip(scores, spans)
                ]
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _score_windows(predictor, audio, window, hop, batch_size):
    """Scores `(windows, classes)` and `(start, end)` sample spans of one waveform."""
    starts = window_starts(len(audio), window, hop)
    spans = [(s, min(s + window, len(audio))) for s in starts]
    scores = []
    for first in range(0, len(starts), batch_size):
        chunk = spans[first:first + batch_size]
        rows = _batch_shape(len(chunk), batch_size)
        # Padding rows have length 0: the model sees silence there; their scores are dropped.
        waveform = np.zeros((rows, window), np.float32)
        length = np.zeros((rows,), np.int32)
        for i, (start, end) in enumerate(chunk):
            waveform[i, : end - start] = audio[start:end]
            length[i] = end - start
        scores.append(predictor.scores(waveform, length)[: len(chunk)])
    return np.concatenate(scores), spans
