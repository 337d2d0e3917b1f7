"""Scores of class probabilities agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from deep_learning_workflow.metrics import score

LABELS = np.array(["No", "Yes", "Yes", "No", "Yes", "No"])
POSITIVE = np.array([0.1, 0.8, 0.4, 0.3, 0.9, 0.6])
PROBABILITIES = np.column_stack([1 - POSITIVE, POSITIVE])


def test_binary_scores_match_sklearn():
    truth = (LABELS == "Yes").astype(int)
    assert score("pr_auc", LABELS, PROBABILITIES, ["No", "Yes"], "Yes") == pytest.approx(
        average_precision_score(truth, POSITIVE)
    )
    assert score("roc_auc", LABELS, PROBABILITIES, ["No", "Yes"], "Yes") == pytest.approx(
        roc_auc_score(truth, POSITIVE)
    )
    assert score("log_loss", LABELS, PROBABILITIES, ["No", "Yes"], "Yes") == pytest.approx(
        log_loss(truth, POSITIVE)
    )
    assert score("accuracy", LABELS, PROBABILITIES, ["No", "Yes"], "Yes") == pytest.approx(4 / 6)


def test_positive_class_chooses_the_column():
    flipped = score("roc_auc", LABELS, PROBABILITIES, ["No", "Yes"], "No")
    assert flipped == pytest.approx(roc_auc_score((LABELS == "No").astype(int), 1 - POSITIVE))


def test_multiclass_scores():
    labels = np.array(["a", "b", "c", "a"])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    assert score("accuracy", labels, probabilities, ["a", "b", "c"], None) == 1.0
    assert score("roc_auc", labels, probabilities, ["a", "b", "c"], None) == pytest.approx(1.0)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="Unknown metric 'auc'"):
        score("auc", LABELS, PROBABILITIES, ["No", "Yes"], "Yes")
    with pytest.raises(ValueError, match="shape"):
        score("pr_auc", LABELS, POSITIVE[:, None], ["No", "Yes"], "Yes")
    with pytest.raises(ValueError, match="positive_class 'Maybe'"):
        score("pr_auc", LABELS, PROBABILITIES, ["No", "Yes"], "Maybe")
