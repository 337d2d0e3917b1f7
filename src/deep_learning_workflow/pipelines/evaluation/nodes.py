"""Nodes of the evaluation pipeline.

Everything that decides (the decision threshold, the release gate) looks at the validation split only. The test
split is read by one node, :func:`evaluate_test_split`, which runs after the release gate and only reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_labels
from deep_learning_workflow.fingerprints import frame_fingerprint, model_fingerprint
from deep_learning_workflow.metrics import (
    DECISION_METRICS,
    GREATER_IS_BETTER,
    classification_summary,
    positive_index,
    predict_labels,
    score,
    stratified_bootstrap_weights,
    weighted_scores,
)
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.parameters import parse, schema_for
from deep_learning_workflow.pipelines.evaluation.parameters import (
    EvaluationParameters,
    ReleaseScenarios,
    ThresholdParameters,
)
from deep_learning_workflow.problem import Costs, ProblemDefinition

CANDIDATE = "model"
SCENARIOS_FILE = "release_scenarios (data/01_raw/release_scenarios.yml)"
# MLflow keeps tag values up to 8,000 characters; metadata lists are cut well below that.
TAG_LENGTH = 5000


# --- helpers ------------------------------------------------------------------------------------------------------


def _describe_split(
    frame: pd.DataFrame, labels: np.ndarray, classes: list[str], split: str
) -> dict:
    counts = {label: int(np.sum(labels == label)) for label in classes}
    return {
        "split": split,
        "rows": len(frame),
        "class_counts": counts,
        "fingerprint": frame_fingerprint(frame),
    }


def _labels(frame: pd.DataFrame, roles: ColumnRoles, classes: list[str], split: str) -> np.ndarray:
    if frame.empty:
        raise ValueError(f"Dataset '{split}' has no rows to evaluate on.")
    target = frame[roles.target]
    if target.isna().any():
        raise ValueError(
            f"Dataset '{split}' has {int(target.isna().sum())} rows without a '{roles.target}' label."
        )
    labels = target_labels(target).to_numpy()
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(
            f"Dataset '{split}' has target classes {unknown} that the model does not know (its classes: {classes})."
        )
    missing = [label for label in classes if label not in set(labels)]
    if missing:
        raise ValueError(
            f"Dataset '{split}' has no row of the classes {missing}: ROC-AUC and PR-AUC are undefined. "
            "Use a larger split (params:splitting) or a stratified split."
        )
    return labels


def _checked(
    probabilities: np.ndarray, rows: int, classes: list[str], candidate: str
) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.shape != (rows, len(classes)):
        raise ValueError(
            f"Candidate '{candidate}' returned probabilities of shape {probabilities.shape}; expected "
            f"({rows}, {len(classes)}) for the classes {classes}."
        )
    if not np.all(np.isfinite(probabilities)):
        raise ValueError(
            f"Candidate '{candidate}' returned probabilities that are NaN or infinite."
        )
    totals = probabilities.sum(axis=1, keepdims=True)
    if np.any(probabilities < 0) or np.any(np.abs(totals - 1) > 1e-3):
        raise ValueError(
            f"Candidate '{candidate}' returned rows that are not class probabilities "
            "(negative, or not summing to 1)."
        )
    # A float32 softmax sums to 1 only within ~1e-7; scikit-learn's log loss checks the sum more tightly.
    return probabilities / totals


def _baseline_probabilities(
    baseline: Any, features: pd.DataFrame, classes: list[str], name: str
) -> np.ndarray:
    """A fitted scikit-learn pipeline's probabilities, columns reordered to the model's class order."""
    known = [str(label) for label in getattr(baseline, "classes_", [])]
    if not known:
        raise ValueError(
            f"Baseline '{name}' in baseline_models is not a fitted classifier with classes_."
        )
    extra = sorted(set(known) - set(classes))
    if extra:
        raise ValueError(
            f"Baseline '{name}' predicts classes {extra} that the model does not have ({classes})."
        )
    raw = np.asarray(baseline.predict_proba(features), dtype="float64")
    probabilities = np.zeros((len(features), len(classes)))
    for position, label in enumerate(known):
        probabilities[:, classes.index(label)] = raw[:, position]
    return _checked(probabilities, len(features), classes, name)


def _predict_all(
    model: Any,
    baseline_models: Mapping[str, Any],
    frame: pd.DataFrame,
    roles: ColumnRoles,
    classes: list[str],
) -> dict[str, np.ndarray]:
    if CANDIDATE in baseline_models:
        raise ValueError(
            f"baseline_models must not have a baseline named '{CANDIDATE}': that name is the model's."
        )
    probabilities = {
        CANDIDATE: _checked(
            predict_probabilities(model, frame, roles), len(frame), classes, CANDIDATE
        )
    }
    features = frame[roles.features]
    for name in sorted(baseline_models):
        probabilities[name] = _baseline_probabilities(
            baseline_models[name], features, classes, name
        )
    return probabilities


def _setup(evaluation_setup: Mapping[str, Any]) -> tuple[ColumnRoles, list[str], str | None]:
    return (
        ColumnRoles(**evaluation_setup["roles"]),
        list(evaluation_setup["classes"]),
        evaluation_setup["positive_class"],
    )


def _row_costs(truth: np.ndarray, flagged: np.ndarray, costs: Costs) -> np.ndarray:
    """The cost of each record's decision: an error at its cost, a right decision nothing."""
    return np.where(flagged & ~truth, costs.false_positive, 0.0) + np.where(
        truth & ~flagged, costs.false_negative, 0.0
    )


