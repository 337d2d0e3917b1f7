"""The release gate: paired bootstrap comparisons with the baselines on real Telco rows and on a generated
separable table, and the checks beside them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.evaluation.gate import lead_passes
from deep_learning_workflow.pipelines.evaluation.nodes import (
    choose_decision_threshold,
    evaluate_validation,
    predict_validation,
    resolve_evaluation_setup,
)
from deep_learning_workflow.pipelines.evaluation.release import (
    compare_with_baselines,
    evaluate_release_gate,
    record_release,
)
from deep_learning_workflow.pipelines.evaluation.schema import EvaluationParameters

PASSED_SCENARIO = [{"name": "s", "passed": True, "detail": "ok"}]


def _with_gate(evaluation: dict, **values) -> dict:
    return {**evaluation, "release_gate": {**evaluation["release_gate"], **values}}


def _judge(
    model, baseline_models, splits, model_metadata, columns, evaluation, problem, seed_report=None
):
    """The validation part of the pipeline, node by node, up to the gate's record."""
    setup = resolve_evaluation_setup(splits["val"], model_metadata, columns)
    predictions = predict_validation(model, baseline_models, splits["val"], setup)
    return _gate_on(predictions, evaluation, problem, seed_report)


def _gate_on(predictions, evaluation, problem, seed_report=None, previous=None) -> dict:
    decision = choose_decision_threshold(predictions, evaluation, problem)
    validation, baselines = evaluate_validation(predictions, decision, evaluation)
    comparisons = compare_with_baselines(predictions, decision, baselines, evaluation, problem, 42)
    return evaluate_release_gate(
        validation,
        comparisons,
        decision,
        PASSED_SCENARIO,
        previous,
        seed_report,
        evaluation,
        problem,
    )


def _comparison(gate: dict, baseline: str, metric: str) -> dict:
    return next(
        item
        for item in gate["comparisons"]
        if item["baseline"] == baseline and item["metric"] == metric
    )


# --- the rules ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "lead", "low", "margin", "passes"),
    [
        ("superior", 0.03, 0.011, 0.01, True),
        ("superior", 0.03, 0.009, 0.01, False),
        ("non_inferior", -0.005, -0.009, 0.01, True),
        ("non_inferior", 0.0, -0.011, 0.01, False),
        ("point", 0.01, -0.5, 0.01, True),
        ("point", 0.0099, 0.5, 0.01, False),
    ],
)
def test_each_rule_reads_the_lead_or_its_lower_bound(rule, lead, low, margin, passes):
    assert lead_passes(rule, lead, low, margin) is passes


def test_a_twin_of_a_baseline_is_rejected_as_superior_and_released_as_non_inferior(
    splits, roles, evaluation, problem
):
    """A model identical to a baseline leads by exactly 0 on every resample."""
    train, val = splits["train"], splits["val"]
    baseline = DummyClassifier(strategy="prior").fit(train[roles.features], train["churn"])
    probabilities = baseline.predict_proba(val[roles.features])
    labels = val["churn"].to_numpy()
    predictions = {
        "labels": labels,
        "classes": ["No", "Yes"],
        "positive_class": "Yes",
        "probabilities": {"model": probabilities, "twin": probabilities.copy()},
        "data": {"split": "val", "rows": len(val), "fingerprint": "v"},
        "model": {"fingerprint": "m"},
    }
    gate = _with_gate(evaluation, floors={}, ceilings={})
    for rule, verdict in (
        ("superior", "reject"),
        ("non_inferior", "release"),
        ("point", "release"),
    ):
        # Under `point` a margin is a lead to reach, so an equal model passes only with margins of 0.
        margin = 0.0 if rule == "point" else 0.01
        margins = {"log_loss": margin, "accuracy": margin}
        params = _with_gate(gate, rule=rule, margin=margin, also_compare=margins)
        result = _gate_on(predictions, params, {**problem, "success": None})
        twin = _comparison(result, "twin", "pr_auc")
        assert twin["lead"] == twin["lead_low"] == twin["lead_high"] == 0.0
        assert result["verdict"] == verdict, rule


# --- a clearly worse model is rejected ---------------------------------------------------------------------------


