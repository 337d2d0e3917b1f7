"""The problem definition drives the evaluation: costs choose the threshold, the success threshold gates the
release, and the report opens with it."""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

from deep_learning_workflow.hooks import ValidateParametersHook
from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.evaluation.nodes import (
    choose_decision_threshold,
    evaluate_test_split,
    evaluate_validation,
    predict_validation,
    resolve_evaluation_setup,
)
from deep_learning_workflow.pipelines.evaluation.release import (
    compare_with_baselines,
    evaluate_release_gate,
)
from deep_learning_workflow.pipelines.evaluation.report import render_model_report
from deep_learning_workflow.problem import ProblemDefinition

COST_RULE = {"threshold": {"rule": "min_expected_cost", "target": None}}


def _problem(**values) -> dict:
    return {"statement": "Find the churners.", "primary_metric": "pr_auc", **values}


def _costs(false_positive: float, false_negative: float) -> dict:
    return _problem(costs={"false_positive": false_positive, "false_negative": false_negative})


def _predictions(labels: list[str], positive: list[float]) -> dict:
    positive = np.asarray(positive, dtype="float64")
    return {
        "labels": np.asarray(labels),
        "classes": ["No", "Yes"],
        "positive_class": "Yes",
        "probabilities": {"model": np.column_stack([1 - positive, positive])},
        "data": {"split": "val", "rows": len(labels), "class_counts": {}, "fingerprint": "v"},
        "model": {"fingerprint": "m"},
    }


# Seven validation records, highest score first. A record is flagged when its score reaches the threshold.
HAND = _predictions(
    ["Yes", "No", "Yes", "No", "Yes", "No", "No"], [0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1]
)


# --- the cost-minimising threshold ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("false_positive", "false_negative", "threshold", "total_cost"),
    [
        # Missing a churner costs 3, a wasted offer 1. Total cost at each threshold (FP x 1 + FN x 3):
        # none flagged 9; 0.9: 6; 0.8: 7; 0.6: 4; 0.4: 5; 0.3: 2 (two FP, no FN); 0.2: 3; 0.1: 4.
        (1, 3, 0.3, 2),
        # A wasted offer costs 2, a missed churner 1 (FP x 2 + FN x 1):
        # none flagged 3; 0.9: 2 (no FP, two FN); 0.8: 4; 0.6: 3; 0.4: 5; 0.3: 4; 0.2: 6; 0.1: 8.
        (2, 1, 0.9, 2),
    ],
)
def test_min_expected_cost_threshold_matches_a_hand_computed_example(
    false_positive, false_negative, threshold, total_cost
):
    decision = choose_decision_threshold(HAND, COST_RULE, _costs(false_positive, false_negative))
    assert decision["rule"] == "min_expected_cost" and decision["target_met"]
    assert decision["threshold"] == pytest.approx(threshold)
    assert decision["expected_cost"] == pytest.approx(total_cost / 7)
    assert decision["expected_cost_without_model"] == {
        "flag_none": pytest.approx(3 * false_negative / 7),
        "flag_all": pytest.approx(4 * false_positive / 7),
    }
    assert decision["costs"] == {
        "false_positive": false_positive,
        "false_negative": false_negative,
        "unit": None,
    }


def test_costs_move_the_threshold_away_from_max_f1():
    # The best F1 (0.75) is at 0.3; when a false positive costs twice a false negative, 0.9 is cheaper.
    max_f1 = choose_decision_threshold(
        HAND, {"threshold": {"rule": "max_f1", "target": None}}, _costs(2, 1)
    )
    assert max_f1["threshold"] == pytest.approx(0.3) and max_f1["f1"] == pytest.approx(0.75)
    # Whatever the rule, the expected cost at its threshold is reported: two wasted offers at 2 in 7 records.
    assert max_f1["expected_cost"] == pytest.approx(4 / 7)
    cheapest = choose_decision_threshold(HAND, COST_RULE, _costs(2, 1))
    assert cheapest["expected_cost"] < max_f1["expected_cost"]
    assert cheapest["precision"] == pytest.approx(1.0) and cheapest["recall"] == pytest.approx(
        1 / 3
    )


def test_flagging_no_record_wins_when_every_flag_costs_more_than_it_saves():
    # Flagging 0.9 wastes 5 for nothing; flagging 0.5 too saves 1 for another 5; flagging none costs the one miss.
    predictions = _predictions(["No", "Yes", "No"], [0.9, 0.5, 0.3])
    decision = choose_decision_threshold(predictions, COST_RULE, _costs(5, 1))
    assert decision["threshold"] == 1.0 and decision["recall"] == 0.0
    assert decision["expected_cost"] == pytest.approx(1 / 3)
    assert "Flagging no record is cheapest" in decision["note"]


def test_without_costs_the_cost_rule_is_refused_and_no_cost_is_reported():
    with pytest.raises(ValueError, match=r"min_expected_cost' needs params:problem\.costs"):
        choose_decision_threshold(HAND, COST_RULE, _problem())
    plain = choose_decision_threshold(HAND, {"threshold": {"rule": "max_f1", "target": None}})
    assert plain["costs"] is None and plain["expected_cost"] is None


