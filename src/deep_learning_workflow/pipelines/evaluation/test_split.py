"""Scores on the test split with paired bootstrap intervals, at the decisions fixed on validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deep_learning_workflow.bootstrap import bootstrap_scores, percentile_interval, weighted_scores
from deep_learning_workflow.metrics import (
    DECISION_METRICS,
    GREATER_IS_BETTER,
    positive_index,
    predict_labels,
)
from deep_learning_workflow.pipelines.evaluation.predictions import CANDIDATE
from deep_learning_workflow.pipelines.evaluation.schema import BootstrapParameters
from deep_learning_workflow.pipelines.evaluation.threshold import row_costs
from deep_learning_workflow.problem import Costs

SCORED = (*GREATER_IS_BETTER, *DECISION_METRICS)


def candidate_thresholds(
    decision_threshold: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    candidates: list[str],
) -> dict[str, float | None]:
    """Each candidate's decision threshold, as chosen on validation."""
    thresholds = {CANDIDATE: decision_threshold.get("threshold")}
    thresholds |= {
        name: metrics["at_threshold"]["threshold"] for name, metrics in baseline_metrics.items()
    }
    missing = sorted(set(candidates) - set(thresholds))
    if missing:
        raise ValueError(f"baseline_metrics has no validation metrics for the baselines {missing}.")
    return thresholds


def decision_costs(
    labels: np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    thresholds: Mapping[str, float | None],
    classes: list[str],
    positive_class: str | None,
    costs: Costs | None,
) -> dict[str, dict[str, np.ndarray]]:
    """Each candidate's cost per record at its threshold (none without costs or for a multi-class target)."""
    if costs is None or len(classes) != 2:
        return {}
    positive = classes[positive_index(classes, positive_class)]
    result = {}
    for name, candidate_probabilities in probabilities.items():
        decided = predict_labels(candidate_probabilities, classes, positive_class, thresholds[name])
        result[name] = {"expected_cost": row_costs(labels == positive, decided == positive, costs)}
    return result


def score_with_intervals(
    labels: np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    thresholds: Mapping[str, float | None],
    classes: list[str],
    positive_class: str | None,
    costs: Mapping[str, Mapping[str, np.ndarray]],
    bootstrap: BootstrapParameters,
    seed: int,
) -> tuple[dict[str, dict], dict[str, dict[str, np.ndarray]]]:
    """Every candidate's scores (value, low, high) and their resamples, all on the same resamples.

    The value is the score on every row; the interval the percentile bootstrap's.
    """
    candidates = {name: (probabilities[name], thresholds[name]) for name in probabilities}
    resampled = bootstrap_scores(
        SCORED,
        labels,
        candidates,
        classes,
        positive_class,
        bootstrap.resamples,
        seed,
        costs,
        max_rows=bootstrap.max_rows,
    )
    every_row = np.ones((1, len(labels)))
    results = {}
    for name, (candidate_probabilities, threshold) in candidates.items():
        values = weighted_scores(
            SCORED, labels, candidate_probabilities, classes, positive_class, every_row, threshold
        )
        values |= {key: np.mean(rows, keepdims=True) for key, rows in costs.get(name, {}).items()}
        results[name] = {}
        for key, samples in resampled[name].items():
            low, high = percentile_interval(samples, bootstrap.confidence)
            results[name][key] = {"value": float(values[key][0]), "low": low, "high": high}
    return results, resampled


def differences(
    results: Mapping[str, dict],
    resampled: Mapping[str, dict[str, np.ndarray]],
    metric: str,
    confidence: float,
) -> dict[str, dict]:
    """The model minus each baseline on ``metric``, with the interval of the paired resamples."""
    result = {}
    for name in sorted(set(results) - {CANDIDATE}):
        low, high = percentile_interval(
            resampled[CANDIDATE][metric] - resampled[name][metric], confidence
        )
        value = results[CANDIDATE][metric]["value"] - results[name][metric]["value"]
        result[name] = {"metric": metric, "value": value, "low": low, "high": high}
    return result
