"""Exact whole-set evaluation metrics: accuracy, AP/mAP, ROC AUC and d-prime.

NumPy only (no Keras, TensorFlow or scikit-learn at run time), so the same
numbers come out under every backend and in every tool that reads scores.

AST (Gong et al., 2021, https://arxiv.org/abs/2104.01778) and *From Coarse to
Fine* (Feng et al., 2024, https://arxiv.org/abs/2401.08415) report accuracy for
single-label datasets and mAP (plus mAUC and d-prime) for AudioSet. The AST
reference code computes them with scikit-learn's `average_precision_score` and
`roc_auc_score` per class over the whole evaluation set; the functions here
compute the same quantities exactly, ties included, rather than a per-batch
approximation.

All functions take `scores` and `labels` of shape `(examples, classes)`.
Labels may be one-hot / multi-hot, or soft (mixup, label smoothing): for
accuracy the label's argmax is the class; for AP and AUC a label counts as
positive when it is `>= 0.5`.
"""

import math
from statistics import NormalDist

import numpy as np

# A (soft) label at or above this value counts as a positive for AP / AUC.
POSITIVE_THRESHOLD = 0.5


def _as_2d(name, value):
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape (examples, classes) with both > 0. "
            f"Received: shape={array.shape}"
        )
    return array.astype(np.float64, copy=False)


def _check_pair(scores, labels):
    scores = _as_2d("scores", scores)
    labels = _as_2d("labels", labels)
    if scores.shape != labels.shape:
        raise ValueError(
            "scores and labels must have the same shape (examples, classes). "
            f"Received: shape={scores.shape} and shape={labels.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite. Received: scores with NaN or inf values")
    return scores, labels >= POSITIVE_THRESHOLD


def accuracy(scores, labels):
    """Top-1 accuracy: the fraction of examples whose argmax score is the label's class.

    Args:
        scores: `(examples, classes)` scores, logits or probabilities.
        labels: `(examples, classes)` one-hot or soft labels (the class is
            their argmax), or `(examples,)` integer class indices.

    Returns:
        float in [0, 1].

    Example:
        >>> accuracy([[0.1, 0.9], [0.8, 0.2]], [[0, 1], [0, 1]])
        0.5
    """
    scores = _as_2d("scores", scores)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        if labels.shape[0] != scores.shape[0]:
            raise ValueError(
                "Integer labels must have shape (examples,) matching scores. "
                f"Received: shape={labels.shape} for scores of shape={scores.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"1-D labels must be integer class indices. Received: dtype={labels.dtype}"
            )
        if labels.min() < 0 or labels.max() >= scores.shape[1]:
            raise ValueError(
                f"Class indices must lie in [0, {scores.shape[1]}). "
                f"Received: labels in [{labels.min()}, {labels.max()}]"
            )
        target = labels
    else:
        labels = _as_2d("labels", labels)
        if labels.shape != scores.shape:
            raise ValueError(
                "scores and labels must have the same shape (examples, classes). "
                f"Received: shape={scores.shape} and shape={labels.shape}"
            )
        target = np.argmax(labels, axis=1)
    return float(np.mean(np.argmax(scores, axis=1) == target))


def _binary_average_precision(score, positive):
    """AP of one class: Σ_k (R_k − R_{k−1}) P_k over distinct score thresholds."""
    num_positive = int(positive.sum())
    if num_positive == 0:
        return math.nan
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    # Tied scores form one threshold (as scikit-learn's precision_recall_curve):
    # evaluate the cumulative counts at the last example of each tie group.
    last = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    true_positives = np.cumsum(positive)[last]
    predicted = last + 1
    precision = true_positives / predicted
    recall_step = np.diff(np.r_[0, true_positives]) / num_positive
    return float(np.sum(recall_step * precision))


def average_precision(scores, labels):
    """Per-class average precision over the whole set, as scikit-learn computes it.

    AP = Σ_k (R_k − R_{k−1}) · P_k, the sum over decreasing score thresholds of
    the precision at each threshold weighted by the recall it adds; without
    interpolation, identical to `sklearn.metrics.average_precision_score` per
    class. Examples with tied scores share one threshold, so a tie group adds
    its positives at the precision of the whole group (the order inside a tie
    does not matter).

    Args:
        scores: `(examples, classes)` scores (higher = more likely).
        labels: `(examples, classes)` multi-hot labels (positive: `>= 0.5`).

    Returns:
        `(classes,)` float64 array; NaN for a class without positives (AP is
        undefined there; scikit-learn warns and returns 0).
    """
    scores, positive = _check_pair(scores, labels)
    return np.array(
        [_binary_average_precision(scores[:, c], positive[:, c]) for c in range(scores.shape[1])]
    )


