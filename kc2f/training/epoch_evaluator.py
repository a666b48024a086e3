"""Per-epoch training clock and exact validation metrics, as a Keras callback."""

import time

import keras
import numpy as np

from kc2f.data.repeated_passes import RepeatedPasses
from kc2f.training.metrics import compute_metrics
from kc2f.training.run_state import EpochResult


def cross_entropy(logits, labels, multilabel):
    """The training loss's value on whole-set logits, in float64: mean categorical or binary cross-entropy.

    The same definitions as the compiled losses (`CategoricalCrossentropy` /
    `BinaryCrossentropy` from logits, mean over examples and, for binary, over
    classes), computed stably: `-Σ y·log_softmax(z)` and
    `max(z, 0) - z·y + log(1 + e^-|z|)`.

    Args:
        logits: `(examples, classes)` logits.
        labels: `(examples, classes)` one-hot or multi-hot labels.
        multilabel: binary cross-entropy if `True`, categorical otherwise.
    """
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    if multilabel:
        return float(np.mean(np.maximum(logits, 0.0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(np.mean(-(labels * log_softmax).sum(axis=1)))


def predict_scores(model, dataset, multilabel, return_logits=False, progress=None):
    """Scores (softmax or sigmoid) and labels of a whole dataset, as NumPy.

    Args:
        model: the classifier (logits out).
        dataset: iterable of `(inputs, labels)` batches.
        multilabel: sigmoid scores if `True`, softmax otherwise.
        return_logits: also return the float64 logits.
        progress: a `kc2f.data.progress_bar.ProgressBar` advanced by each
            batch's clips, or `None`.

    Returns:
        `(scores, labels)`, both `(examples, classes)` float32, and the
        logits `(examples, classes)` float64 with `return_logits`.
    """
    scores, labels, all_logits = [], [], []
    full = None
    for inputs, targets in dataset:
        # NumPy in: tf.data tensors are not valid inputs under every backend.
        inputs = keras.tree.map_structure(np.asarray, inputs)
        count = len(targets)
        full = full or count
        if count < full:
            # The last, short batch is padded with copies of its last clip (scores dropped below), so
            # that the compiled predict step of the first batch's shape serves it: one compilation
            # per model, not two.
            inputs = keras.tree.map_structure(
                lambda x: np.concatenate([x, np.repeat(x[-1:], full - count, axis=0)]), inputs)
        logits = np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(inputs)), np.float64)[:count]
        all_logits.append(logits)
        if multilabel:
            probabilities = 1.0 / (1.0 + np.exp(-logits))
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        scores.append(probabilities.astype(np.float32))
        labels.append(np.asarray(targets, np.float32))
        if progress is not None:
            progress.advance(len(labels[-1]))
    if not scores:
        raise ValueError("The evaluation dataset is empty.")
    if return_logits:
        return np.concatenate(scores), np.concatenate(labels), np.concatenate(all_logits)
    return np.concatenate(scores), np.concatenate(labels)


# Evaluation batches are this many training batches: a forward pass keeps no activations for a
# backward one, so a larger batch fits and each clip pays less of the per-call overhead.
EVAL_BATCH_MULTIPLE = 4


def eval_batch_size(batch_size, num_clips):
    """The evaluation batch of a run training on `batch_size`: `EVAL_BATCH_MULTIPLE` times it, at most
    the split's `num_clips` rounded up to a whole training batch (a small split is one batch, one
    compiled shape; a multiple of the training batch divides over the same devices)."""
    return batch_size * max(1, min(EVAL_BATCH_MULTIPLE, -(-num_clips // batch_size)))


class EpochEvaluator(keras.callbacks.Callback):
    """Times each training epoch and computes exact validation metrics and loss into `state.result`.

    Metrics and the loss (`cross_entropy`, the training loss's definition)
    are computed over the whole validation set at once (exact mAP, not a
    per-batch approximation), after the epoch's training part is timed, so
    the training time excludes evaluation. The callbacks after it
    (`PhaseSwitch`, `EpochRecorder`) read the `EpochResult` it leaves in
    `state.result`.

    Args:
        dataset_fn: zero-argument function returning the validation dataset.
        multilabel: whether labels are multi-hot.
        metric: name of the headline metric (`"accuracy"` or `"mAP"`).
        state: the run's `RunState`.
        evaluate: `None`, or a function `(model, dataset)` returning the
            metrics `{name: value}` or `None` (the model family's `evaluate`:
            `None` scores the classifier as above).

    Attributes:
        eval_model: `None`, or a single-device model of the same architecture
            that the trained weights are copied into before scoring. A
            data-parallel run on TensorFlow sets it, as a distributed
            `predict_on_batch` there returns one copy of the batch per
            replica; each process then scores the whole validation set on
            its own, in the same order, without the replicas' collectives.
    """

    def __init__(self, dataset_fn, multilabel, metric, state, evaluate=None):
        super().__init__()
        self.evaluate = evaluate
        self.dataset_fn = dataset_fn
        self.multilabel = multilabel
        self.metric = metric
        self.state = state
        self.eval_model = None
        self._start = None
        self._passes = None

    def warm_up(self, model, dataset):
        """Runs `model` through the evaluation path once on `dataset`, recording nothing: what
        compiles its evaluation step ahead (`PhasePrecompiler`)."""
        if self.evaluate is None or self.evaluate(model, dataset) is None:
            predict_scores(model, dataset, self.multilabel)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        train_seconds = time.perf_counter() - self._start
        start = time.perf_counter()
        model = self.model
        if self.eval_model is not None:
            for target, source in zip(self.eval_model.weights, self.model.weights):
                target.assign(source.numpy())
            model = self.eval_model
        dataset = self.dataset_fn()
        if self._passes is None or self._passes.dataset is not dataset:
            self._passes = RepeatedPasses(dataset)  # one iterator for every epoch's pass
        values = self.evaluate(model, self._passes) if self.evaluate is not None else None
        if values is None:
            scores, labels, logits = predict_scores(model, self._passes, self.multilabel, return_logits=True)
            values = {name: float(value) for name, value in compute_metrics(scores, labels, self.multilabel).items()}
            loss = cross_entropy(logits, labels, self.multilabel)
        else:  # a family scoring its own objective reports its loss among its values
            loss = values.get("loss")
        self.state.result = EpochResult(
            train_seconds=train_seconds,
            eval_seconds=time.perf_counter() - start,
            metric=values[self.metric],
            metrics=values,
            loss=loss,
        )