def test_validation_and_baselines_are_judged_under_the_same_costs():
    predictions = _predictions(HAND["labels"].tolist(), HAND["probabilities"]["model"][:, 1])
    # A baseline that ranks the records backwards: its cheapest threshold (same rule, same costs) flags every
    # record: four wasted offers at 1.
    predictions["probabilities"]["reversed"] = predictions["probabilities"]["model"][:, ::-1]
    decision = choose_decision_threshold(predictions, COST_RULE, _costs(1, 3))
    model, baselines = evaluate_validation(predictions, decision, COST_RULE)
    assert model["at_threshold"]["expected_cost"] == pytest.approx(2 / 7)
    assert baselines["reversed"]["at_threshold"]["expected_cost"] == pytest.approx(4 / 7)
    assert baselines["reversed"]["at_threshold"]["threshold"] == pytest.approx(0.1)


# --- on real models: validation and the one test evaluation -------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(keras_model, baseline_models, splits, model_metadata, columns, evaluation, problem):
    """The evaluation of a real model under the Telco problem definition, up to the test metrics."""
    setup = resolve_evaluation_setup(splits["val"], model_metadata, columns)
    predictions = predict_validation(keras_model, baseline_models, splits["val"], setup)
    decision = choose_decision_threshold(predictions, evaluation, problem)
    validation, baselines = evaluate_validation(predictions, decision, evaluation)
    comparisons = compare_with_baselines(predictions, decision, baselines, evaluation, problem, 42)
    gate = evaluate_release_gate(
        validation, comparisons, decision, [], None, None, evaluation, problem
    )
    test = evaluate_test_split(
        keras_model,
        baseline_models,
        splits["test"],
        setup,
        decision,
        baselines,
        gate,
        evaluation,
        42,
    )
    return {
        "setup": setup,
        "decision": decision,
        "validation": validation,
        "baselines": baselines,
        "gate": gate,
        "test": test,
    }


def test_test_metrics_report_the_expected_cost_at_the_validation_threshold(
    evaluated, keras_model, splits, problem
):
    from deep_learning_workflow.columns import ColumnRoles
    from deep_learning_workflow.model_inputs import predict_probabilities

    decision, test = evaluated["decision"], evaluated["test"]
    assert decision["rule"] == "min_expected_cost"
    assert evaluated["validation"]["at_threshold"]["expected_cost"] == pytest.approx(
        decision["expected_cost"]
    )
    frame = splits["test"]
    roles = ColumnRoles(**evaluated["setup"]["roles"])
    positive = predict_probabilities(keras_model, frame, roles)[:, 1]
    flagged, truth = positive >= decision["threshold"], (frame["churn"] == "Yes").to_numpy()
    costs = problem["costs"]
    by_hand = (
        costs["false_positive"] * np.sum(flagged & ~truth)
        + costs["false_negative"] * np.sum(~flagged & truth)
    ) / len(frame)
    cost = test["model"]["metrics"]["expected_cost"]
    assert cost["value"] == pytest.approx(by_hand, rel=1e-6)
    assert cost["low"] <= cost["value"] <= cost["high"]
    assert "expected_cost" in test["baselines"]["logistic_regression"]["metrics"]
    assert test["costs"]["false_negative"] == costs["false_negative"]


# --- the release gate checks the success threshold ---------------------------------------------------------------

SCORES = {
    "pr_auc": 0.66,
    "roc_auc": 0.85,
    "log_loss": 0.42,
    "brier": 0.14,
    "accuracy": 0.8,
    "f1_macro": 0.72,
}
# A comparison with a baseline that the model passed (as compare_with_baselines records it).
COMPARISONS = [
    {
        "baseline": "majority_class",
        "metric": "pr_auc",
        "model": 0.66,
        "baseline_value": 0.27,
        "lead": 0.39,
        "lead_low": 0.33,
        "lead_high": 0.45,
        "greater_is_better": True,
        "rule": "non_inferior",
        "margin": 0.0,
        "passed": True,
    }
]
PASSED = [{"name": "s", "passed": True, "detail": "ok"}]
GATE = {"release_gate": {"margin": 0.0, "floors": {}, "ceilings": {}}}


def _gate(problem: dict, **scores) -> dict:
    candidate = {
        "scores": {**SCORES, **scores},
        "data": {"split": "val", "rows": 100, "fingerprint": "v"},
        "model": {"fingerprint": "m"},
    }
    threshold = {"rule": "max_f1", "threshold": 0.3, "target_met": True}
    return evaluate_release_gate(
        candidate, COMPARISONS, threshold, PASSED, None, None, GATE, problem
    )


def test_gate_passes_a_model_that_reaches_the_success_threshold():
    gate = _gate(_problem(success={"minimum": 0.6}))
    assert gate["passed"]
    assert gate["success"] == {
        "metric": "pr_auc",
        "minimum": 0.6,
        "maximum": None,
        "value": 0.66,
        "met": True,
    }
    assert any(check["check"] == "success pr_auc" and check["passed"] for check in gate["checks"])


