"""Metrics against hand-computed tiny cases, brute-force NumPy references and scikit-learn.

The references follow the definitions literally (every threshold, every
positive/negative pair), so they share no code or tie logic with
`kc2f.training.metrics`. scikit-learn's `average_precision_score` and
`roc_auc_score` (what the AST reference code calls, per class) and SciPy's
normal quantile are the external cross-check (docs/method.md#metrics).
"""

import math
from statistics import NormalDist

import numpy as np
import pytest
import sklearn.metrics
from scipy.stats import norm

from kc2f.training.metrics import (
    accuracy,
    average_precision,
    compute_metrics,
    d_prime,
    mean_average_precision,
    roc_auc,
)


def _reference_ap(score, label):
    """Σ_k (R_k − R_{k−1}) P_k over distinct thresholds t, predicting `score >= t`."""
    positives = label.sum()
    if positives == 0:
        return math.nan
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted(set(score.tolist()), reverse=True):
        predicted = score >= threshold
        true_positives = np.sum(predicted & (label == 1))
        recall = true_positives / positives
        ap += (recall - previous_recall) * true_positives / predicted.sum()
        previous_recall = recall
    return ap


def _reference_auc(score, label):
    """Fraction of (positive, negative) pairs ranked right, ties counting 1/2."""
    pos, neg = score[label == 1], score[label == 0]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    total = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return total / (pos.size * neg.size)


def _random_case(seed, examples=40, classes=6, tied=False):
    rng = np.random.default_rng(seed)
    if tied:
        # Few distinct values: many ties inside and across classes.
        scores = rng.integers(0, 4, size=(examples, classes)) / 4.0
    else:
        scores = rng.random((examples, classes))
    labels = (rng.random((examples, classes)) < 0.3).astype(np.float32)
    labels[:, 0] = 0.0  # a class without positives
    labels[:, 1] = 1.0  # a class without negatives
    return scores, labels


# --- hand-computed cases --------------------------------------------------------------------


def test_average_precision_and_auc_by_hand():
    # Ranked: +, −, +, −. AP = ½·1 + ½·⅔ = 5/6. AUC: 3 of 4 pairs right.
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    labels = np.array([[1], [0], [1], [0]])
    np.testing.assert_allclose(average_precision(scores, labels), [5.0 / 6.0])
    np.testing.assert_allclose(roc_auc(scores, labels), [0.75])


def test_ties_by_hand():
    # One tie group {+, −, −} at 0.5, then + at 0.1.
    # Thresholds: 0.5 → P = 1/3, R = 1/2; 0.1 → P = 2/4, R = 1. AP = ½·⅓ + ½·½ = 5/12.
    # AUC pairs: (0.5, 0.5) twice → ½ + ½; (0.1, 0.5) twice → 0. Total 1/4.
    scores = np.array([[0.5], [0.5], [0.5], [0.1]])
    labels = np.array([[1], [0], [0], [1]])
    np.testing.assert_allclose(average_precision(scores, labels), [5.0 / 12.0])
    np.testing.assert_allclose(roc_auc(scores, labels), [0.25])
    # The order of examples inside a tie group must not matter.
    np.testing.assert_allclose(average_precision(scores[[1, 2, 0, 3]], labels[[1, 2, 0, 3]]), [5.0 / 12.0])


def test_perfect_and_inverted_ranking():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    labels = np.array([[1, 1], [1, 1], [0, 0], [0, 0]])
    np.testing.assert_allclose(average_precision(scores, labels), [1.0, 0.5 * 1 / 3 + 0.5 * 2 / 4])
    np.testing.assert_allclose(roc_auc(scores, labels), [1.0, 0.0])


def test_accuracy_by_hand():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    one_hot = np.eye(3)[[1, 0, 0, 2]]
    assert accuracy(scores, one_hot) == 0.5
    assert accuracy(scores, np.array([1, 0, 0, 2])) == 0.5
    soft = 0.8 * one_hot + 0.2 / 3  # label smoothing keeps the argmax
    assert accuracy(scores, soft) == 0.5


def test_d_prime_values():
    assert d_prime(0.5) == pytest.approx(0.0, abs=1e-12)
    # AUC = Φ(d'/√2): d' = √2 at AUC Φ(1).
    assert d_prime(NormalDist().cdf(1.0)) == pytest.approx(math.sqrt(2.0), rel=1e-9)
    assert d_prime(1.0) == math.inf and d_prime(0.0) == -math.inf
    assert math.isnan(d_prime(math.nan))
    values = d_prime(np.array([0.5, NormalDist().cdf(-0.5)]))
    np.testing.assert_allclose(values, [0.0, -0.5 * math.sqrt(2.0)], atol=1e-12)
    with pytest.raises(ValueError, match="Received: auc="):
        d_prime(1.5)


