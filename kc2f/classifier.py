"""`kc2f.load`: a trained model as a Python object that predicts files and waveforms."""

import os

import numpy as np

from kc2f.inference import audio_items, load_predictor, predict_waveforms


class AudioClassifier:
    """A trained kc2f audio classifier, for prediction from Python.

    Made by `kc2f.load(path)` (or `AudioClassifier.load`) from a run directory,
    an export (`OUT` or `OUT/N`: SavedModel or `.keras`) or a `.keras` file.
    Predictions are those of `kc2f predict`: every input is resampled to the
    model's rate, cut into windows of the training clip length (every half
    window by default), the windows of all inputs are scored together in
    batches of `batch_size`, and each input's window scores are aggregated.

    Args:
        predictor: a loaded `kc2f.inference.Predictor`.

    Attributes:
        labels: class names, one per output.
        sample_rate: the model's rate, Hz.
        multilabel: sigmoid scores if `True`, softmax otherwise.
        clip_seconds: training clip length (the default window).
    """

    def __init__(self, predictor):
        self.predictor = predictor

    @classmethod
    def load(cls, path, labels=None, factor=None, multilabel=None):
        """Loads a model; see `kc2f.inference.load_predictor` for the arguments."""
        return cls(load_predictor(path, labels=labels, factor=factor, multilabel=multilabel))

    labels = property(lambda self: self.predictor.labels)
    sample_rate = property(lambda self: self.predictor.sample_rate)
    multilabel = property(lambda self: self.predictor.multilabel)
    clip_seconds = property(lambda self: self.predictor.clip_seconds)

    def __repr__(self):
        return (f"AudioClassifier({self.predictor.path!r}, {len(self.labels)} classes, "
                f"{self.sample_rate} Hz, factor {self.predictor.factor})")

    def predict(self, inputs, sample_rate=None, top_k=5, batch_size=16, window=None, hop=None,
                aggregate="mean", per_window=False):
        """Scores audio files and waveforms.

        Args:
            inputs: a file path, a mono waveform (1-D array), a 2-D array (one
                waveform a row) or a list mixing paths and waveforms.
            sample_rate: rate of the waveforms, Hz (required when there are
                any); files are decoded at their own rate. Both are resampled
                to the model's rate.
            top_k: labels per result.
            batch_size: windows per model call (across inputs).
            window: window length, seconds (default: the training clip).
            hop: seconds between windows (default: window / 2).
            aggregate: `"mean"` or `"max"` of the window scores.
            per_window: add every window's scores.

        Returns:
            For a single path or 1-D waveform, one result; otherwise a list, in
            input order. A result is a dict: `file` (the path, or `"waveform[i]"`),
            `top` (`[{"label", "index", "score"}]`, best first), `scores`
            (float32 `(classes,)`), `duration`, `windows`, `window`, `hop`,
            `aggregate` (and `per_window`); an unreadable file gives `file` and
            `error` instead.

        Raises:
            ValueError: a waveform without `sample_rate`, an array that is not
                1-D or 2-D, or a bad option (the message names it).
        """
        if isinstance(inputs, np.ndarray) and inputs.ndim == 2 and inputs.shape[1] <= 8 < inputs.shape[0]:
            # (samples, channels) read as one clip a row would be thousands of clips of a few samples.
            raise ValueError(
                f"A 2-D waveform array is one clip a row, (clips, samples); this one looks like (samples, "
                f"channels): mix it down first, e.g. x.mean(axis=1). Received: shape={inputs.shape}"
            )
        single = isinstance(inputs, (str, os.PathLike)) or (isinstance(inputs, np.ndarray) and inputs.ndim == 1)
        if single:
            inputs = [inputs]
        elif isinstance(inputs, np.ndarray):
            if inputs.ndim != 2:
                raise ValueError(
                    f"A waveform array must be 1-D (one clip) or 2-D (one clip a row). Received: shape={inputs.shape}"
                )
            inputs = list(inputs)
        results = predict_waveforms(
            self.predictor, audio_items(list(inputs), self.sample_rate, sample_rate, self.predictor.min_samples),
            window=window, hop=hop, aggregate=aggregate,
            top_k=top_k, per_window=per_window, batch_size=batch_size,
        )
        for result in results:
            if "scores" in result:
                result["scores"] = np.asarray(result["scores"], np.float32)
        return results[0] if single else results