def test_gate_rejects_a_model_below_the_success_threshold_with_the_reason():
    gate = _gate(_problem(success={"metric": "roc_auc", "minimum": 0.9}))
    assert gate["verdict"] == "reject" and gate["failed_checks"] == ["success roc_auc"]
    assert gate["success"]["met"] is False
    detail = next(c["detail"] for c in gate["checks"] if c["check"] == "success roc_auc")
    assert "roc_auc 0.8500 must be >= 0.9" in detail and "params:problem.success" in detail


def test_gate_applies_a_maximum_to_a_lower_is_better_success_metric():
    problem = _problem(success={"metric": "log_loss", "maximum": 0.45})
    assert _gate(problem)["passed"]
    assert _gate(problem, log_loss=0.5)["failed_checks"] == ["success log_loss"]
    assert _gate(problem, log_loss=float("nan"))["success"]["met"] is False


def test_gate_without_a_success_threshold_has_no_success_check():
    gate = _gate(_problem())
    assert gate["passed"] and gate["success"] is None
    assert not any(check["check"].startswith("success") for check in gate["checks"])


# --- bad problem definitions stop the run before any node ---------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"costs": {"false_positive": -1, "false_negative": 5}}, "problem.costs.false_positive"),
        ({"costs": {"false_positive": 1, "false_negative": -0.5}}, "problem.costs.false_negative"),
        ({"costs": {"false_positive": 0, "false_negative": 0}}, "problem.costs"),
        ({"costs": {"false_positive": 1, "false_negative": float("inf")}}, "problem.costs.false"),
        ({"costs": {"false_positive": 1}}, "problem.costs.false_negative"),
        ({"success": {"metric": "auc", "minimum": 0.6}}, "problem.success.metric"),
        ({"success": {"metric": "pr_auc", "minimum": 1.2}}, "problem.success.minimum"),
        ({"success": {"metric": "pr_auc", "maximum": 0.6}}, "problem.success"),
        ({"success": {"metric": "brier", "minimum": 0.1}}, "problem.success"),
        ({"success": {"metric": "roc_auc"}}, "problem.success"),
        ({"success": {"minimum": 0.6, "target": 0.7}}, "problem.success.target"),
    ],
)
def test_bad_problem_definitions_fail_naming_the_key(values, key):
    bad = _problem(**values)
    pattern = re.escape(key)
    with pytest.raises(ValueError, match=pattern):
        parse(ProblemDefinition, bad, "problem")
    pipeline = Pipeline([node(lambda problem: problem, "params:problem", "out")])
    catalog = DataCatalog({"params:problem": MemoryDataset(bad)})
    with pytest.raises(ValueError, match=pattern):
        ValidateParametersHook().before_pipeline_run({}, pipeline, catalog)


def test_the_cost_rule_without_costs_is_refused_before_any_node():
    with pytest.raises(ValueError, match=r"evaluation\.threshold\.rule.*needs problem\.costs"):
        validate_parameters({"evaluation": COST_RULE, "problem": _problem()})
    validate_parameters({"evaluation": COST_RULE, "problem": _costs(1, 5)})


def test_success_metric_defaults_to_the_primary_metric():
    problem = parse(
        ProblemDefinition,
        _problem(primary_metric="brier", success={"maximum": 0.2}),
        "problem",
    )
    assert problem.success.metric == "brier" and problem.success.met_by(0.15)


# --- the report opens with the problem definition ----------------------------------------------------------------


def test_the_report_opens_with_the_problem_definition(evaluated, problem, evaluation):
    figure = go.Figure()
    report = render_model_report(
        problem,
        evaluation,
        {},
        evaluated["validation"],
        evaluated["baselines"],
        evaluated["decision"],
        evaluated["gate"],
        evaluated["test"],
        figure,
        figure,
        figure,
        figure,
    )
    body = report.split("<body>", 1)[1]
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", body)
    assert headings[0] == "1. The problem definition"
    # Nothing but the title comes before it.
    assert (
        body.index("<h2") < body.index('class="headline"')
        and body.count("<p", 0, body.index("<h2")) == 0
    )
    section = body[body.index("<h2") : body.index("<h2", body.index("<h2") + 1)]
    assert problem["statement"][:40] in section
    assert "PR-AUC (average precision) ≥ 0.6" in section
    met = "✅ met" if evaluated["gate"]["success"]["met"] else "❌ not met"
    assert f"Validation: {evaluated['gate']['success']['value']:.3f}, <b>{met}</b>" in section
    assert "<b>100.00 USD</b>" in section and "<b>500.00 USD</b>" in section
    assert f"validation <b>{evaluated['decision']['expected_cost']:,.2f} USD</b>" in section
    test_cost = evaluated["test"]["model"]["metrics"]["expected_cost"]["value"]
    assert f"test <b>{test_cost:,.2f} USD</b>" in section
    assert f"<b>{evaluated['decision']['threshold']:.3f}</b>" in section
    assert "the lowest expected cost" in section
