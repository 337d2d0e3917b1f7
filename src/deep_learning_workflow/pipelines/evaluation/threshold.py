"""The decision rule: the threshold of a binary target chosen on validation, its costs, and the scores at it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from deep_learning_workflow.metrics import (
    GREATER_IS_BETTER,
    classification_summary,
    positive_index,
    predict_labels,
    score,
)
from deep_learning_workflow.pipelines.evaluation.schema import ThresholdParameters
from deep_learning_workflow.pipelines.evaluation.threshold_bootstrap import (
    bootstrap_picks,
    summarise_picks,
)
from deep_learning_workflow.problem import Costs

# Scores of the decisions rather than of the probabilities: taken at the decision threshold.
DECIDED_SCORES = ("accuracy", "f1_macro")


def row_costs(truth: np.ndarray, flagged: np.ndarray, costs: Costs) -> np.ndarray:
    """The cost of each record's decision: an error at its cost, a right decision nothing."""
    return np.where(flagged & ~truth, costs.false_positive, 0.0) + np.where(
        truth & ~flagged, costs.false_negative, 0.0
    )


def cost_curve(
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


def min_cost_threshold(truth: np.ndarray, scores: np.ndarray, costs: Costs) -> dict:
    candidates, cost = cost_curve(truth, scores, costs)
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


def cost_summary(truth: np.ndarray, scores: np.ndarray, threshold: float, costs: Costs) -> dict:
    flagged = scores >= threshold
    return {
        "expected_cost": float(np.mean(row_costs(truth, flagged, costs))),
        "expected_cost_without_model": {
            "flag_none": float(costs.false_negative * np.mean(truth)),
            "flag_all": float(costs.false_positive * np.mean(~truth)),
        },
    }


def costs_of(decision: Mapping[str, Any]) -> Costs | None:
    """The costs a decision threshold was chosen under (None when params:problem has none)."""
    costs = decision.get("costs")
    return None if costs is None else Costs(**costs)


def _argmax_decision(recorded: dict | None) -> dict:
    note = (
        "Multi-class target: each record gets its most probable class; no threshold is tuned "
        "(params:evaluation.threshold applies to binary targets)."
    )
    if recorded is not None:
        note += " params:problem.costs apply to binary targets only: no expected cost is computed."
    return {
        "rule": "argmax",
        "threshold": None,
        "target_met": True,
        "costs": recorded,
        "expected_cost": None,
        "note": note,
    }


def _min_cost_decision(truth: np.ndarray, scores: np.ndarray, positive: str, costs: Costs) -> dict:
    chosen = min_cost_threshold(truth, scores, costs)
    flags_none = not np.any(scores >= chosen["threshold"])
    return {
        "rule": "min_expected_cost",
        "target": None,
        "target_met": True,
        **chosen,
        "positive_class": positive,
        "costs": costs.model_dump(),
        **cost_summary(truth, scores, chosen["threshold"], costs),
        "note": (
            f"Flagging no record is cheapest on validation at these costs: the model's '{positive}' "
            "decisions do not pay for themselves."
            if flags_none
            else f"Decide '{positive}' when its probability is at least the threshold."
        ),
    }


def _curve_decision(
    truth: np.ndarray,
    scores: np.ndarray,
    positive: str,
    rule: ThresholdParameters,
    costs: Costs | None,
) -> dict:
    """The rules read off the precision-recall curve: max_f1, target_recall and target_precision."""
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
        "positive_class": positive,
        "precision": float(precision[index]),
        "recall": float(recall[index]),
        "f1": float(f1[index]),
        "costs": None if costs is None else costs.model_dump(),
        **(
            {"expected_cost": None}
            if costs is None
            else cost_summary(truth, scores, threshold, costs)
        ),
        "note": f"Decide '{positive}' when its probability is at least the threshold.",
    }


