"""The bagged decision threshold, on real validation probabilities (a small model and baselines on Telco)."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.bootstrap import bootstrap_weight_chunks
from deep_learning_workflow.pipelines.evaluation import threshold_bootstrap
from deep_learning_workflow.pipelines.evaluation.nodes import (
    choose_decision_threshold,
    predict_validation,
    resolve_evaluation_setup,
)
from deep_learning_workflow.pipelines.evaluation.schema import ThresholdParameters
from deep_learning_workflow.pipelines.evaluation.threshold import choose_threshold
from deep_learning_workflow.pipelines.evaluation.threshold_bootstrap import bootstrap_picks
from deep_learning_workflow.problem import Costs

CLASSES = ["No", "Yes"]
COSTS = Costs(false_positive=100, false_negative=500)
RULES = {
    "max_f1": ThresholdParameters(rule="max_f1"),
    "target_recall": ThresholdParameters(rule="target_recall", target=0.8),
    "target_precision": ThresholdParameters(rule="target_precision", target=0.6),
    "min_expected_cost": ThresholdParameters(rule="min_expected_cost"),
}


@pytest.fixture(scope="module")
def predictions(keras_model, baseline_models, splits, model_metadata, columns):
    setup = resolve_evaluation_setup(splits["val"], model_metadata, columns)
    return predict_validation(keras_model, baseline_models, splits["val"], setup)


def _costs(rule: ThresholdParameters) -> Costs | None:
    return COSTS if rule.rule == "min_expected_cost" else None


def _pick(labels, probabilities, rule: ThresholdParameters, resamples: int, seed: int = 0):
    params = rule.model_copy(update={"bootstrap": resamples})
    return choose_threshold(labels, probabilities, CLASSES, "Yes", params, _costs(rule), seed)


@pytest.mark.parametrize("name", list(RULES))
def test_each_resample_picks_what_the_single_rule_picks_on_the_drawn_rows(
    predictions, name, monkeypatch
):
    """The vectorised picks are the rule's own pick on each resample's rows, drawn out explicitly."""
    # Small chunks: the 30 resamples come in five chunks.
    monkeypatch.setattr(threshold_bootstrap, "MAX_CELLS", 6 * len(predictions["labels"]))
    rule = RULES[name].model_copy(update={"bootstrap": 30})
    labels = predictions["labels"]
    probabilities = predictions["probabilities"]["model"]
    truth = labels == "Yes"
    picks = bootstrap_picks(truth, probabilities[:, 1], rule, _costs(rule), seed=3)
    chunks = bootstrap_weight_chunks(truth, 30, 3, threshold_bootstrap.MAX_CELLS)
    weights = np.concatenate(list(chunks))
    for resample, pick in zip(weights.astype(int), picks, strict=True):
        rows = np.repeat(np.arange(len(labels)), resample)
        single = _pick(labels[rows], probabilities[rows], rule, resamples=0)
        assert pick == pytest.approx(single["threshold"], abs=1e-12)


@pytest.mark.parametrize("candidate", ["model", "logistic_regression"])
def test_the_bagged_max_f1_threshold_varies_less_across_resampled_validation_sets(
    predictions, candidate
):
    labels = predictions["labels"]
    probabilities = predictions["probabilities"][candidate]
    rng = np.random.default_rng(11)
    single, bagged = [], []
    for _ in range(30):
        rows = rng.integers(0, len(labels), len(labels))
        single.append(_pick(labels[rows], probabilities[rows], RULES["max_f1"], 0)["threshold"])
        bagged.append(_pick(labels[rows], probabilities[rows], RULES["max_f1"], 100)["threshold"])
    spread = {
        name: np.subtract(*np.quantile(values, [0.9, 0.1]))
        for name, values in (("single", single), ("bagged", bagged))
    }
    assert np.std(bagged) < np.std(single), spread
    assert spread["bagged"] < spread["single"], spread


def test_decision_threshold_records_the_spread_of_the_picks(predictions, evaluation, problem):
    params = {**evaluation, "threshold": {"rule": "max_f1", "target": None, "bootstrap": 200}}
    decision = choose_decision_threshold(predictions, params, problem, seed=5)
    spread = decision["threshold_spread"]
    assert spread["resamples"] == 200
    assert spread["low"] <= decision["threshold"] <= spread["high"]
    assert spread["low"] < spread["high"]
    single = choose_decision_threshold(
        predictions, {**params, "threshold": {**params["threshold"], "bootstrap": 0}}, problem
    )
    assert spread["single_pick"] == single["threshold"]
    assert "threshold_spread" not in single
    truth = predictions["labels"] == "Yes"
    flagged = predictions["probabilities"]["model"][:, 1] >= decision["threshold"]
    assert decision["recall"] == pytest.approx(flagged[truth].mean())
    assert decision["precision"] == pytest.approx(truth[flagged].mean())
    again = choose_decision_threshold(predictions, params, problem, seed=5)
    assert again["threshold"] == decision["threshold"]


def test_beyond_the_row_cap_the_picks_come_from_a_sample(predictions, monkeypatch):
    labels = predictions["labels"]
    probabilities = predictions["probabilities"]["model"]
    full = _pick(labels, probabilities, RULES["max_f1"], 200)
    monkeypatch.setattr(threshold_bootstrap, "MAX_ROWS", 200)
    capped = _pick(labels, probabilities, RULES["max_f1"], 200)
    assert capped["threshold"] != full["threshold"]
    assert capped["threshold"] == pytest.approx(full["threshold"], abs=0.1)
    assert capped["threshold_spread"]["high"] - capped["threshold_spread"]["low"] > 0
