"""Metrics on hand-made cases, and AUC against a brute-force pair count."""

import numpy as np
import pytest

from archspec.errors import DataError, UsageError
from archspec.metrics import compute_metrics, roc_auc

ALL = ["accuracy", "precision", "recall", "f1"]

# argmax predictions [0, 1, 2, 2, 0, 1] against labels [0, 1, 1, 2, 2, 1]
MULTICLASS_PROBABILITIES = np.array(
    [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.4, 0.3, 0.3], [0.3, 0.4, 0.3]]
)
MULTICLASS_LABELS = np.array([0, 1, 1, 2, 2, 1])


def pair_count_auc(scores, positive):
    """P(score of a positive > score of a negative) + 1/2 P(equal), over all pairs."""
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def test_multiclass_macro_metrics_by_hand():
    # per class (precision, recall, f1): 0: (1/2, 1, 2/3); 1: (1, 2/3, 4/5); 2: (1/2, 1/2, 1/2)
    values = compute_metrics(ALL, MULTICLASS_PROBABILITIES, MULTICLASS_LABELS, "multiclass")
    assert values == pytest.approx({"accuracy": 4 / 6, "precision": 2 / 3, "recall": 13 / 18, "f1": 59 / 90}, rel=1e-15)
    onehot = compute_metrics(ALL, MULTICLASS_PROBABILITIES, np.eye(3)[MULTICLASS_LABELS], "multiclass")
    assert onehot == values


def test_a_class_absent_from_predictions_and_labels_counts_zero():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    labels = np.array([0, 1, 1])
    values = compute_metrics(ALL, probabilities, labels, "multiclass")
    # class 0: P 1/2, R 1, F1 2/3; class 1: P 1, R 1/2, F1 2/3; class 2: all 0
    assert values == pytest.approx({"accuracy": 2 / 3, "precision": 1.5 / 3, "recall": 1.5 / 3, "f1": 4 / 9}, rel=1e-15)


def test_binary_metrics_by_hand():
    probabilities = np.array([[0.9], [0.6], [0.5], [0.4], [0.2], [0.7]])  # 0.5 counts as negative
    targets = np.array([1, 0, 1, 0, 0, 1])
    values = compute_metrics(ALL + ["auc"], probabilities, targets, "binary")
    assert values == pytest.approx(
        {"accuracy": 4 / 6, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "auc": 8 / 9}, rel=1e-15
    )
    no_positive_prediction = compute_metrics(["precision", "f1"], np.full(3, 0.1), np.array([1, 0, 1]), "binary")
    assert no_positive_prediction == {"precision": 0.0, "f1": 0.0}


def test_auc_ties_count_one_half():
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([1, 0, 1, 0])) == 0.5
    assert roc_auc(np.array([0.3, 0.3, 0.8]), np.array([0, 1, 1])) == 0.75
    assert np.isnan(roc_auc(np.array([0.3, 0.8]), np.array([1, 1])))


def test_auc_equals_pair_count_on_random_scores_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, size=500) / 20  # many ties
    positive = rng.uniform(size=500) < scores
    assert roc_auc(scores, positive) == pytest.approx(pair_count_auc(scores, positive), rel=1e-13)


def test_multiclass_auc_is_macro_one_vs_rest_over_present_classes():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300, 4))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 3, size=300)  # class 3 never occurs: left out of the mean
    expected = np.mean([pair_count_auc(probabilities[:, c], labels == c) for c in range(3)])
    value = compute_metrics(["auc"], probabilities, labels, "multiclass")["auc"]
    assert value == pytest.approx(expected, rel=1e-13)


def test_regression_metrics():
    predictions = np.array([[1.0], [2.0], [4.0]])
    values = compute_metrics(["mse", "mae"], predictions, np.array([1.0, 0.0, 5.0]), "regression")
    assert values == pytest.approx({"mse": 5 / 3, "mae": 1.0}, rel=1e-15)


def test_bad_calls_are_refused():
    with pytest.raises(UsageError, match="for a regression task, expected metrics among \\['mse', 'mae'\\]"):
        compute_metrics(["accuracy"], np.zeros(3), np.zeros(3), "regression")
    with pytest.raises(UsageError, match="for a binary task"):
        compute_metrics(["mse"], np.zeros(3), np.zeros(3), "binary")
    with pytest.raises(UsageError, match="expected a task among"):
        compute_metrics(["accuracy"], np.zeros(3), np.zeros(3), "ranking")
    with pytest.raises(DataError, match="targets in \\{0, 1\\}"):
        compute_metrics(["accuracy"], np.zeros(3), np.array([0, 1, 2]), "binary")
    with pytest.raises(DataError, match="expected labels in \\[0, 3\\)"):
        compute_metrics(["accuracy"], MULTICLASS_PROBABILITIES, MULTICLASS_LABELS + 1, "multiclass")
    with pytest.raises(DataError, match="integer labels \\(6,\\) or one-hot \\(6, 3\\)"):
        compute_metrics(["accuracy"], MULTICLASS_PROBABILITIES, np.zeros((6, 2)), "multiclass")
