"""The release gate's nodes: the release scenarios, the comparisons with the baselines, the gate's verdict and the
release record. They look at the validation split only; the checks themselves are in ``gate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deep_learning_workflow.parameters import parse, schema_for
from deep_learning_workflow.pipelines.evaluation import gate as checks
from deep_learning_workflow.pipelines.evaluation.predictions import (
    setup_of,
)
from deep_learning_workflow.pipelines.evaluation.scenarios import SCENARIOS_FILE, run_scenarios
from deep_learning_workflow.pipelines.evaluation.schema import (
    EvaluationParameters,
    ReleaseScenarios,
)
from deep_learning_workflow.pipelines.evaluation.test_split import (
    candidate_thresholds,
)
from deep_learning_workflow.problem import ProblemDefinition


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