def _cost_curve(
    truth: np.ndarray, scores: np.ndarray, costs: Costs
) -> tuple[np.ndarray, np.ndarray]:
    """Expected cost per record at every candidate threshold (a record is flagged when its score reaches it).

    The candidates are the distinct scores and 1.0, which flags no record unless a score is exactly 1.
    """
    candidates = np.unique(np.append(scores, 1.0))
    positives, negatives = np.sort(scores[truth]), np.sort(scores[~truth])
    missed = np.searchsorted(positives, candidates, side="left")
    false_alarms = len(negatives) - np.searchsorted(negatives, candidates, side="left")
    cost = costs.false_positive * false_alarms + costs.false_negative * missed
    return candidates, cost / len(scores)


def _min_cost_threshold(truth: np.ndarray, scores: np.ndarray, costs: Costs) -> dict:
    candidates, cost = _cost_curve(truth, scores, costs)
    # Of thresholds that cost the same, the highest: the same cost for the fewest flagged records.
    index = int(np.flatnonzero(np.isclose(cost, cost.min(), rtol=1e-12, atol=1e-12)).max())
    threshold = float(candidates[index])
    flagged = scores >= threshold
    true_positives = int(np.sum(flagged & truth))
    precision = true_positives / flagged.sum() if flagged.any() else 0.0
    recall = true_positives / truth.sum()
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "threshold": threshold,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def _cost_summary(truth: np.ndarray, scores: np.ndarray, threshold: float, costs: Costs) -> dict:
    flagged = scores >= threshold
    return {
        "expected_cost": float(np.mean(_row_costs(truth, flagged, costs))),
        "expected_cost_without_model": {
            "flag_none": float(costs.false_negative * np.mean(truth)),
            "flag_all": float(costs.false_positive * np.mean(~truth)),
        },
    }


def _costs_of(decision: Mapping[str, Any]) -> Costs | None:
    """The costs a decision threshold was chosen under (None when params:problem has none)."""
    costs = decision.get("costs")
    return None if costs is None else Costs(**costs)