def test_a_model_trained_on_shuffled_labels_is_rejected_on_real_telco_rows(
    crippled_keras_model,
    keras_model,
    baseline_models,
    splits,
    model_metadata,
    columns,
    evaluation,
    problem,
):
    arguments = (baseline_models, splits, model_metadata, columns, evaluation, problem)
    crippled = _judge(crippled_keras_model, *arguments)
    assert crippled["verdict"] == "reject"
    lead = _comparison(crippled, "logistic_regression", "pr_auc")
    assert lead["lead_high"] < -evaluation["release_gate"]["margin"]
    assert "pr_auc vs logistic_regression" in crippled["failed_checks"]
    assert "log_loss vs logistic_regression" in crippled["failed_checks"]
    # The same gate does not refuse a sensible model of the same form on the same rows.
    sensible = _judge(keras_model, *arguments)
    assert _comparison(sensible, "logistic_regression", "pr_auc")["passed"]
    assert _comparison(sensible, "majority_class", "pr_auc")["lead_low"] > 0.2


def _separable_table(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated classes of 44/20/36%, like the penguins' species."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["adelie", "chinstrap", "gentoo"], size=rows, p=[0.44, 0.20, 0.36])
    centres = {"adelie": (0.0, 0.0), "chinstrap": (6.0, 0.0), "gentoo": (3.0, 6.0)}
    features = np.array([centres[label] for label in labels]) + rng.normal(0, 0.6, (rows, 2))
    return features, labels


def test_a_worse_model_with_saturated_roc_auc_is_rejected():
    """Validation ROC-AUC is 1.0 for every candidate, so it cannot tell them apart; the under-fitted model's log
    loss and accuracy at its decisions can, and the gate rejects it."""
    train_x, train_y = _separable_table(600, seed=1)
    val_x, val_y = _separable_table(300, seed=2)
    classes = ["adelie", "chinstrap", "gentoo"]
    underfitted = LogisticRegression(C=3e-4, max_iter=2000).fit(train_x, train_y)
    baseline = LogisticRegression(C=1.0, max_iter=2000).fit(train_x, train_y)
    predictions = {
        "labels": val_y,
        "classes": classes,
        "positive_class": None,
        "probabilities": {
            "model": underfitted.predict_proba(val_x),
            "logistic_regression": baseline.predict_proba(val_x),
        },
        "data": {"split": "val", "rows": len(val_y), "fingerprint": "v"},
        "model": {"fingerprint": "m"},
    }
    problem = {"statement": "species", "primary_metric": "roc_auc"}
    evaluation = parse(EvaluationParameters, {}, "evaluation").model_dump()
    evaluation["release_gate"] |= {"floors": {}, "ceilings": {}}
    evaluation["threshold"] = {"rule": "max_f1", "target": None}
    gate = _gate_on(predictions, evaluation, problem)
    roc = _comparison(gate, "logistic_regression", "roc_auc")
    assert roc["model"] == roc["baseline_value"] == 1.0 and roc["passed"]
    accuracy = _comparison(gate, "logistic_regression", "accuracy")
    assert accuracy["model"] < accuracy["baseline_value"] - 0.05
    assert gate["verdict"] == "reject"
    assert {"log_loss vs logistic_regression", "accuracy vs logistic_regression"} <= set(
        gate["failed_checks"]
    )
    # The primary metric alone, by point estimates, passed it: the case the extra comparisons close.
    primary_only = _with_gate(evaluation, rule="point", margin=0.0, also_compare={})
    assert _gate_on(predictions, primary_only, problem)["verdict"] == "release"


# --- the record -------------------------------------------------------------------------------------------------


def test_the_record_says_validation_is_optimistic_when_the_best_seed_was_kept(
    keras_model, baseline_models, splits, model_metadata, columns, evaluation, problem
):
    arguments = (keras_model, baseline_models, splits, model_metadata, columns, evaluation, problem)
    biased = _judge(*arguments, seed_report={"validation_selection_bias": True, "kept_seed": 3})
    assert biased["validation_optimistic"] is True
    assert "optimistic" in biased["validation_note"]
    for report in (None, {"kept_seed": 3}, {"validation_selection_bias": False}):
        plain = _judge(*arguments, seed_report=report)
        assert plain["validation_optimistic"] is False and plain["validation_note"] is None
    assert biased["verdict"] == plain["verdict"]


def test_a_rule_without_a_margin_stops_before_any_node(evaluation):
    for rule in ("superior", "non_inferior", "point"):
        bad = _with_gate(evaluation, rule=rule, margin=None)
        with pytest.raises(
            ValueError, match=rf"evaluation\.release_gate.*'{rule}' needs a 'margin'"
        ):
            validate_parameters({"evaluation": bad})
    without = {**evaluation, "release_gate": {"rule": "superior"}}
    with pytest.raises(ValueError, match=r"needs a 'margin'"):
        parse(EvaluationParameters, without, "evaluation")


# --- the other checks -------------------------------------------------------------------------------------------

SCORES = {
    "pr_auc": 0.66,
    "roc_auc": 0.85,
    "log_loss": 0.42,
    "brier": 0.14,
    "accuracy": 0.8,
    "f1_macro": 0.72,
}
LEAD = {
    "baseline": "logistic_regression",
    "metric": "pr_auc",
    "model": 0.66,
    "baseline_value": 0.65,
    "lead": 0.01,
    "lead_low": -0.01,
    "lead_high": 0.03,
    "greater_is_better": True,
    "rule": "non_inferior",
    "margin": 0.02,
    "passed": True,
}
THRESHOLD = {"rule": "max_f1", "threshold": 0.35, "target_met": True}


def _candidate(**scores) -> dict:
    return {
        "scores": {**SCORES, **scores},
        "data": {"split": "val", "rows": 1000, "fingerprint": "val-v1"},
        "model": {"fingerprint": "model-v2"},
    }


def _checks_gate(evaluation, problem, candidate=None, comparisons=(LEAD,), previous=None, **gate):
    return evaluate_release_gate(
        candidate or _candidate(),
        list(comparisons),
        THRESHOLD,
        PASSED_SCENARIO,
        previous,
        None,
        _with_gate(evaluation, **gate),
        problem,
    )


def _check(gate: dict, name: str) -> dict:
    return next(check for check in gate["checks"] if check["check"] == name)


def test_gate_records_each_comparison_with_its_interval_and_rule(evaluation, problem):
    gate = _checks_gate(evaluation, problem)
    assert gate["passed"] and gate["comparisons"] == [LEAD]
    detail = _check(gate, "pr_auc vs logistic_regression")["detail"]
    assert "lead +0.0100" in detail and "[-0.0100, +0.0300]" in detail and "non_inferior" in detail
    failed = _checks_gate(evaluation, problem, comparisons=[{**LEAD, "passed": False}])
    assert failed["failed_checks"] == ["pr_auc vs logistic_regression"]


def test_gate_applies_floors_and_ceilings(evaluation, problem):
    gate = _checks_gate(evaluation, problem, candidate=_candidate(roc_auc=0.79, brier=0.17))
    assert gate["failed_checks"] == ["floor roc_auc", "ceiling brier"]


def test_gate_compares_with_the_previous_release_within_tolerance(evaluation, problem):
    released = {
        "released": True,
        "validation_scores": {**SCORES, "pr_auc": 0.665},
        "validation_data": {"fingerprint": "val-v1"},
    }
    within = _checks_gate(evaluation, problem, previous=released, previous_release_tolerance=0.01)
    assert within["passed"]
    worse = {**released, "validation_scores": {**SCORES, "pr_auc": 0.69}}
    beyond = _checks_gate(evaluation, problem, previous=worse, previous_release_tolerance=0.01)
    assert beyond["failed_checks"] == ["previous release"]
    assert "0.6600 must be >= 0.6800" in _check(beyond, "previous release")["detail"]
    moved = {**released, "validation_data": {"fingerprint": "val-v0"}}
    note = _check(_checks_gate(evaluation, problem, previous=moved), "previous release")["detail"]
    assert "different validation split" in note


def test_gate_rejects_failed_scenarios_and_unmet_threshold_targets(evaluation, problem):
    scenarios = [
        {"name": "longer_contract", "passed": False, "detail": "P(Yes) rose by 0.31"},
        {"name": "loyal_customer", "passed": True, "detail": "ok"},
    ]
    threshold = {
        "rule": "target_precision",
        "target": 0.9,
        "target_met": False,
        "threshold": 0.8,
        "precision": 0.7,
    }
    gate = evaluate_release_gate(
        _candidate(), [LEAD], threshold, scenarios, None, None, evaluation, problem
    )
    assert gate["failed_checks"] == ["threshold target_precision", "scenario longer_contract"]


def test_gate_without_baselines_rejects(evaluation, problem):
    gate = _checks_gate(evaluation, problem, comparisons=[])
    assert "beats baselines" in gate["failed_checks"]


def test_record_release_keeps_the_previous_record_when_the_gate_rejects(evaluation, problem):
    passed = _checks_gate(evaluation, problem)
    record = record_release(passed, _candidate(), {**THRESHOLD, "positive_class": "Yes"}, None)
    assert record["released"] and record["model_fingerprint"] == "model-v2"
    assert record["validation_scores"]["pr_auc"] == SCORES["pr_auc"]
    rejected = _checks_gate(evaluation, problem, comparisons=[{**LEAD, "passed": False}])
    assert record_release(rejected, _candidate(), THRESHOLD, record) == record
    assert record_release(rejected, _candidate(), THRESHOLD, None)["released"] is False
