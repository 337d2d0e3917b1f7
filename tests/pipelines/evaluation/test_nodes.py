"""Nodes of the evaluation pipeline, on real models and a small sample of the Telco data."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.evaluation.nodes import (
    choose_decision_threshold,
    evaluate_test_split,
    evaluate_validation,
    predict_validation,
    resolve_evaluation_setup,
)
from deep_learning_workflow.pipelines.evaluation.plots import (
    plot_calibration_curves,
    plot_confusion_matrix,
    plot_precision_recall_curves,
    plot_roc_curves,
)
from deep_learning_workflow.pipelines.evaluation.release import (
    run_release_scenarios,
)
from deep_learning_workflow.pipelines.evaluation.schema import EvaluationParameters


def _with(params: dict, section: str, **values) -> dict:
    return {**params, section: {**params[section], **values}}


@pytest.fixture(scope="module")
def setup(splits, model_metadata, columns):
    return resolve_evaluation_setup(splits["val"], model_metadata, columns)


@pytest.fixture(scope="module")
def predictions(keras_model, baseline_models, splits, setup):
    return predict_validation(keras_model, baseline_models, splits["val"], setup)


@pytest.fixture(scope="module")
def threshold(predictions, evaluation, problem):
    return choose_decision_threshold(predictions, evaluation, problem)


@pytest.fixture(scope="module")
def validated(predictions, threshold, evaluation):
    return evaluate_validation(predictions, threshold, evaluation)


# --- validation metrics and threshold ---------------------------------------------------------------------------


def test_validation_metrics_equal_sklearn_for_model_and_baselines(
    predictions, validated, keras_model, baseline_models, splits, roles
):
    val = splits["val"]
    truth = (val["churn"] == "Yes").to_numpy()
    model_metrics, baseline_metrics = validated
    candidates = {"model": (model_metrics, predict_probabilities(keras_model, val, roles)[:, 1])}
    for name, baseline in baseline_models.items():
        column = list(baseline.classes_).index("Yes")
        candidates[name] = (
            baseline_metrics[name],
            baseline.predict_proba(val[roles.features])[:, column],
        )
    assert set(baseline_metrics) == set(baseline_models)
    for name, (metrics, positive) in candidates.items():
        probabilities = np.column_stack([1 - positive, positive])
        scores = metrics["scores"]
        assert scores["roc_auc"] == pytest.approx(roc_auc_score(truth, positive), abs=1e-6), name
        assert scores["pr_auc"] == pytest.approx(average_precision_score(truth, positive), abs=1e-6)
        assert scores["log_loss"] == pytest.approx(log_loss(truth, positive), abs=1e-5)
        assert scores["brier"] == pytest.approx(brier_score_loss(truth, positive), abs=1e-6)
        labels = np.where(truth, "Yes", "No")
        decisions = metrics["at_threshold"]
        decided = np.where(probabilities[:, 1] >= decisions["threshold"] - 1e-7, "Yes", "No")
        # Accuracy and macro F1 are those of the decisions at the candidate's threshold, not of argmax.
        assert scores["accuracy"] == pytest.approx(accuracy_score(labels, decided))
        assert scores["f1_macro"] == pytest.approx(f1_score(labels, decided, average="macro"))
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, decided, labels=["No", "Yes"], zero_division=0
        )
        assert [decisions["precision"][c] for c in ("No", "Yes")] == pytest.approx(
            precision, abs=1e-9
        )
        assert [decisions["recall"][c] for c in ("No", "Yes")] == pytest.approx(recall, abs=1e-9)
        assert decisions["f1"]["macro"] == pytest.approx(f1_score(labels, decided, average="macro"))
    assert model_metrics["data"]["rows"] == len(splits["val"])
    assert model_metrics["data"]["class_counts"] == val["churn"].value_counts().to_dict()


def test_max_f1_threshold_is_the_best_f1_on_validation(predictions, evaluation):
    threshold = choose_decision_threshold(
        predictions, _with(evaluation, "threshold", rule="max_f1", target=None, bootstrap=0)
    )
    truth = predictions["labels"] == "Yes"
    positive = predictions["probabilities"]["model"][:, 1]
    best = max(f1_score(truth, positive >= cut) for cut in np.unique(positive))
    assert threshold["rule"] == "max_f1"
    assert threshold["f1"] == pytest.approx(best)
    decided = positive >= threshold["threshold"]
    assert threshold["precision"] == pytest.approx(decided[truth].sum() / decided.sum())
    assert threshold["recall"] == pytest.approx(decided[truth].mean())
    assert threshold["chosen_on"]["split"] == "val"


def test_target_recall_takes_the_highest_threshold_reaching_the_target(predictions, evaluation):
    params = _with(evaluation, "threshold", rule="target_recall", target=0.9, bootstrap=0)
    decision = choose_decision_threshold(predictions, params)
    truth = predictions["labels"] == "Yes"
    positive = predictions["probabilities"]["model"][:, 1]
    assert decision["target_met"] and decision["recall"] >= 0.9
    assert (positive[truth] >= decision["threshold"]).mean() >= 0.9
    higher = np.unique(positive[positive > decision["threshold"]])
    assert all((positive[truth] >= cut).mean() < 0.9 for cut in higher)


def test_target_precision_takes_the_lowest_threshold_reaching_the_target(predictions, evaluation):
    params = _with(evaluation, "threshold", rule="target_precision", target=0.7, bootstrap=0)
    decision = choose_decision_threshold(predictions, params)
    truth = predictions["labels"] == "Yes"
    positive = predictions["probabilities"]["model"][:, 1]
    assert decision["target_met"] and decision["precision"] >= 0.7
    lower = np.unique(positive[positive < decision["threshold"]])
    assert all(truth[positive >= cut].mean() < 0.7 for cut in lower)


def _synthetic_predictions(labels, positive) -> dict:
    positive = np.asarray(positive, dtype="float64")
    return {
        "labels": np.asarray(labels),
        "classes": ["No", "Yes"],
        "positive_class": "Yes",
        "probabilities": {"model": np.column_stack([1 - positive, positive])},
        "data": {"split": "val", "rows": len(labels), "class_counts": {}, "fingerprint": "v"},
        "model": {"fingerprint": "m"},
    }


def test_unreachable_precision_target_is_reported_not_met(evaluation):
    # The most confident record is a negative: no threshold reaches a precision of 0.6; the best is 0.5.
    predictions = _synthetic_predictions(
        ["No", "Yes", "No", "No", "Yes"], [0.9, 0.8, 0.7, 0.6, 0.5]
    )
    params = _with(evaluation, "threshold", rule="target_precision", target=0.6)
    decision = choose_decision_threshold(predictions, params)
    assert decision["target_met"] is False
    assert decision["threshold"] == pytest.approx(0.8) and decision["precision"] == pytest.approx(
        0.5
    )


def test_multiclass_target_decides_by_argmax(evaluation, problem):
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 20)
    logits = rng.normal(size=(60, 3)) + (labels[:, None] == np.array(["a", "b", "c"])) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predictions = {
        "labels": labels,
        "classes": ["a", "b", "c"],
        "positive_class": None,
        "probabilities": {"model": probabilities, "uniform": np.full((60, 3), 1 / 3)},
        "data": {"split": "val", "rows": 60, "class_counts": {}, "fingerprint": "v"},
        "model": {"fingerprint": "m"},
    }
    decision = choose_decision_threshold(predictions, evaluation, problem)
    assert decision["rule"] == "argmax" and decision["threshold"] is None
    assert "Multi-class" in decision["note"] and "binary targets only" in decision["note"]
    assert decision["expected_cost"] is None
    model_metrics, baseline_metrics = evaluate_validation(predictions, decision, evaluation)
    decided = np.array(["a", "b", "c"])[probabilities.argmax(axis=1)]
    assert model_metrics["at_threshold"]["accuracy"] == pytest.approx(
        accuracy_score(labels, decided)
    )
    assert model_metrics["scores"]["roc_auc"] == pytest.approx(
        roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    )
    assert baseline_metrics["uniform"]["scores"]["roc_auc"] == pytest.approx(0.5)
    for figure in (
        plot_confusion_matrix(model_metrics),
        plot_roc_curves(predictions),
        plot_precision_recall_curves(predictions, decision),
        plot_calibration_curves(predictions, evaluation),
    ):
        assert len(figure.data) >= 1


def test_plots_show_every_candidate_and_the_operating_point(predictions, threshold, validated):
    names = {"model", "majority_class", "logistic_regression"}
    roc = plot_roc_curves(predictions)
    assert {trace.name.split(" (")[0] for trace in roc.data} >= names
    pr = plot_precision_recall_curves(predictions, threshold)
    point = next(trace for trace in pr.data if trace.name.startswith("model at threshold"))
    assert (point.x[0], point.y[0]) == (threshold["recall"], threshold["precision"])
    confusion = plot_confusion_matrix(validated[0])
    # Colour: the share of each true class; text: the count and that share.
    np.testing.assert_allclose(np.asarray(confusion.data[0].z).sum(axis=1), 1.0)
    counts = [
        int(cell.split("<br>")[0].replace(",", ""))
        for row in confusion.data[0].text
        for cell in row
    ]
    assert sum(counts) == len(predictions["labels"])
    assert "% of true" in confusion.data[0].text[0][0]


def test_a_baseline_named_like_the_model_is_rejected(keras_model, baseline_models, splits, setup):
    with pytest.raises(ValueError, match="named 'model'"):
        predict_validation(
            keras_model, {"model": baseline_models["majority_class"]}, splits["val"], setup
        )


def test_the_model_metadata_names_the_feature_columns(splits, model_metadata, columns):
    inferred = {**columns, "numeric": None, "categorical": None}
    metadata = {
        **model_metadata,
        "roles": {"numeric": ["tenure"], "categorical": ["contract"], "text": []},
    }
    setup = resolve_evaluation_setup(splits["val"], metadata, inferred)
    assert setup["roles"]["numeric"] == ["tenure"] and setup["roles"]["categorical"] == ["contract"]
    assert setup["roles"]["target"] == "churn" and setup["positive_class"] == "Yes"
    with pytest.raises(ValueError, match="columns.numeric names 'tenure'"):
        resolve_evaluation_setup(splits["val"].drop(columns="tenure"), metadata, inferred)


def test_model_metadata_without_classes_is_rejected(splits, columns):
    with pytest.raises(ValueError, match="model_metadata has no 'classes'"):
        resolve_evaluation_setup(splits["val"], {"positive_class": "Yes"}, columns)


# --- release scenarios ------------------------------------------------------------------------------------------


def test_the_curated_scenarios_pass_on_a_sensible_model(
    keras_model, release_scenarios, threshold, setup
):
    results = run_release_scenarios(keras_model, release_scenarios, threshold, setup)
    assert len(results) == len(release_scenarios["scenarios"])
    assert all(result["passed"] for result in results), [r["detail"] for r in results]
    kinds = {result["kind"] for result in results}
    assert kinds == {"expected_label", "expected_direction"}


def test_a_model_contradicting_the_contract_scenario_fails_it(
    contrary_keras_model, release_scenarios, threshold, setup
):
    results = {
        result["name"]: result
        for result in run_release_scenarios(
            contrary_keras_model, release_scenarios, threshold, setup
        )
    }
    failed = results["longer_contract_does_not_raise_churn"]
    assert not failed["passed"]
    assert failed["probabilities"][-1] > failed["probabilities"][0]
    assert "not increasing" in failed["detail"]


def _scenarios_with(release_scenarios: dict, position: int, **changes) -> dict:
    changed = copy.deepcopy(release_scenarios)
    changed["scenarios"][position] = {**changed["scenarios"][position], **changes}
    return changed


def test_a_scenario_naming_an_unknown_column_fails_naming_the_key(
    keras_model, release_scenarios, threshold, setup
):
    position = 3
    name = release_scenarios["scenarios"][position]["name"]
    changed = _scenarios_with(
        release_scenarios, position, steps=[{"contract": "One year"}, {"contrat": "Two year"}]
    )
    with pytest.raises(ValueError, match=rf"scenarios\[3\] \('{name}'\)\.steps\[1\].*'contrat'"):
        run_release_scenarios(keras_model, changed, threshold, setup)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"record": {"partner": True}}, "quote the value"),
        ({"expect_label": "Maybe"}, r"expect_label is 'Maybe', not one of the model's classes"),
        ({"expect": "sideways"}, r"scenarios\.0\.expect"),
        ({"expect_label": None}, "give 'expect_label', or at least two 'steps'"),
    ],
)
def test_invalid_scenarios_fail_with_a_clear_message(
    keras_model, release_scenarios, threshold, setup, changes, message
):
    changed = _scenarios_with(release_scenarios, 0, **changes)
    with pytest.raises(ValueError, match=message):
        run_release_scenarios(keras_model, changed, threshold, setup)


def test_a_scenario_missing_a_feature_value_is_rejected(
    keras_model, release_scenarios, threshold, setup
):
    changed = copy.deepcopy(release_scenarios)
    del changed["defaults"]["tenure"]
    with pytest.raises(ValueError, match=r"gives no value for \['tenure'\]"):
        run_release_scenarios(keras_model, changed, threshold, setup)


# --- test split -------------------------------------------------------------------------------------------------


def test_test_metrics_have_bootstrap_intervals_around_the_point_estimates(
    keras_model, baseline_models, splits, setup, threshold, validated, evaluation, problem
):
    gate = {"primary_metric": "pr_auc", "verdict": "release", "model_fingerprint": "m"}
    _, baseline_metrics = validated
    arguments = (
        keras_model,
        baseline_models,
        splits["test"],
        setup,
        threshold,
        baseline_metrics,
        gate,
    )
    result = evaluate_test_split(*arguments, evaluation, 42)
    assert result["split"] == "test" and result["release_gate_verdict"] == "release"
    assert result["decision_threshold"] == threshold["threshold"]
    assert result["bootstrap"] == {
        "method": "stratified percentile bootstrap",
        "resamples": 200,
        "rows": len(splits["test"]),
        "confidence": 0.95,
        "seed": 42,
    }
    for candidate in [result["model"], *result["baselines"].values()]:
        for name, values in candidate["metrics"].items():
            # 1e-12: a constant predictor's interval is one point, up to rounding.
            assert values["low"] - 1e-12 <= values["value"] <= values["high"] + 1e-12, name
    positive = predict_probabilities(keras_model, splits["test"], setup_roles(setup))[:, 1]
    truth = splits["test"]["churn"] == "Yes"
    assert result["model"]["metrics"]["roc_auc"]["value"] == pytest.approx(
        roc_auc_score(truth, positive), abs=1e-6
    )
    difference = result["model_minus_baseline"]["logistic_regression"]
    assert difference["low"] <= difference["value"] <= difference["high"]
    assert result["data"]["fingerprint"] != threshold["chosen_on"]["fingerprint"]
    again = evaluate_test_split(*arguments, evaluation, 42)
    assert again["model"]["metrics"] == result["model"]["metrics"]
    reseeded = evaluate_test_split(*arguments, evaluation, 43)
    assert reseeded["model"]["metrics"]["pr_auc"] != result["model"]["metrics"]["pr_auc"]


def setup_roles(setup: dict):
    from deep_learning_workflow.columns import ColumnRoles

    return ColumnRoles(**setup["roles"])


def test_test_split_with_an_unknown_class_is_rejected(
    keras_model, baseline_models, splits, setup, threshold, validated, evaluation
):
    test = splits["test"].assign(churn=lambda frame: frame["churn"].replace("Yes", "Maybe"))
    gate = {"primary_metric": "pr_auc", "verdict": "release", "model_fingerprint": "m"}
    with pytest.raises(ValueError, match=r"Dataset 'test' has target classes \['Maybe'\]"):
        evaluate_test_split(
            keras_model, baseline_models, test, setup, threshold, validated[1], gate, evaluation, 42
        )


# --- parameters -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("threshold", {"rule": "median"}, "evaluation.threshold.rule"),
        ("threshold", {"rule": "target_recall", "target": 1.5}, "evaluation.threshold.target"),
        ("threshold", {"rule": "target_recall", "target": None}, "evaluation.threshold"),
        ("threshold", {"rule": "max_f1", "target": 0.8}, "evaluation.threshold"),
        ("threshold", {"bootstrap": -1}, "evaluation.threshold.bootstrap"),
        ("threshold", {"bootstrap": 2.5}, "evaluation.threshold.bootstrap"),
        ("threshold", {"bootstrap": True}, "evaluation.threshold.bootstrap"),
        ("threshold", {"bootstrap": 1_000_000}, "evaluation.threshold.bootstrap"),
        ("release_gate", {"margin": -0.1}, "evaluation.release_gate.margin"),
        ("release_gate", {"rule": "better"}, "evaluation.release_gate.rule"),
        ("release_gate", {"resamples": 100}, "evaluation.release_gate.resamples"),
        ("release_gate", {"also_compare": {"auc": 0.1}}, "evaluation.release_gate.also_compare"),
        ("bootstrap", {"max_rows": 10}, "evaluation.bootstrap.max_rows"),
        (
            "release_gate",
            {"previous_release_tolerance": 2},
            "evaluation.release_gate.previous_release",
        ),
        ("release_gate", {"floors": {"roc_auc": 1.2}}, "evaluation.release_gate.floors.roc_auc"),
        ("release_gate", {"floors": {"log_loss": 0.5}}, "evaluation.release_gate.floors"),
        ("release_gate", {"ceilings": {"pr_auc": 0.5}}, "evaluation.release_gate.ceilings"),
        ("bootstrap", {"resamples": 5}, "evaluation.bootstrap.resamples"),
        ("bootstrap", {"confidence": 1.0}, "evaluation.bootstrap.confidence"),
    ],
)
def test_bad_parameters_fail_naming_the_key(evaluation, section, values, key):
    bad = _with(evaluation, section, **values)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        parse(EvaluationParameters, bad, "evaluation")
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        validate_parameters({"evaluation": bad})


def test_unknown_parameter_keys_are_rejected(evaluation):
    with pytest.raises(ValueError, match=r"evaluation\.thresold"):
        parse(EvaluationParameters, {**evaluation, "thresold": {}}, "evaluation")


def test_verdict_sentence_says_what_failed_in_plain_words():
    from deep_learning_workflow.pipelines.evaluation.report import verdict_sentence

    gate = {
        "passed": False,
        "failed_checks": ["beats baseline gradient_boosting"],
        "checks": [
            {"check": "success pr_auc", "passed": True, "detail": "pr_auc 0.6350 must be >= 0.6"},
            {
                "check": "beats baseline gradient_boosting",
                "passed": False,
                "detail": "pr_auc 0.6350 must be >= 0.6490 (gradient_boosting 0.6490 + margin 0.0)",
            },
        ],
    }
    assert verdict_sentence(gate) == (
        "The model was rejected: it does not beat gradient boosting on validation PR-AUC (0.635 vs 0.649)."
    )
    passed = {**gate, "passed": True, "failed_checks": []}
    assert (
        verdict_sentence(passed)
        == "The model was released: it passed all 2 checks of the release gate."
    )