def _choose_threshold(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    positive_class: str | None,
    rule: ThresholdParameters,
    costs: Costs | None = None,
) -> dict:
    """The decision rule of one candidate, chosen on its validation probabilities.

    With ``costs``, the expected cost per record at the threshold is reported whatever the rule.
    """
    if rule.rule == "min_expected_cost" and costs is None:
        raise ValueError(
            "params:evaluation.threshold.rule 'min_expected_cost' needs params:problem.costs (false_positive, "
            "false_negative); give them in parameters.yml, or choose another rule."
        )
    recorded = None if costs is None else costs.model_dump()
    if len(classes) != 2:
        note = (
            "Multi-class target: each record gets its most probable class; no threshold is tuned "
            "(params:evaluation.threshold applies to binary targets)."
        )
        if costs is not None:
            note += (
                " params:problem.costs apply to binary targets only: no expected cost is computed."
            )
        return {
            "rule": "argmax",
            "threshold": None,
            "target_met": True,
            "costs": recorded,
            "expected_cost": None,
            "note": note,
        }
    column = positive_index(classes, positive_class)
    truth = labels == classes[column]
    scores = probabilities[:, column]
    if rule.rule == "min_expected_cost":
        chosen = _min_cost_threshold(truth, scores, costs)
        flags_none = not np.any(scores >= chosen["threshold"])
        return {
            "rule": rule.rule,
            "target": None,
            "target_met": True,
            **chosen,
            "positive_class": classes[column],
            "costs": recorded,
            **_cost_summary(truth, scores, chosen["threshold"], costs),
            "note": (
                f"Flagging no record is cheapest on validation at these costs: the model's '{classes[column]}' "
                "decisions do not pay for themselves."
                if flags_none
                else f"Decide '{classes[column]}' when its probability is at least the threshold."
            ),
        }
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    # The curve's last point (precision 1, recall 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    target_met = True
    if rule.rule == "max_f1":
        index = int(np.argmax(f1))
    elif rule.rule == "target_recall":
        # Thresholds ascend and recall falls: the highest threshold that still reaches the target.
        index = int(np.flatnonzero(recall >= rule.target).max())
    else:
        reaching = np.flatnonzero(precision >= rule.target)
        target_met = bool(reaching.size)
        index = int(reaching.min()) if target_met else int(np.argmax(precision))
    threshold = float(thresholds[index])
    return {
        "rule": rule.rule,
        "target": rule.target,
        "target_met": target_met,
        "threshold": threshold,
        "positive_class": classes[column],
        "precision": float(precision[index]),
        "recall": float(recall[index]),
        "f1": float(f1[index]),
        "costs": recorded,
        **(
            {"expected_cost": None}
            if costs is None
            else _cost_summary(truth, scores, threshold, costs)
        ),
        "note": f"Decide '{classes[column]}' when its probability is at least the threshold.",
    }


def _candidate_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    positive_class: str | None,
    decision: Mapping[str, Any],
    costs: Costs | None = None,
) -> dict:
    """Every validation metric of one candidate: the same code for the model and each baseline."""
    scores = {
        name: score(name, labels, probabilities, classes, positive_class)
        for name in GREATER_IS_BETTER
    }
    decided = predict_labels(probabilities, classes, positive_class, decision["threshold"])
    summary = classification_summary(labels, decided, classes)
    expected_cost = None
    if costs is not None and len(classes) == 2:
        positive = classes[positive_index(classes, positive_class)]
        row_costs = _row_costs(labels == positive, decided == positive, costs)
        expected_cost = float(np.mean(row_costs))
    return {
        "scores": scores,
        "at_threshold": {
            "threshold": decision["threshold"],
            "rule": decision["rule"],
            **summary,
            "expected_cost": expected_cost,
        },
    }


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
    recorded = model_metadata.get("roles") or {}
    trained = {
        role: list(recorded[role])
        for role in ("numeric", "categorical", "text")
        if role in recorded
    }
    roles = resolve_roles(val, configured.model_copy(update=trained), "val")
    classes = model_metadata.get("classes")
    if not classes:
        raise ValueError(
            "model_metadata has no 'classes' (the order of the model's probability columns)."
        )
    classes = [str(label) for label in classes]
    positive_class = model_metadata.get("positive_class") or roles.positive_class
    if len(classes) == 2:
        positive_class = classes[positive_index(classes, positive_class)]
    elif positive_class is not None and positive_class not in classes:
        raise ValueError(
            f"positive_class '{positive_class}' is not one of the model's classes {classes}."
        )
    return {"roles": roles.model_dump(), "classes": classes, "positive_class": positive_class}


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
    roles, classes, positive_class = _setup(evaluation_setup)
    labels = _labels(val, roles, classes, "val")
    return {
        "labels": labels,
        "classes": classes,
        "positive_class": positive_class,
        "probabilities": _predict_all(model, baseline_models, val, roles, classes),
        "data": _describe_split(val, labels, classes, "val"),
        "model": {"fingerprint": model_fingerprint(model)},
    }