# --- against brute-force references on random data ------------------------------------------


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_reference(seed, tied):
    scores, labels = _random_case(seed, tied=tied)
    expected = np.array([_reference_ap(scores[:, c], labels[:, c]) for c in range(scores.shape[1])])
    got = average_precision(scores, labels)
    assert np.isnan(got[0]) and np.isnan(expected[0])
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
    # mAP: the mean over classes that have a positive (class 0 has none).
    assert mean_average_precision(scores, labels) == pytest.approx(np.mean(expected[1:]), rel=1e-12)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_reference(seed, tied):
    scores, labels = _random_case(seed, tied=tied)
    expected = np.array([_reference_auc(scores[:, c], labels[:, c]) for c in range(scores.shape[1])])
    got = roc_auc(scores, labels)
    assert np.isnan(got[0]) and np.isnan(got[1])  # no positives / no negatives
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)


def test_accuracy_matches_reference():
    rng = np.random.default_rng(3)
    scores = rng.random((50, 7))
    classes = rng.integers(0, 7, size=50)
    expected = np.mean([np.argmax(scores[i]) == classes[i] for i in range(50)])
    assert accuracy(scores, np.eye(7)[classes]) == pytest.approx(expected)


def test_compute_metrics():
    scores, labels = _random_case(4, tied=True)
    multi = compute_metrics(scores, labels, multilabel=True)
    assert set(multi) == {"mAP", "mAUC", "d_prime"}
    aucs = [_reference_auc(scores[:, c], labels[:, c]) for c in range(2, scores.shape[1])]
    assert multi["mAUC"] == pytest.approx(np.mean(aucs), rel=1e-12)
    assert multi["mAP"] == pytest.approx(mean_average_precision(scores, labels))
    assert multi["d_prime"] == pytest.approx(math.sqrt(2.0) * NormalDist().inv_cdf(multi["mAUC"]))
    assert all(isinstance(v, float) for v in multi.values())

    one_hot = np.eye(6)[np.argmax(scores + labels, axis=1)]
    single = compute_metrics(scores, one_hot, multilabel=False)
    assert single == {"accuracy": accuracy(scores, one_hot)}


def test_soft_labels_threshold_at_half():
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    hard = np.array([[1], [0], [1], [0]])
    soft = np.where(hard == 1, 0.7, 0.2)  # mixup-style soft targets
    np.testing.assert_allclose(average_precision(scores, soft), average_precision(scores, hard))
    np.testing.assert_allclose(roc_auc(scores, soft), roc_auc(scores, hard))


def test_no_positive_anywhere_gives_nan():
    scores = np.random.default_rng(0).random((5, 3))
    labels = np.zeros((5, 3))
    assert math.isnan(mean_average_precision(scores, labels))
    assert math.isnan(compute_metrics(scores, labels, multilabel=True)["mAUC"])


@pytest.mark.parametrize(
    "fn", [average_precision, roc_auc, mean_average_precision, accuracy, lambda s, y: compute_metrics(s, y, True)]
)
def test_shape_validation(fn):
    with pytest.raises(ValueError, match=r"Received: shape=\(4, 3\) and shape=\(4, 2\)"):
        fn(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"Received: shape=\(4,\)"):
        fn(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"Received: shape=\(0, 3\)"):
        fn(np.zeros((0, 3)), np.zeros((0, 3)))


def test_accuracy_rejects_bad_integer_labels():
    with pytest.raises(ValueError, match="Received: labels in"):
        accuracy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"Received: shape=\(3,\)"):
        accuracy(np.zeros((2, 3)), np.array([0, 1, 2]))


# --- against scikit-learn and SciPy on random multi-label cases with ties --------------------


def _sklearn_case(seed, examples=300, classes=16):
    """Scores with one decimal (so many ties) and labels of varied prevalence.

    Even seeds: probabilities in [0, 1]; odd seeds: logits, negative ones
    included. Column 0 has no positive, column 1 no negative, column 2 exactly
    one positive and column 3 a single score shared by every example.
    """
    rng = np.random.default_rng(seed)
    if seed % 2 == 0:
        scores = np.round(rng.random((examples, classes)), 1)
    else:
        scores = np.round(rng.normal(0.0, 1.0, size=(examples, classes)), 1)
    prevalence = rng.uniform(0.01, 0.6, size=classes)
    labels = (rng.random((examples, classes)) < prevalence).astype(np.float32)
    labels[:, 0] = 0.0
    labels[:, 1] = 1.0
    labels[:, 2] = 0.0
    labels[rng.integers(examples), 2] = 1.0
    labels[rng.integers(examples), 3] = 1.0
    scores[:, 3] = 0.5
    return scores, labels


