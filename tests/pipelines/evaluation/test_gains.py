"""Cumulative gains: the share of positives reached by taking the highest scores first."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.pipelines.evaluation.gains import (
    cumulative_gains,
    gains_at,
    plot_cumulative_gains,
)


def test_gains_take_the_highest_scores_first_and_ties_together():
    truth = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.7, 0.1, 0.6, 0.2, 0.3, 0.1, 0.0])
    taken, found = cumulative_gains(truth, scores)
    # 0.9 (+), 0.8 (-), the tie 0.7 (+ and -) together, 0.6 (+): all three positives within the top 50%.
    assert taken[:5].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.5])
    assert found[:5].tolist() == pytest.approx([0.0, 1 / 3, 1 / 3, 2 / 3, 1.0])
    assert (taken[-1], found[-1]) == (1.0, 1.0)
    assert gains_at(taken, found, 0.1) == pytest.approx(1 / 3)


def test_gains_refuse_a_split_without_positives():
    with pytest.raises(ValueError, match="no record of the positive class"):
        cumulative_gains(np.zeros(4, dtype=bool), np.arange(4.0))


def test_gains_plot_names_each_candidate_with_its_top_decile_lift():
    rng = np.random.default_rng(0)
    labels = np.where(rng.random(400) < 0.25, "Yes", "No")
    informative = np.where(labels == "Yes", 0.7, 0.3) + rng.normal(0, 0.1, 400)
    predictions = {
        "classes": ["No", "Yes"],
        "positive_class": "Yes",
        "labels": labels,
        "probabilities": {
            "model": np.c_[1 - informative, informative],
            "majority_class": np.c_[np.full(400, 0.75), np.full(400, 0.25)],
        },
    }
    figure = plot_cumulative_gains(predictions)
    names = [trace.name for trace in figure.data]
    model = next(name for name in names if name.startswith("model (top 10%"))
    lift = float(model.rsplit("lift ", 1)[1].rstrip(")"))
    assert (
        lift > 2.5
    )  # an informative score finds far more than 10% of the positives in the top 10%
    constant = next(name for name in names if name.startswith("majority_class"))
    assert "lift 1.0" in constant