def mean_average_precision(scores, labels):
    """mAP: the macro mean of `average_precision` over classes with a positive.

    Classes without any positive example in the set have an undefined AP and
    are left out of the mean (AST's reference code would count them as 0, which
    only happens on subsets; on AudioSet's evaluation set every class has
    positives, so the two agree).

    Args:
        scores: `(examples, classes)` scores.
        labels: `(examples, classes)` multi-hot labels.

    Returns:
        float; NaN if no class has a positive.
    """
    values = average_precision(scores, labels)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def _average_ranks(values):
    """1-based ranks of `values`, ties getting the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
    ends = np.r_[starts[1:], ordered.size]
    group_rank = 0.5 * (starts + 1 + ends)  # mean of ranks starts+1 .. ends
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc(scores, labels):
    """Per-class area under the ROC curve, exact (Mann–Whitney U statistic).

    AUC = P(score of a positive > score of a negative), a tie counting 1/2:
    computed from average ranks as `(Σ ranks of positives − P(P+1)/2) / (P·N)`,
    equal to the trapezoidal area under the ROC curve that
    `sklearn.metrics.roc_auc_score` returns.

    Args:
        scores: `(examples, classes)` scores.
        labels: `(examples, classes)` multi-hot labels (positive: `>= 0.5`).

    Returns:
        `(classes,)` float64 array; NaN for a class with no positive or no
        negative example.
    """
    scores, positive = _check_pair(scores, labels)
    values = np.full(scores.shape[1], math.nan)
    for c in range(scores.shape[1]):
        num_positive = int(positive[:, c].sum())
        num_negative = positive.shape[0] - num_positive
        if num_positive == 0 or num_negative == 0:
            continue
        ranks = _average_ranks(scores[:, c])
        u = ranks[positive[:, c]].sum() - num_positive * (num_positive + 1) / 2.0
        values[c] = u / (num_positive * num_negative)
    return values


def d_prime(auc):
    """Sensitivity index from an AUC: `sqrt(2) · Φ⁻¹(auc)`.

    AST's definition (`d_prime` in its `utilities/stats.py`, after Gemmeke /
    Hershey et al., https://arxiv.org/abs/1609.09430): for two equal-variance
    Gaussians the AUC is Φ(d'/√2). Uses `statistics.NormalDist`, no SciPy.

    Args:
        auc: a float or an array of AUCs in [0, 1].

    Returns:
        float for a scalar input, else a float64 array of the same shape;
        `+inf` at AUC 1, `-inf` at 0, NaN for NaN.
    """
    array = np.asarray(auc, dtype=np.float64)
    if np.any((array < 0) | (array > 1)):
        raise ValueError(f"auc must lie in [0, 1]. Received: auc={auc}")
    normal = NormalDist()

    def one(value):
        if math.isnan(value):
            return math.nan
        if value <= 0.0:
            return -math.inf
        if value >= 1.0:
            return math.inf
        return math.sqrt(2.0) * normal.inv_cdf(value)

    if array.ndim == 0:
        return one(float(array))
    return np.vectorize(one, otypes=[np.float64])(array)


def compute_metrics(scores, labels, multilabel):
    """The validation metrics of a dataset over its whole evaluation set.

    Args:
        scores: `(examples, classes)` scores (softmax or sigmoid outputs).
        labels: `(examples, classes)` one-hot / multi-hot labels.
        multilabel: whether the dataset is multi-label.

    Returns:
        single-label: `{"accuracy": float}`; multi-label: `{"mAP": float,
        "mAUC": float, "d_prime": float}`, where mAUC is the mean ROC AUC over
        classes where it is defined and d_prime is `d_prime(mAUC)` (as AST).
    """
    if not multilabel:
        return {"accuracy": accuracy(scores, labels)}
    aucs = roc_auc(scores, labels)
    defined = aucs[~np.isnan(aucs)]
    mean_auc = float(defined.mean()) if defined.size else math.nan
    return {
        "mAP": mean_average_precision(scores, labels),
        "mAUC": mean_auc,
        "d_prime": float(d_prime(mean_auc)),
    }
