"""Permutation feature importance on the validation split, with its spread over repeated shuffles.

A feature's importance is how much the primary metric worsens when that one column is shuffled (its link to the
target broken, its distribution kept). The model is the trained model taking raw records, so a column means the
raw column, whatever preprocessing the model does inside. The shuffled copies are scored one at a time (memory
holds one copy, sharing the unshuffled columns), on at most ``MAX_ROWS`` validation rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from deep_learning_workflow.metrics import GREATER_IS_BETTER, score
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.pipelines.evaluation.plots import LAYOUT
from deep_learning_workflow.pipelines.evaluation.predictions import setup_of, split_labels
from deep_learning_workflow.pipelines.evaluation.wording import METRIC_NAMES

REPEATS = 5
# Validation rows shuffled and scored (a seeded uniform sample beyond): the node's cost stays that of
# features x REPEATS scorings of 50,000 rows whatever the table's size; "rows" in the result says how many were used.
MAX_ROWS = 50_000


def compute_permutation_importance(
    model: Any,
    val: pd.DataFrame,
    evaluation_setup: Mapping[str, Any],
    problem: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Permutation importance of every feature on validation, ``REPEATS`` shuffles each.

    Args:
        model: the trained Keras model (raw records in).
        val: the validation split.
        evaluation_setup: the evaluation's resolved roles and classes.
        problem: ``params:problem`` (its ``primary_metric`` is the score).
        seed: ``params:seed``; the shuffles are reproducible.

    Returns:
        ``metric``, ``score`` (unshuffled), ``repeats`` and ``features``: one ``{"feature", "mean", "std",
        "drops"}`` per feature, most important first; a drop is how much worse the metric got (positive: the
        feature helps).
    """
    roles, classes, positive_class = setup_of(evaluation_setup)
    val = _bounded_sample(val, seed)
    labels = split_labels(val, roles, classes, "val")
    metric = problem["primary_metric"]
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    features = list(roles.features)
    # Copy-on-write: each shuffled frame shares every column but the shuffled one with ``records``.
    records = val[features]
    reference = score(
        metric, labels, predict_probabilities(model, records, roles), classes, positive_class
    )
    rng = np.random.default_rng(seed)
    results = []
    for feature in features:
        drops = []
        for _ in range(REPEATS):
            shuffled = records.assign(
                **{feature: records[feature].to_numpy()[rng.permutation(len(records))]}
            )
            probabilities = predict_probabilities(model, shuffled, roles)
            drops.append(
                sign * (reference - score(metric, labels, probabilities, classes, positive_class))
            )
        results.append(
            {
                "feature": feature,
                "mean": float(np.mean(drops)),
                "std": float(np.std(drops, ddof=1)),
                "drops": drops,
            }
        )
    results.sort(key=lambda item: item["mean"], reverse=True)
    return {
        "metric": metric,
        "score": float(reference),
        "repeats": REPEATS,
        "rows": len(records),
        "features": results,
    }


def _bounded_sample(val: pd.DataFrame, seed: int) -> pd.DataFrame:
    """At most :data:`MAX_ROWS` validation rows, a seeded uniform sample in the split's order: the cost of
    ``features x REPEATS`` scorings stays bounded whatever the table's size."""
    if len(val) <= MAX_ROWS:
        return val
    chosen = np.random.default_rng([seed, MAX_ROWS]).choice(len(val), MAX_ROWS, replace=False)
    return val.iloc[np.sort(chosen)]


def plot_permutation_importance(permutation_importance: Mapping[str, Any]) -> go.Figure:
    """Horizontal bars of each feature's mean drop, with one standard deviation over the shuffles."""
    features = list(reversed(permutation_importance["features"]))  # most important at the top
    metric = METRIC_NAMES.get(permutation_importance["metric"], permutation_importance["metric"])
    figure = go.Figure(
        go.Bar(
            x=[item["mean"] for item in features],
            y=[item["feature"] for item in features],
            orientation="h",
            error_x={"type": "data", "array": [item["std"] for item in features]},
            name="mean drop ± 1 sd",
            showlegend=False,
        )
    )
    figure.update_layout(
        **{**LAYOUT, "height": max(360, 26 * len(features) + 140)},
        title=f"Permutation importance on validation: drop in {metric} when a column is shuffled "
        f"({permutation_importance['repeats']} shuffles)",
        xaxis_title=f"Drop in {metric} (higher: the model relies on the column more)",
    )
    return figure