def choose_decision_threshold(
    validation_predictions: Mapping[str, Any], evaluation: dict, problem: dict | None = None
) -> dict:
    """Choose the model's decision threshold on the validation split (params:evaluation.threshold).

    Args:
        validation_predictions: output of :func:`predict_validation`.
        evaluation: ``params:evaluation``.
        problem: ``params:problem``; its ``costs`` (binary targets) drive the rule ``min_expected_cost`` and give
            the expected cost per record at the threshold whatever the rule.

    Returns:
        ``rule``, ``threshold`` (None for a multi-class target: argmax), ``target_met``, the validation precision,
        recall and F1 of the positive class at the threshold, the ``costs`` it was chosen under and the
        ``expected_cost`` per validation record at it (None without costs), beside the cost of flagging no record
        or every record (``expected_cost_without_model``).
    """
    params = parse(EvaluationParameters, evaluation, "evaluation")
    costs = None if problem is None else parse(ProblemDefinition, problem, "problem").costs
    decision = _choose_threshold(
        validation_predictions["labels"],
        validation_predictions["probabilities"][CANDIDATE],
        validation_predictions["classes"],
        validation_predictions["positive_class"],
        params.threshold,
        costs,
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
) -> tuple[dict, dict]:
    """Validation metrics of the model and of every baseline, computed by the same code.

    Threshold-free scores (ROC-AUC, PR-AUC, log loss, Brier; accuracy and macro F1 of the most probable class) and
    the decision metrics (accuracy, precision, recall, F1 per class and macro, confusion matrix) at each
    candidate's threshold: the model's chosen threshold, and for each baseline a threshold chosen by the same rule.
    When the model's threshold was chosen under costs (``params:problem.costs``), every candidate's
    ``at_threshold`` holds its ``expected_cost`` per record under them, and the baselines' thresholds are chosen
    under them too.

    Returns:
        The model's metrics and a dictionary of each baseline's metrics.
    """
    params = parse(EvaluationParameters, evaluation, "evaluation")
    costs = _costs_of(decision_threshold)
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
        **_candidate_metrics(
            labels, probabilities[CANDIDATE], classes, positive_class, decision_threshold, costs
        ),
    }
    baseline_metrics = {}
    for name in sorted(set(probabilities) - {CANDIDATE}):
        decision = _choose_threshold(
            labels, probabilities[name], classes, positive_class, params.threshold, costs
        )
        baseline_metrics[name] = {
            "candidate": name,
            **common,
            **_candidate_metrics(
                labels, probabilities[name], classes, positive_class, decision, costs
            ),
        }
    return model_metrics, baseline_metrics


# --- release gate -------------------------------------------------------------------------------------------------


