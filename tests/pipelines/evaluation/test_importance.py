"""Permutation importance: shuffling a column the model uses hurts the score, shuffling one it ignores does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.pipelines.evaluation.importance import (
    REPEATS,
    compute_permutation_importance,
    plot_permutation_importance,
)


class TenureOnlyModel:
    """Scores from ``tenure`` alone, as a Keras model would be called."""

    def __call__(self, inputs, training=False):
        churn = 1.0 / (1.0 + np.exp(np.asarray(inputs["tenure"], dtype="float64") / 10 - 2))
        return np.c_[1 - churn, churn]


@pytest.fixture
def validation():
    rng = np.random.default_rng(3)
    tenure = rng.integers(0, 72, 300).astype("float64")
    churn = np.where(rng.random(300) < 1 / (1 + np.exp(tenure / 10 - 2)), "Yes", "No")
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(300)],
            "tenure": tenure,
            "contract": rng.choice(["Month-to-month", "One year"], 300),
            "churn": churn,
        }
    )


SETUP = {
    "roles": {
        "key": "customer_id",
        "target": "churn",
        "positive_class": "Yes",
        "numeric": ["tenure"],
        "categorical": ["contract"],
        "text": [],
    },
    "classes": ["No", "Yes"],
    "positive_class": "Yes",
}


def test_importance_finds_the_column_the_model_uses(validation):
    result = compute_permutation_importance(
        TenureOnlyModel(), validation, SETUP, {"primary_metric": "pr_auc"}, seed=0
    )
    ranked = {item["feature"]: item for item in result["features"]}
    assert [item["feature"] for item in result["features"]] == ["tenure", "contract"]
    assert ranked["tenure"]["mean"] > 0.1 and ranked["tenure"]["std"] > 0
    assert ranked["contract"]["drops"] == [0.0] * REPEATS
    assert ranked["tenure"]["mean"] == pytest.approx(np.mean(ranked["tenure"]["drops"]))
    again = compute_permutation_importance(
        TenureOnlyModel(), validation, SETUP, {"primary_metric": "pr_auc"}, seed=0
    )
    assert again == result  # seeded shuffles

    figure = plot_permutation_importance(result)
    assert list(figure.data[0].y) == ["contract", "tenure"]  # most important drawn on top
    assert list(figure.data[0].error_x.array) == [0.0, ranked["tenure"]["std"]]


def test_a_large_validation_split_is_sampled_to_a_bounded_seeded_size(validation, monkeypatch):
    from deep_learning_workflow.pipelines.evaluation import importance

    whole = compute_permutation_importance(
        TenureOnlyModel(), validation, SETUP, {"primary_metric": "pr_auc"}, seed=0
    )
    assert whole["rows"] == len(validation)
    monkeypatch.setattr(importance, "MAX_ROWS", 120)
    sampled = compute_permutation_importance(
        TenureOnlyModel(), validation, SETUP, {"primary_metric": "pr_auc"}, seed=0
    )
    again = compute_permutation_importance(
        TenureOnlyModel(), validation, SETUP, {"primary_metric": "pr_auc"}, seed=0
    )
    assert sampled["rows"] == 120
    assert sampled == again
    assert sampled["score"] != whole["score"]
    assert sampled["features"][0]["feature"] == "tenure"
