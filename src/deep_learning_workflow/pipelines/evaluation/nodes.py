"""Nodes of the evaluation pipeline.

Everything that decides (the decision threshold, the release gate) looks at the validation split only. The test
split is read by one node, :func:`evaluate_test_split`, which runs after the release gate and only reports. The
work is done in the modules named for it: ``predictions``, ``threshold``, ``test_split`` and ``tracking``; the
release gate's nodes are in ``release``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.bootstrap import describe_bootstrap
from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.fingerprints import model_fingerprint
from deep_learning_workflow.metrics import classification_summary, predict_labels
from deep_learning_workflow.parameters import parse, schema_for
from deep_learning_workflow.pipelines.evaluation.predictions import (
    CANDIDATE,
    describe_split,
    predict_all,
    resolve_setup,
    setup_of,
    split_labels,
)
from deep_learning_workflow.pipelines.evaluation.schema import (
    BootstrapParameters,
    EvaluationParameters,
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

    Nothing is chosen here: each candidate is scored at its validation threshold, all on the same bootstrap
    resamples (``params:evaluation.bootstrap``), so the model's lead over each baseline gets an interval too.

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
    return {
        "split": "test",
        "classes": classes,
        "positive_class": positive_class,
        "primary_metric": primary,
        "data": describe_split(test, labels, classes, "test"),
        "release_gate_verdict": release_gate["verdict"],
        "decision_threshold": thresholds[CANDIDATE],
        "costs": None if costs is None else costs.model_dump(),
        "bootstrap": _bootstrap_settings(len(labels), params.bootstrap, seed),
        "model": {
            "fingerprint": release_gate["model_fingerprint"],
            "metrics": results[CANDIDATE],
            "at_threshold": _model_decisions(
                labels, probabilities[CANDIDATE], classes, positive_class, thresholds[CANDIDATE]
            ),
        },
        "baselines": {
            name: {"metrics": results[name]} for name in sorted(set(results) - {CANDIDATE})
        },
        "model_minus_baseline": differences(
            results, resampled, primary, params.bootstrap.confidence
        ),
    }


def _bootstrap_settings(rows: int, bootstrap: BootstrapParameters, seed: int) -> dict[str, Any]:
    """How the test intervals were drawn: method, resamples, confidence and seed."""
    return {
        **describe_bootstrap(rows, bootstrap.resamples, bootstrap.max_rows),
        "confidence": bootstrap.confidence,
        "seed": seed,
    }


def _model_decisions(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    positive_class: str,
    threshold: Any,
) -> dict[str, Any]:
    """The model's decisions on the test split at its threshold: the threshold and their classification summary."""
    decided = predict_labels(probabilities, classes, positive_class, threshold)
    return {"threshold": threshold, **classification_summary(labels, decided, classes)}


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
