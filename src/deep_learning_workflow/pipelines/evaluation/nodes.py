"""Nodes of the evaluation pipeline.

Everything that decides (the decision threshold, the release gate) looks at the validation split only. The test
split is read by one node, :func:`evaluate_test_split`, which runs after the release gate and only reports. The
work is done in the modules named for it: ``predictions``, ``threshold``, ``scenarios``, ``gate``, ``test_split``
and ``tracking``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.bootstrap import describe_bootstrap
from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.fingerprints import model_fingerprint
from deep_learning_workflow.metrics import classification_summary, predict_labels
from deep_learning_workflow.parameters import parse, schema_for
from deep_learning_workflow.pipelines.evaluation import gate as checks
from deep_learning_workflow.pipelines.evaluation.predictions import (
    CANDIDATE,
    describe_split,
    predict_all,
    resolve_setup,
    setup_of,
    split_labels,
)
from deep_learning_workflow.pipelines.evaluation.scenarios import SCENARIOS_FILE, run_scenarios
from deep_learning_workflow.pipelines.evaluation.schema import (
    EvaluationParameters,
    ReleaseScenarios,
)
from deep_learning_workflow.pipelines.evaluation.test_split import (
    candidate_thresholds,
    decision_costs,
    differences,
    score_with_intervals,
)
from deep_learning_workflow.pipelines.evaluation.threshold import (
    candidate_metrics,
    choose_threshold,
    costs_of,
)
from deep_learning_workflow.pipelines.evaluation.tracking import tracking_metrics, tracking_tags
from deep_learning_workflow.problem import ProblemDefinition

# --- validation ---------------------------------------------------------------------------------------------------


def resolve_evaluation_setup(
    val: pd.DataFrame, model_metadata: Mapping[str, Any], columns: dict
) -> dict:
    """Resolve the feature columns and the model's classes once for the whole pipeline.

    Args:
        val: the validation split.
        model_metadata: the trained model's metadata; its ``classes`` give the order of the probability columns
            and its ``roles`` (numeric, categorical, text), when present, the model's feature columns.
        columns: ``params:columns`` (key, target, positive class; the feature roles when the metadata has none).

    Returns:
        ``roles`` (resolved column roles), ``classes`` and ``positive_class``.

    Raises:
        ValueError: when the metadata lacks the classes, the positive class is not one of them, or ``val`` lacks
            a column.
    """
    configured = parse(ColumnRoles, columns, "columns")
    return resolve_setup(val, model_metadata, configured)


def predict_validation(
    model: Any,
    baseline_models: Mapping[str, Any],
    val: pd.DataFrame,
    evaluation_setup: Mapping[str, Any],
) -> dict:
    """Class probabilities of the model and of every baseline on the validation split.

    Args:
        model: Keras model taking raw records.
        baseline_models: name to fitted scikit-learn pipeline (``predict_proba`` on a raw frame).
        val: the validation split.
        evaluation_setup: output of :func:`resolve_evaluation_setup`.

    Returns:
        ``labels``, ``classes``, ``positive_class``, ``probabilities`` (candidate name to an array of shape
        (rows, classes), the model under ``"model"``), ``data`` (size, class counts, fingerprint of ``val``) and
        ``model`` (the model's fingerprint).
    """
    roles, classes, positive_class = setup_of(evaluation_setup)
    labels = split_labels(val, roles, classes, "val")
    return {
        "labels": labels,
        "classes": classes,
        "positive_class": positive_class,
        "probabilities": predict_all(model, baseline_models, val, roles, classes),
        "data": describe_split(val, labels, classes, "val"),
        "model": {"fingerprint": model_fingerprint(model)},
    }


def choose_decision_threshold(
    validation_predictions: Mapping[str, Any],
    evaluation: dict,
    problem: dict | None = None,
    seed: int = 0,
) -> dict:
    """Choose the model's decision threshold on the validation split (params:evaluation.threshold).

    Args:
        validation_predictions: output of :func:`predict_validation`.
        evaluation: ``params:evaluation``.
        problem: ``params:problem``; its ``costs`` (binary targets) drive the rule ``min_expected_cost`` and give
            the expected cost per record at the threshold whatever the rule.
        seed: ``params:seed``; seeds the bootstrap resamples of ``threshold.bootstrap``.

    Returns:
        ``rule``, ``threshold`` (None for a multi-class target: argmax), ``target_met``, the validation precision,
        recall and F1 of the positive class at the threshold, the ``costs`` it was chosen under and the
        ``expected_cost`` per validation record at it (None without costs), beside the cost of flagging no record
        or every record (``expected_cost_without_model``).
    """
    params = parse(EvaluationParameters, evaluation, "evaluation")
    costs = None if problem is None else parse(ProblemDefinition, problem, "problem").costs
    decision = choose_threshold(
        validation_predictions["labels"],
        validation_predictions["probabilities"][CANDIDATE],
        validation_predictions["classes"],
        validation_predictions["positive_class"],
        params.threshold,
        costs,
        parse(schema_for("seed"), seed, "seed"),
    )
    return {
        **decision,
        "chosen_on": validation_predictions["data"],
        "model_fingerprint": validation_predictions["model"]["fingerprint"],
    }


def evaluate_validation(
    validation_predictions: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    evaluation: dict,
    seed: int = 0,
) -> tuple[dict, dict]:
    """Validation metrics of the model and of every baseline, computed by the same code.

    Threshold-free scores (ROC-AUC, PR-AUC, log loss, Brier) and the scores of the decisions (accuracy, macro F1;
    precision, recall, F1 per class and macro, confusion matrix) at each candidate's threshold: the model's chosen threshold, and for each baseline a threshold chosen by the same rule.
    When the model's threshold was chosen under costs (``params:problem.costs``), every candidate's
    ``at_threshold`` holds its ``expected_cost`` per record under them, and the baselines' thresholds are chosen
    under them too.

    Returns:
        The model's metrics and a dictionary of each baseline's metrics.
    """
    params = parse(EvaluationParameters, evaluation, "evaluation")
    seed = parse(schema_for("seed"), seed, "seed")
    costs = costs_of(decision_threshold)
    labels = validation_predictions["labels"]
    classes = validation_predictions["classes"]
    positive_class = validation_predictions["positive_class"]
    probabilities = validation_predictions["probabilities"]
    common = {"split": "val", "classes": classes, "positive_class": positive_class}
    model_metrics = {
        "candidate": CANDIDATE,
        **common,
        "data": validation_predictions["data"],
        "model": validation_predictions["model"],
        **candidate_metrics(
            labels, probabilities[CANDIDATE], classes, positive_class, decision_threshold, costs
        ),
    }
    baseline_metrics = {}
    for name in sorted(set(probabilities) - {CANDIDATE}):
        decision = choose_threshold(
            labels, probabilities[name], classes, positive_class, params.threshold, costs, seed
        )
        baseline_metrics[name] = {
            "candidate": name,
            **common,
            **candidate_metrics(
                labels, probabilities[name], classes, positive_class, decision, costs
            ),
        }
    return model_metrics, baseline_metrics


# --- release gate -------------------------------------------------------------------------------------------------


def run_release_scenarios(
    model: Any,
    release_scenarios: dict,
    decision_threshold: Mapping[str, Any],
    evaluation_setup: Mapping[str, Any],
) -> list[dict]:
    """Run the model on the curated release scenarios and check each expectation.

    Args:
        model: Keras model taking raw records.
        release_scenarios: the parsed ``data/01_raw/release_scenarios.yml`` (see
            :class:`~deep_learning_workflow.pipelines.evaluation.schema.ReleaseScenarios`).
        decision_threshold: output of :func:`choose_decision_threshold` (expected labels use the model's decision).
        evaluation_setup: output of :func:`resolve_evaluation_setup`.

    Returns:
        One result per scenario: ``name``, ``kind``, ``passed``, ``detail`` and the probabilities seen.

    Raises:
        ValueError: naming the scenario and key when the file is invalid, names a column that is not a feature,
            or an expected class that the model does not have.
    """
    scenarios = parse(ReleaseScenarios, release_scenarios, SCENARIOS_FILE)
    roles, classes, positive_class = setup_of(evaluation_setup)
    threshold = decision_threshold.get("threshold")
    return run_scenarios(model, scenarios, roles, classes, positive_class, threshold)


def compare_with_baselines(
    validation_predictions: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    evaluation: dict,
    problem: dict,
    seed: int,
) -> list[dict]:
    """The model against every baseline on the validation split, by a paired bootstrap of its rows.

    The primary metric (``params:problem.primary_metric``) is compared with ``release_gate.margin`` and each metric
    of ``release_gate.also_compare`` with its own margin, under ``release_gate.rule``; every candidate's decisions
    are taken at its own threshold. Beyond ``bootstrap.max_rows`` validation rows, resamples draw from a stratified
    sample of that size, rescaled (as the test split's intervals).

    Returns:
        One record per baseline and metric: both values, the model's lead (positive: the model is better), its
        interval, the rule, the margin and whether it ``passed``.
    """
    params = parse(EvaluationParameters, evaluation, "evaluation")
    primary = parse(ProblemDefinition, problem, "problem").primary_metric
    seed = parse(schema_for("seed"), seed, "seed")
    probabilities = validation_predictions["probabilities"]
    thresholds = candidate_thresholds(decision_threshold, baseline_metrics, list(probabilities))
    candidates = {name: (probabilities[name], thresholds[name]) for name in probabilities}
    return checks.compare_candidates(
        validation_predictions["labels"],
        candidates,
        validation_predictions["classes"],
        validation_predictions["positive_class"],
        checks.compared_metrics(params.release_gate, primary),
        params.release_gate,
        seed,
        params.bootstrap.max_rows,
    )


def evaluate_release_gate(
    validation_metrics: Mapping[str, Any],
    baseline_comparisons: list[dict],
    decision_threshold: Mapping[str, Any],
    scenario_results: list[dict],
    previous_release: Mapping[str, Any] | None,
    seed_report: Mapping[str, Any] | None,
    evaluation: dict,
    problem: dict,
) -> dict:
    """Decide on the validation split whether the model may be released, with every reason.

    The model must reach the success threshold of ``params:problem.success`` (when set), pass the comparison with
    every baseline (:func:`compare_with_baselines`), meet the ``floors`` and ``ceilings``, not fall more than
    ``previous_release_tolerance`` below the released model, reach a target rule's target and pass every release
    scenario. When the seed report says the model was the best of several seeds on validation
    (``validation_selection_bias``), the record says its validation figures are optimistic.

    Returns:
        ``passed``, ``verdict`` (release/reject), every check with its reason, the names of the failed checks, the
        ``comparisons`` with the baselines, ``success`` (None without a success threshold) and
        ``validation_optimistic``.
    """
    gate = parse(EvaluationParameters, evaluation, "evaluation").release_gate
    definition = parse(ProblemDefinition, problem, "problem")
    primary = definition.primary_metric
    scores = validation_metrics["scores"]
    success_checks, success = checks.success_check(definition, scores)
    found = [
        *success_checks,
        *checks.comparison_checks(baseline_comparisons, gate.confidence),
        *checks.limit_checks(gate, scores),
        *checks.threshold_check(decision_threshold),
        checks.previous_release_check(
            previous_release, validation_metrics, primary, gate.previous_release_tolerance
        ),
        *checks.scenario_checks(scenario_results),
    ]
    failed = [item["check"] for item in found if not item["passed"]]
    return {
        "passed": not failed,
        "verdict": "release" if not failed else "reject",
        "split": "val",
        "primary_metric": primary,
        "model_value": scores[primary],
        "rule": {"name": gate.rule, "margin": gate.margin, "confidence": gate.confidence},
        "comparisons": list(baseline_comparisons),
        "success": success,
        **checks.selection_note(seed_report),
        "model_fingerprint": validation_metrics["model"]["fingerprint"],
        "failed_checks": failed,
        "checks": found,
    }


def record_release(
    release_gate: Mapping[str, Any],
    validation_metrics: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    previous_release: Mapping[str, Any] | None,
) -> dict:
    """The record of the released model after this run.

    A model that passes the gate becomes the released model; otherwise the previous record stands. The next run's
    gate compares its candidate with this record (``data/06_models/released/release.json``).

    Returns:
        ``released`` (False while no model has passed), the model's fingerprint, validation scores and data, and
        its decision threshold.
    """
    if release_gate["passed"]:
        return {
            "released": True,
            "model_fingerprint": validation_metrics["model"]["fingerprint"],
            "primary_metric": release_gate["primary_metric"],
            "validation_scores": dict(validation_metrics["scores"]),
            "validation_data": dict(validation_metrics["data"]),
            "decision_threshold": {
                key: decision_threshold.get(key)
                for key in ("rule", "target", "threshold", "positive_class")
            },
        }
    if previous_release and previous_release.get("released"):
        return dict(previous_release)
    return {"released": False, "note": "No model has passed the release gate yet."}


# --- test split ---------------------------------------------------------------------------------------------------


def evaluate_test_split(
    model: Any,
    baseline_models: Mapping[str, Any],
    test: pd.DataFrame,
    evaluation_setup: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    release_gate: Mapping[str, Any],
    evaluation: dict,
    seed: int,
) -> dict:
    """The final evaluation: the only node that reads the test split, after the threshold and the gate are fixed.

    Nothing is chosen here. Each candidate is scored at the decision threshold it was given on validation, with
    stratified percentile bootstrap intervals (``params:evaluation.bootstrap``, seeded with ``params:seed``); every
    candidate is scored on the same resamples, so the model's lead over each baseline gets an interval too. With
    costs (``params:problem.costs``, binary targets), every candidate's metrics include ``expected_cost``.

    Returns:
        Test metrics of the model (value, low, high), of each baseline, the model-minus-baseline difference on the
        primary metric, the model's decisions at its threshold, the data's fingerprint and the gate's verdict.
    """
    params = parse(EvaluationParameters, evaluation, "evaluation")
    seed = parse(schema_for("seed"), seed, "seed")
    roles, classes, positive_class = setup_of(evaluation_setup)
    labels = split_labels(test, roles, classes, "test")
    probabilities = predict_all(model, baseline_models, test, roles, classes)
    thresholds = candidate_thresholds(decision_threshold, baseline_metrics, list(probabilities))
    costs = costs_of(decision_threshold)
    row_costs = decision_costs(labels, probabilities, thresholds, classes, positive_class, costs)
    results, resampled = score_with_intervals(
        labels,
        probabilities,
        thresholds,
        classes,
        positive_class,
        row_costs,
        params.bootstrap,
        seed,
    )
    primary = release_gate["primary_metric"]
    decided = predict_labels(
        probabilities[CANDIDATE], classes, positive_class, thresholds[CANDIDATE]
    )
    return {
        "split": "test",
        "classes": classes,
        "positive_class": positive_class,
        "primary_metric": primary,
        "data": describe_split(test, labels, classes, "test"),
        "release_gate_verdict": release_gate["verdict"],
        "decision_threshold": thresholds[CANDIDATE],
        "costs": None if costs is None else costs.model_dump(),
        "bootstrap": {
            **describe_bootstrap(
                len(labels), params.bootstrap.resamples, params.bootstrap.max_rows
            ),
            "confidence": params.bootstrap.confidence,
            "seed": seed,
        },
        "model": {
            "fingerprint": release_gate["model_fingerprint"],
            "metrics": results[CANDIDATE],
            "at_threshold": {
                "threshold": thresholds[CANDIDATE],
                **classification_summary(labels, decided, classes),
            },
        },
        "baselines": {
            name: {"metrics": results[name]} for name in sorted(set(results) - {CANDIDATE})
        },
        "model_minus_baseline": differences(
            results, resampled, primary, params.bootstrap.confidence
        ),
    }


# --- tracking -----------------------------------------------------------------------------------------------------


def collect_tracking_records(
    validation_metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    release_gate: Mapping[str, Any],
    test_metrics: Mapping[str, Any],
    model_metadata: Mapping[str, Any],
) -> tuple[dict, dict]:
    """Metrics and tags of the run for MLflow (kedro-mlflow logs them to the run of ``kedro run``).

    Returns:
        Metrics in kedro-mlflow's format (``{name: {"value": v, "step": 0}}``) and tags naming the versions of the
        model (fingerprint, metadata) and of the data (fingerprints and sizes of val and test).
    """
    metrics = tracking_metrics(
        validation_metrics, baseline_metrics, decision_threshold, release_gate, test_metrics
    )
    tags = tracking_tags(validation_metrics, release_gate, test_metrics, model_metadata)
    return metrics, tags