def _scenario_frame(
    scenarios: ReleaseScenarios, roles: ColumnRoles
) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """All scenario records in one frame (one batch for the model) and each scenario's rows."""
    features = roles.features
    numeric = set(roles.numeric or [])

    def complete(record: dict, where: str) -> dict:
        unknown = [column for column in record if column not in features]
        if unknown:
            raise ValueError(
                f"{SCENARIOS_FILE}: {where} names columns that are not feature columns of the model: {unknown}. "
                f"The feature columns are {features}."
            )
        text_numbers = [c for c in record if c in numeric and isinstance(record[c], str)]
        if text_numbers:
            raise ValueError(
                f"{SCENARIOS_FILE}: {where} gives text for the numeric columns {text_numbers}."
            )
        return record

    defaults = complete(dict(scenarios.defaults), "defaults")
    rows: list[dict] = []
    spans: list[tuple[int, int]] = []
    for position, scenario in enumerate(scenarios.scenarios):
        where = f"scenarios[{position}] ('{scenario.name}')"
        record = {**defaults, **complete(dict(scenario.record), f"{where}.record")}
        steps = scenario.steps or [{}]
        start = len(rows)
        for number, step in enumerate(steps):
            row = {**record, **complete(dict(step), f"{where}.steps[{number}]")}
            missing = [column for column in features if column not in row]
            if missing:
                raise ValueError(
                    f"{SCENARIOS_FILE}: {where} gives no value for {missing}; add them to 'defaults' or to the "
                    "scenario's record (null for a missing value)."
                )
            rows.append(row)
        spans.append((start, len(rows)))
    columns = {}
    for column in features:
        values = [row[column] for row in rows]
        if column in numeric:
            columns[column] = pd.to_numeric(pd.Series(values, dtype="object")).astype("float64")
        else:
            # As the training data reads: the category 1 of an integer column is the string "1".
            columns[column] = pd.Series(
                [None if v is None else str(v) for v in values], dtype="object"
            )
    return pd.DataFrame(columns), spans


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
            :class:`~deep_learning_workflow.pipelines.evaluation.parameters.ReleaseScenarios`).
        decision_threshold: output of :func:`choose_decision_threshold` (expected labels use the model's decision).
        evaluation_setup: output of :func:`resolve_evaluation_setup`.

    Returns:
        One result per scenario: ``name``, ``kind``, ``passed``, ``detail`` and the probabilities seen.

    Raises:
        ValueError: naming the scenario and key when the file is invalid, names a column that is not a feature,
            or an expected class that the model does not have.
    """
    scenarios = parse(ReleaseScenarios, release_scenarios, SCENARIOS_FILE)
    roles, classes, positive_class = _setup(evaluation_setup)
    for position, scenario in enumerate(scenarios.scenarios):
        for key in ("expect_label", "probability_of"):
            value = getattr(scenario, key)
            if value is not None and value not in classes:
                raise ValueError(
                    f"{SCENARIOS_FILE}: scenarios[{position}] ('{scenario.name}').{key} is '{value}', "
                    f"not one of the model's classes {classes}."
                )
    frame, spans = _scenario_frame(scenarios, roles)
    probabilities = _checked(
        predict_probabilities(model, frame, roles), len(frame), classes, CANDIDATE
    )
    threshold = decision_threshold.get("threshold")
    decided = predict_labels(probabilities, classes, positive_class, threshold)
    rule = "argmax" if threshold is None else f"threshold {threshold:.4f}"
    results = []
    for scenario, (start, end) in zip(scenarios.scenarios, spans, strict=True):
        if scenario.expect_label is not None:
            shown = {
                label: round(float(p), 4)
                for label, p in zip(classes, probabilities[start], strict=True)
            }
            passed = decided[start] == scenario.expect_label
            results.append(
                {
                    "name": scenario.name,
                    "kind": "expected_label",
                    "passed": bool(passed),
                    "probabilities": shown,
                    "detail": f"decided '{decided[start]}' (probabilities {shown}, {rule}); "
                    f"expected '{scenario.expect_label}'",
                }
            )
            continue
        label = scenario.probability_of or positive_class or classes[-1]
        path = probabilities[start:end, classes.index(label)]
        changes = np.diff(path)
        worst = float(changes.max() if scenario.expect == "not_increasing" else -changes.min())
        passed = worst <= scenario.tolerance
        results.append(
            {
                "name": scenario.name,
                "kind": "expected_direction",
                "passed": bool(passed),
                "probabilities": [round(float(p), 4) for p in path],
                "detail": f"P({label}) over the steps {[round(float(p), 4) for p in path]} must be "
                f"{scenario.expect.replace('_', ' ')} within {scenario.tolerance}; "
                f"largest move the wrong way {max(worst, 0.0):.4f}",
            }
        )
    return results


def _comparison(value: float, reference: float, greater: bool) -> bool:
    return value >= reference if greater else value <= reference


def evaluate_release_gate(
    validation_metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    scenario_results: list[dict],
    previous_release: Mapping[str, Any] | None,
    evaluation: dict,
    problem: dict,
) -> dict:
    """Decide on the validation split whether the model may be released, with every reason.

    The model must reach the success threshold agreed in ``params:problem.success`` (when one is set), beat every
    baseline on the primary metric (``params:problem.primary_metric``) by
    ``release_gate.baseline_margin``, meet the ``floors`` and ``ceilings``, not fall more than
    ``previous_release_tolerance`` below the previously released model (when one was released), reach the threshold
    rule's target (for target rules) and pass every release scenario.

    Args:
        validation_metrics: the model's validation metrics.
        baseline_metrics: each baseline's validation metrics.
        decision_threshold: the chosen decision threshold.
        scenario_results: output of :func:`run_release_scenarios`.
        previous_release: the record of the released model (``data/06_models/released/release.json``); None when
            no model was released yet.
        evaluation: ``params:evaluation``.
        problem: ``params:problem``.

    Returns:
        ``passed``, ``verdict`` (release/reject), every check with its reason, the names of the failed checks and
        ``success`` (the agreed metric and value, the model's validation value and whether it is ``met``; None
        when no success threshold is set).
    """
    gate = parse(EvaluationParameters, evaluation, "evaluation").release_gate
    definition = parse(ProblemDefinition, problem, "problem")
    primary = definition.primary_metric
    greater = GREATER_IS_BETTER[primary]
    better, sign = (">=", "+") if greater else ("<=", "-")
    scores = validation_metrics["scores"]
    candidate = scores[primary]
    checks: list[dict] = []

    def check(name: str, passed: bool, detail: str) -> None:
        checks.append({"check": name, "passed": bool(passed), "detail": detail})

    non_finite = sorted(name for name, value in scores.items() if not np.isfinite(value))
    if non_finite:
        check("finite metrics", False, f"the validation metrics {non_finite} are NaN or infinite")
    success = None
    if definition.success is not None:
        agreed = definition.success
        value = scores[agreed.metric]
        success = {
            "metric": agreed.metric,
            "minimum": agreed.minimum,
            "maximum": agreed.maximum,
            "value": value,
            "met": agreed.met_by(value),
        }
        check(
            f"success {agreed.metric}",
            success["met"],
            f"{agreed.metric} {value:.4f} must be {'>=' if agreed.minimum is not None else '<='} "
            f"{agreed.bound:g}, the success threshold agreed with the stakeholders (params:problem.success)",
        )
    if not baseline_metrics:
        check(
            "beats baselines",
            False,
            "baseline_models is empty: the gate needs at least one baseline to beat",
        )
    margin = gate.baseline_margin
    for name, metrics in sorted(baseline_metrics.items()):
        reference = metrics["scores"][primary]
        needed = reference + margin if greater else reference - margin
        check(
            f"beats baseline {name}",
            _comparison(candidate, needed, greater),
            f"{primary} {candidate:.4f} must be {better} {needed:.4f} ({name} {reference:.4f} {sign} margin {margin})",
        )
    for name, floor in sorted(gate.floors.items()):
        check(
            f"floor {name}", scores[name] >= floor, f"{name} {scores[name]:.4f} must be >= {floor}"
        )
    for name, ceiling in sorted(gate.ceilings.items()):
        check(
            f"ceiling {name}",
            scores[name] <= ceiling,
            f"{name} {scores[name]:.4f} must be <= {ceiling}",
        )
    if decision_threshold.get("rule") in ("target_recall", "target_precision"):
        metric = decision_threshold["rule"].removeprefix("target_")
        check(
            f"threshold {decision_threshold['rule']}",
            decision_threshold["target_met"],
            f"{metric} {decision_threshold[metric]:.4f} at threshold {decision_threshold['threshold']:.4f}; "
            f"target {decision_threshold['target']}",
        )
    released = previous_release if previous_release and previous_release.get("released") else None
    tolerance = gate.previous_release_tolerance
    if released is None:
        check("previous release", True, "no model was released before: this is the first release")
    elif primary not in released.get("validation_scores", {}):
        check(
            "previous release",
            False,
            f"the released model's record has no validation {primary}; compare by hand, then delete "
            "data/06_models/released/release.json to release anew",
        )
    else:
        reference = released["validation_scores"][primary]
        needed = reference - tolerance if greater else reference + tolerance
        same_split = (
            released.get("validation_data", {}).get("fingerprint")
            == validation_metrics["data"]["fingerprint"]
        )
        note = (
            ""
            if same_split
            else " (the released model was validated on a different validation split)"
        )
        check(
            "previous release",
            _comparison(candidate, needed, greater),
            f"{primary} {candidate:.4f} must be {better} {needed:.4f} (released model {reference:.4f} "
            f"{'-' if greater else '+'} tolerance {tolerance}){note}",
        )
    if not scenario_results:
        check("release scenarios", False, "no release scenario was run")
    for result in scenario_results:
        check(f"scenario {result['name']}", result["passed"], result["detail"])
    failed = [item["check"] for item in checks if not item["passed"]]
    return {
        "passed": not failed,
        "verdict": "release" if not failed else "reject",
        "split": "val",
        "primary_metric": primary,
        "model_value": candidate,
        "success": success,
        "model_fingerprint": validation_metrics["model"]["fingerprint"],
        "failed_checks": failed,
        "checks": checks,
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


def _intervals(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    positive_class: str | None,
    threshold: float | None,
    weights: np.ndarray,
    confidence: float,
) -> tuple[dict, dict[str, np.ndarray]]:
    names = [*GREATER_IS_BETTER, *DECISION_METRICS]
    point = weighted_scores(
        names, labels, probabilities, classes, positive_class, np.ones((1, len(labels))), threshold
    )
    resampled = weighted_scores(
        names, labels, probabilities, classes, positive_class, weights, threshold
    )
    tail = (1 - confidence) / 2 * 100
    metrics = {
        name: {
            "value": float(point[name][0]),
            "low": float(np.percentile(resampled[name], tail)),
            "high": float(np.percentile(resampled[name], 100 - tail)),
        }
        for name in names
    }
    return metrics, resampled


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
    stratified percentile bootstrap confidence intervals (``params:evaluation.bootstrap``, seeded with
    ``params:seed``); every candidate is scored on the same resamples, so the model's lead over each baseline
    gets an interval too.

    When the threshold was chosen under costs (``params:problem.costs``, binary targets), every candidate's
    metrics include ``expected_cost`` per test record at its threshold, with its interval.

    Returns:
        Test metrics of the model (value, low, high), of each baseline, the model-minus-baseline difference on the
        primary metric, the model's decisions at its threshold, the data's fingerprint and the gate's verdict.
    """
    params = parse(EvaluationParameters, evaluation, "evaluation")
    seed = parse(schema_for("seed"), seed, "seed")
    roles, classes, positive_class = _setup(evaluation_setup)
    labels = _labels(test, roles, classes, "test")
    probabilities = _predict_all(model, baseline_models, test, roles, classes)
    weights = stratified_bootstrap_weights(labels, params.bootstrap.resamples, seed)
    thresholds = {CANDIDATE: decision_threshold.get("threshold")}
    thresholds |= {
        name: metrics["at_threshold"]["threshold"] for name, metrics in baseline_metrics.items()
    }
    missing = sorted(set(probabilities) - set(thresholds))
    if missing:
        raise ValueError(f"baseline_metrics has no validation metrics for the baselines {missing}.")
    primary = release_gate["primary_metric"]
    results: dict[str, dict] = {}
    resampled: dict[str, dict[str, np.ndarray]] = {}
    for name, candidate_probabilities in probabilities.items():
        results[name], resampled[name] = _intervals(
            labels,
            candidate_probabilities,
            classes,
            positive_class,
            thresholds[name],
            weights,
            params.bootstrap.confidence,
        )
    tail = (1 - params.bootstrap.confidence) / 2 * 100
    costs = _costs_of(decision_threshold)
    if costs is not None and len(classes) == 2:
        positive = classes[positive_index(classes, positive_class)]
        for name, candidate_probabilities in probabilities.items():
            decided = predict_labels(
                candidate_probabilities, classes, positive_class, thresholds[name]
            )
            row_costs = _row_costs(labels == positive, decided == positive, costs)
            resampled_costs = weights @ row_costs / weights.sum(axis=1)
            results[name]["expected_cost"] = {
                "value": float(np.mean(row_costs)),
                "low": float(np.percentile(resampled_costs, tail)),
                "high": float(np.percentile(resampled_costs, 100 - tail)),
            }
    differences = {}
    for name in sorted(set(probabilities) - {CANDIDATE}):
        difference = resampled[CANDIDATE][primary] - resampled[name][primary]
        differences[name] = {
            "metric": primary,
            "value": results[CANDIDATE][primary]["value"] - results[name][primary]["value"],
            "low": float(np.percentile(difference, tail)),
            "high": float(np.percentile(difference, 100 - tail)),
        }
    decided = predict_labels(
        probabilities[CANDIDATE], classes, positive_class, thresholds[CANDIDATE]
    )
    return {
        "split": "test",
        "classes": classes,
        "positive_class": positive_class,
        "primary_metric": primary,
        "data": _describe_split(test, labels, classes, "test"),
        "release_gate_verdict": release_gate["verdict"],
        "decision_threshold": thresholds[CANDIDATE],
        "costs": None if costs is None else costs.model_dump(),
        "bootstrap": {
            "method": "stratified percentile bootstrap",
            "resamples": params.bootstrap.resamples,
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
        "model_minus_baseline": differences,
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

    def metric(value: float) -> dict:
        return {"value": float(value), "step": 0}

    metrics = {f"val.{name}": metric(value) for name, value in validation_metrics["scores"].items()}
    for name, baseline in baseline_metrics.items():
        metrics |= {
            f"val.baseline.{name}.{key}": metric(value) for key, value in baseline["scores"].items()
        }
    metrics |= {
        f"test.{name}": metric(values["value"])
        for name, values in test_metrics["model"]["metrics"].items()
    }
    metrics |= {
        f"test.{name}.low": metric(values["low"])
        for name, values in test_metrics["model"]["metrics"].items()
    }
    metrics |= {
        f"test.{name}.high": metric(values["high"])
        for name, values in test_metrics["model"]["metrics"].items()
    }
    if decision_threshold.get("threshold") is not None:
        metrics["decision_threshold"] = metric(decision_threshold["threshold"])
    if validation_metrics["at_threshold"].get("expected_cost") is not None:
        metrics["val.expected_cost"] = metric(validation_metrics["at_threshold"]["expected_cost"])
    metrics["release_gate.passed"] = metric(release_gate["passed"])
    metrics["release_gate.failed_checks"] = metric(len(release_gate["failed_checks"]))
    tags = {
        "model.fingerprint": release_gate["model_fingerprint"],
        "data.val.fingerprint": validation_metrics["data"]["fingerprint"],
        "data.val.rows": str(validation_metrics["data"]["rows"]),
        "data.test.fingerprint": test_metrics["data"]["fingerprint"],
        "data.test.rows": str(test_metrics["data"]["rows"]),
        "release_gate.verdict": release_gate["verdict"],
        "primary_metric": release_gate["primary_metric"],
    }
    # The model's identity and lineage; its training parameters are logged as the run's parameters already.
    for key, value in model_metadata.items():
        entries = {key: value} if isinstance(value, str | int | float | bool | list) else {}
        if key == "versions" and isinstance(value, Mapping):
            entries = {f"versions.{library}": version for library, version in value.items()}
        for name, item in entries.items():
            shown = item if isinstance(item, str) else json.dumps(item, default=str)
            tags[f"model.{name}"] = shown[:TAG_LENGTH]
    return metrics, tags