def positive_scores(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Precision, recall and F1 of the positive class when records scoring at least ``threshold`` are flagged."""
    flagged = scores >= threshold
    true_positives = int(np.sum(flagged & truth))
    precision = true_positives / flagged.sum() if flagged.any() else 0.0
    recall = true_positives / truth.sum() if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def _bagged_decision(
    single: dict,
    truth: np.ndarray,
    scores: np.ndarray,
    rule: ThresholdParameters,
    costs: Costs | None,
    seed: int,
) -> dict:
    """The single pick's decision moved to the median of the rule's picks on bootstrap resamples of the rows.

    The scores at the threshold are those of the whole validation split. ``target_met`` stays the single pick's:
    whether the validation split can reach the target at all; at the median the target is reached on about half of
    the resamples, by construction.
    """
    bagged = summarise_picks(bootstrap_picks(truth, scores, rule, costs, seed), single["threshold"])
    threshold = bagged["threshold"]
    decision = {**single, "threshold": threshold, **positive_scores(truth, scores, threshold)}
    if costs is not None:
        decision |= cost_summary(truth, scores, threshold, costs)
    if rule.rule == "min_expected_cost" and not np.any(scores >= threshold):
        decision["note"] = (
            f"Flagging no record is cheapest on validation at these costs: the model's "
            f"'{single['positive_class']}' decisions do not pay for themselves."
        )
    return {**decision, "threshold_spread": bagged["spread"]}


def choose_threshold(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    positive_class: str | None,
    rule: ThresholdParameters,
    costs: Costs | None = None,
    seed: int = 0,
) -> dict:
    """The decision rule of one candidate, chosen on its validation probabilities.

    With ``rule.bootstrap`` > 0 the threshold is the median of the rule's picks on that many bootstrap resamples
    of the validation rows (seeded with ``seed``), and ``threshold_spread`` records how far the picks spread.
    With ``costs``, the expected cost per record at the threshold is reported whatever the rule.
    """
    if rule.rule == "min_expected_cost" and costs is None:
        raise ValueError(
            "params:evaluation.threshold.rule 'min_expected_cost' needs params:problem.costs (false_positive, "
            "false_negative); give them in parameters.yml, or choose another rule."
        )
    if len(classes) != 2:
        return _argmax_decision(None if costs is None else costs.model_dump())
    column = positive_index(classes, positive_class)
    truth = labels == classes[column]
    scores = probabilities[:, column]
    if rule.rule == "min_expected_cost":
        single = _min_cost_decision(truth, scores, classes[column], costs)
    else:
        single = _curve_decision(truth, scores, classes[column], rule, costs)
    if rule.bootstrap == 0 or not truth.any():
        return single
    return _bagged_decision(single, truth, scores, rule, costs, seed)


def candidate_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    positive_class: str | None,
    decision: Mapping[str, Any],
    costs: Costs | None = None,
) -> dict:
    """Every validation metric of one candidate: the same code for the model and each baseline.

    The threshold-free scores (ROC-AUC, PR-AUC, log loss, Brier) come from the probabilities; accuracy and macro F1
    in ``scores`` are those of the candidate's decisions at its threshold (argmax for a multi-class target), the
    same decisions ``at_threshold`` describes.
    """
    decided = predict_labels(probabilities, classes, positive_class, decision["threshold"])
    summary = classification_summary(labels, decided, classes)
    scores = {
        name: score(name, labels, probabilities, classes, positive_class)
        for name in GREATER_IS_BETTER
        if name not in DECIDED_SCORES
    }
    scores |= {"accuracy": summary["accuracy"], "f1_macro": summary["f1"]["macro"]}
    expected_cost = None
    if costs is not None and len(classes) == 2:
        positive = classes[positive_index(classes, positive_class)]
        expected_cost = float(np.mean(row_costs(labels == positive, decided == positive, costs)))
    return {
        "scores": {name: scores[name] for name in GREATER_IS_BETTER},
        "at_threshold": {
            "threshold": decision["threshold"],
            "rule": decision["rule"],
            **summary,
            "expected_cost": expected_cost,
        },
    }
