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


def stratified_bootstrap_weights(labels: Sequence[str], resamples: int, seed: int) -> np.ndarray:
    """How often each row is drawn in each bootstrap resample, drawing with replacement within each class.

    Keeping each class's count fixed keeps every resample scorable (ROC-AUC needs both classes) at the data's
    class ratio.

    Returns:
        Integer array of shape (resamples, rows); each row sums to the number of rows.
    """
    labels = np.asarray(labels).astype(str)
    rng = np.random.default_rng(seed)
    weights = np.zeros((resamples, len(labels)), dtype="int64")
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        draws = rng.integers(0, len(members), size=(resamples, len(members)))
        counts = np.zeros((resamples, len(members)), dtype="int64")
        np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
        weights[:, members] = counts
    return weights


def _weighted_curve(
    truth: np.ndarray, scores: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted true and false positives at each distinct score, highest first (as scikit-learn's curves)."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    ordered = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    positive = truth[order].astype("float64")
    true_positives = np.cumsum(weights[:, order] * positive, axis=1)[:, ends]
    false_positives = np.cumsum(weights[:, order] * (1.0 - positive), axis=1)[:, ends]
    return true_positives, false_positives


def _weighted_roc_auc(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    tps, fps = _weighted_curve(truth, scores, weights)
    zeros = np.zeros((len(weights), 1))
    tpr = np.hstack([zeros, tps / tps[:, -1:]])
    fpr = np.hstack([zeros, fps / fps[:, -1:]])
    return np.trapezoid(tpr, fpr, axis=1)


def _weighted_average_precision(
    truth: np.ndarray, scores: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    tps, fps = _weighted_curve(truth, scores, weights)
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted > 0)
    recall = tps / tps[:, -1:]
    gained = np.diff(np.hstack([np.zeros((len(weights), 1)), recall]), axis=1)
    return np.sum(gained * precision, axis=1)


def _weighted_f1(
    truth: np.ndarray, decided: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, ...]:
    true_positive = weights @ (truth & decided).astype("float64")
    false_positive = weights @ (~truth & decided).astype("float64")
    false_negative = weights @ (truth & ~decided).astype("float64")
    precision = np.divide(
        true_positive,
        true_positive + false_positive,
        out=np.zeros_like(true_positive),
        where=(true_positive + false_positive) > 0,
    )
    recall = np.divide(
        true_positive,
        true_positive + false_negative,
        out=np.zeros_like(true_positive),
        where=(true_positive + false_negative) > 0,
    )
    denominator = 2 * true_positive + false_positive + false_negative
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )
    return precision, recall, f1


def weighted_scores(
    names: Sequence[str],
    labels: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
    positive_class: str | None,
    weights: np.ndarray,
    threshold: float | None = None,
) -> dict[str, np.ndarray]:
    """Scores of many weighted copies of the same rows at once, e.g. every bootstrap resample.

    With one row of weights equal to the times each row is drawn, each score equals :func:`score` (and, for
    :data:`DECISION_METRICS`, scikit-learn's precision, recall and F1 of :func:`predict_labels`) on the resampled
    rows; the test suite checks this. Vectorised, so a thousand resamples take milliseconds, not seconds.

    Args:
        names: keys of :data:`GREATER_IS_BETTER` and :data:`DECISION_METRICS`.
        labels: true class of each row.
        probabilities: array of shape (rows, classes).
        classes: the class of each probability column.
        positive_class: for binary targets, the class scores are taken on.
        weights: array of shape (copies, rows) of non-negative weights; every class needs weight in every copy.
        threshold: decision threshold of :data:`DECISION_METRICS` for a binary target.

    Returns:
        Metric name to an array of shape (copies,).
    """
    unknown = [
        name for name in names if name not in GREATER_IS_BETTER and name not in DECISION_METRICS
    ]
    if unknown:
        raise ValueError(
            f"Unknown metrics {unknown}; choose from {sorted([*GREATER_IS_BETTER, *DECISION_METRICS])}."
        )
    labels = np.asarray(labels).astype(str)
    probabilities = np.asarray(probabilities, dtype="float64")
    weights = np.atleast_2d(np.asarray(weights, dtype="float64"))
    classes = [str(c) for c in classes]
    if probabilities.shape != (len(labels), len(classes)) or weights.shape[1] != len(labels):
        raise ValueError(
            f"Expected probabilities of shape ({len(labels)}, {len(classes)}) and weights with {len(labels)} columns, "
            f"got {probabilities.shape} and {weights.shape}."
        )
    onehot = labels[:, None] == np.asarray(classes)[None, :]
    total = weights.sum(axis=1)
    binary = len(classes) == 2
    column = positive_index(classes, positive_class) if binary else None
    argmax = probabilities.argmax(axis=1)
    truth = onehot.argmax(axis=1)
    results: dict[str, np.ndarray] = {}
    for name in names:
        if name == "accuracy":
            results[name] = weights @ (argmax == truth).astype("float64") / total
        elif name == "f1_macro":
            per_class = [
                _weighted_f1(truth == c, argmax == c, weights)[2] for c in range(len(classes))
            ]
            results[name] = np.mean(per_class, axis=0)
        elif name == "log_loss":
            eps = np.finfo("float64").eps
            clipped = np.clip(np.clip(probabilities, 1e-15, 1.0), eps, 1 - eps)
            results[name] = weights @ -np.log(clipped[np.arange(len(labels)), truth]) / total
        elif name == "brier":
            if binary:
                row_loss = (probabilities[:, column] - onehot[:, column]) ** 2
            else:
                row_loss = np.sum((probabilities - onehot) ** 2, axis=1)
            results[name] = weights @ row_loss / total
        elif name in ("roc_auc", "pr_auc"):
            curve = _weighted_roc_auc if name == "roc_auc" else _weighted_average_precision
            columns = [column] if binary else range(len(classes))
            results[name] = np.mean(
                [curve(onehot[:, c], probabilities[:, c], weights) for c in columns], axis=0
            )
        else:
            decided = predict_labels(
                probabilities, classes, positive_class, threshold if binary else None
            )
            decided_index = np.asarray([classes.index(label) for label in decided])
            columns = [column] if binary else range(len(classes))
            parts = [_weighted_f1(truth == c, decided_index == c, weights) for c in columns]
            position = DECISION_METRICS.index(name)
            results[name] = np.mean([part[position] for part in parts], axis=0)
    return results