SKLEARN_SEEDS = range(6)


@pytest.mark.parametrize("seed", SKLEARN_SEEDS)
def test_case_has_ties(seed):
    scores, _ = _sklearn_case(seed)
    for c in range(scores.shape[1]):
        assert np.unique(scores[:, c]).size < scores.shape[0] // 3


@pytest.mark.parametrize("seed", SKLEARN_SEEDS)
def test_average_precision_matches_sklearn(seed):
    scores, labels = _sklearn_case(seed)
    got = average_precision(scores, labels)
    expected = []
    for c in range(scores.shape[1]):
        if labels[:, c].sum() == 0:
            # kc2f: undefined, NaN (scikit-learn warns and returns 0 here).
            assert math.isnan(got[c])
            continue
        value = sklearn.metrics.average_precision_score(labels[:, c], scores[:, c])
        assert got[c] == pytest.approx(value, rel=1e-12, abs=1e-15), f"class {c}"
        expected.append(value)
    # mAP: the mean over the classes that have a positive.
    assert mean_average_precision(scores, labels) == pytest.approx(np.mean(expected), rel=1e-12)


@pytest.mark.parametrize("seed", SKLEARN_SEEDS)
def test_roc_auc_matches_sklearn(seed):
    scores, labels = _sklearn_case(seed)
    got = roc_auc(scores, labels)
    for c in range(scores.shape[1]):
        if labels[:, c].min() == labels[:, c].max():
            # One class only: undefined, NaN (scikit-learn warns, or raises in older releases).
            assert math.isnan(got[c])
            continue
        value = sklearn.metrics.roc_auc_score(labels[:, c], scores[:, c])
        assert got[c] == pytest.approx(value, rel=1e-12, abs=1e-15), f"class {c}"
    assert got[3] == 0.5  # every score tied


@pytest.mark.parametrize("seed", SKLEARN_SEEDS)
def test_d_prime_and_compute_metrics_match_sklearn_and_scipy(seed):
    scores, labels = _sklearn_case(seed)
    defined = [c for c in range(labels.shape[1]) if 0 < labels[:, c].sum() < labels.shape[0]]
    aucs = np.array([sklearn.metrics.roc_auc_score(labels[:, c], scores[:, c]) for c in defined])
    np.testing.assert_allclose(d_prime(aucs), math.sqrt(2.0) * norm.ppf(aucs), rtol=1e-9, atol=1e-12)

    metrics = compute_metrics(scores, labels, multilabel=True)
    aps = [
        sklearn.metrics.average_precision_score(labels[:, c], scores[:, c])
        for c in range(labels.shape[1])
        if labels[:, c].sum() > 0
    ]
    assert metrics["mAP"] == pytest.approx(np.mean(aps), rel=1e-12)
    assert metrics["mAUC"] == pytest.approx(np.mean(aucs), rel=1e-12)
    # AST's definition: d' of the mean AUC (not the mean of per-class d').
    assert metrics["d_prime"] == pytest.approx(
        math.sqrt(2.0) * norm.ppf(np.mean(aucs)), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize("seed", SKLEARN_SEEDS)
def test_soft_labels_match_sklearn_on_thresholded_labels(seed):
    # Mixup-style soft targets: a label counts as positive at >= 0.5.
    scores, labels = _sklearn_case(seed, examples=120, classes=6)
    rng = np.random.default_rng(100 + seed)
    soft = np.where(labels == 1, rng.uniform(0.5, 1.0, labels.shape), rng.uniform(0.0, 0.49, labels.shape))
    hard = soft >= 0.5
    for c in range(4, 6):
        assert average_precision(scores, soft)[c] == pytest.approx(
            sklearn.metrics.average_precision_score(hard[:, c], scores[:, c]), rel=1e-12
        )
        assert roc_auc(scores, soft)[c] == pytest.approx(
            sklearn.metrics.roc_auc_score(hard[:, c], scores[:, c]), rel=1e-12
        )


def test_accuracy_matches_sklearn():
    rng = np.random.default_rng(7)
    scores = np.round(rng.random((200, 9)), 2)
    classes = rng.integers(0, 9, size=200)
    expected = sklearn.metrics.accuracy_score(classes, np.argmax(scores, axis=1))
    assert accuracy(scores, np.eye(9)[classes]) == pytest.approx(expected)
    assert accuracy(scores, classes) == pytest.approx(expected)
