"""Scores of predicted class probabilities, shared by model selection, tuning and evaluation.

A model's output is a matrix of class probabilities, one column per class in the order of
:func:`deep_learning_workflow.columns.target_classes`. Binary scores are taken on the positive class's column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn import metrics as sk

MetricName = Literal["pr_auc", "roc_auc", "log_loss", "brier", "accuracy", "f1_macro"]

GREATER_IS_BETTER: dict[str, bool] = {
    "pr_auc": True,
    "roc_auc": True,
    "log_loss": False,
    "brier": False,
    "accuracy": True,
    "f1_macro": True,
}


def positive_index(classes: Sequence[str], positive_class: str | None) -> int:
    """Index of the positive class's probability column (the last class when none is named)."""
    if positive_class is None:
        return len(classes) - 1
    if positive_class not in classes:
        raise ValueError(
            f"params:columns.positive_class '{positive_class}' is not one of the target's classes {list(classes)}."
        )
    return list(classes).index(positive_class)


def score(
    name: str,
    labels: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
    positive_class: str | None,
) -> float:
    """One metric of class probabilities.

    Args:
        name: one of :data:`GREATER_IS_BETTER`'s keys.
        labels: true class of each row, as strings.
        probabilities: array of shape (rows, classes).
        classes: the class of each probability column.
        positive_class: for binary targets, the class PR-AUC, ROC-AUC and Brier are taken on.

    Returns:
        The score; for a multi-class target ROC-AUC is one-vs-rest macro, PR-AUC macro average precision.
    """
    if name not in GREATER_IS_BETTER:
        raise ValueError(f"Unknown metric '{name}'; choose one of {sorted(GREATER_IS_BETTER)}.")
    labels = np.asarray(labels).astype(str)
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.ndim != 2 or probabilities.shape != (len(labels), len(classes)):
        raise ValueError(
            f"Expected probabilities of shape ({len(labels)}, {len(classes)}), got {probabilities.shape}."
        )
    classes = list(classes)
    onehot = (labels[:, None] == np.asarray(classes)[None, :]).astype(int)
    binary = len(classes) == 2
    if name == "accuracy":
        return float(sk.accuracy_score(labels, np.asarray(classes)[probabilities.argmax(axis=1)]))
    if name == "f1_macro":
        return float(
            sk.f1_score(
                labels,
                np.asarray(classes)[probabilities.argmax(axis=1)],
                average="macro",
                labels=classes,
            )
        )
    if name == "log_loss":
        return float(sk.log_loss(labels, np.clip(probabilities, 1e-15, 1.0), labels=classes))
    if binary:
        column = positive_index(classes, positive_class)
        truth, proba = onehot[:, column], probabilities[:, column]
        if name == "brier":
            return float(sk.brier_score_loss(truth, proba))
        if name == "roc_auc":
            return float(sk.roc_auc_score(truth, proba))
        return float(sk.average_precision_score(truth, proba))
    if name == "brier":
        return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))
    if name == "roc_auc":
        return float(sk.roc_auc_score(onehot, probabilities, average="macro", multi_class="ovr"))
    return float(sk.average_precision_score(onehot, probabilities, average="macro"))


# Scores of the decisions taken from the probabilities: for a binary target, of the positive class at a decision
# threshold; for a multi-class target, macro averages over the classes of the most probable class.
DECISION_METRICS: tuple[str, ...] = ("precision", "recall", "f1")


def predict_labels(
    probabilities: np.ndarray,
    classes: Sequence[str],
    positive_class: str | None,
    threshold: float | None = None,
) -> np.ndarray:
    """The decided class of each row.

    Args:
        probabilities: array of shape (rows, classes).
        classes: the class of each probability column.
        positive_class: for binary targets, the class the threshold applies to.
        threshold: binary targets: the positive class is decided when its probability is at least this; None or a
            multi-class target: the most probable class.

    Returns:
        Array of class labels (strings).
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    classes_array = np.asarray(list(classes), dtype=object)
    if threshold is None or len(classes) != 2:
        return classes_array[probabilities.argmax(axis=1)].astype(str)
    column = positive_index(classes, positive_class)
    positive = probabilities[:, column] >= threshold
    return np.where(positive, classes_array[column], classes_array[1 - column]).astype(str)


def classification_summary(
    labels: Sequence[str], predicted: Sequence[str], classes: Sequence[str]
) -> dict:
    """Accuracy, precision, recall and F1 per class and macro-averaged, support and confusion matrix.

    Args:
        labels: true class of each row.
        predicted: decided class of each row (see :func:`predict_labels`).
        classes: all classes, in the order of the report (a class without rows scores 0).

    Returns:
        A JSON-ready dictionary; ``confusion_matrix.counts[i][j]`` counts rows of class ``i`` decided as ``j``.
    """
    labels = np.asarray(labels).astype(str)
    predicted = np.asarray(predicted).astype(str)
    classes = [str(c) for c in classes]
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    matrix = sk.confusion_matrix(labels, predicted, labels=classes)

    def per_class(values: np.ndarray) -> dict[str, float]:
        return {
            **{c: float(v) for c, v in zip(classes, values, strict=True)},
            "macro": float(np.mean(values)),
        }

    return {
        "accuracy": float(sk.accuracy_score(labels, predicted)),
        "precision": per_class(precision),
        "recall": per_class(recall),
        "f1": per_class(f1),
        "support": {c: int(s) for c, s in zip(classes, support, strict=True)},
        "confusion_matrix": {"classes": classes, "counts": matrix.astype(int).tolist()},
    }
