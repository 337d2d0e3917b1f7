"""The release gate: paired bootstrap comparisons with the baselines, and every check with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deep_learning_workflow.bootstrap import bootstrap_scores, percentile_interval, weighted_scores
from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.pipelines.evaluation.predictions import CANDIDATE
from deep_learning_workflow.pipelines.evaluation.schema import ReleaseGateParameters
from deep_learning_workflow.problem import ProblemDefinition

RULES = {
    "superior": "the whole interval of the model's lead must lie above +margin",
    "non_inferior": "the whole interval of the model's lead must lie above -margin",
    "point": "the model's lead (point estimates) must be at least the margin",
}


def compared_metrics(gate: ReleaseGateParameters, primary: str) -> dict[str, float]:
    """The metrics the model is compared on with every baseline, each with its margin; the primary first."""
    return {primary: gate.margin, **{k: v for k, v in gate.also_compare.items() if k != primary}}


def lead_passes(rule: str, lead: float, low: float, margin: float) -> bool:
    """Whether a lead (model better when positive) and the lower bound of its interval pass ``rule``."""
    if rule == "superior":
        return low > margin
    if rule == "non_inferior":
        return low > -margin
    return lead >= margin


def compare_candidates(
    labels: np.ndarray,
    candidates: Mapping[str, tuple[np.ndarray, float | None]],
    classes: list[str],
    positive_class: str | None,
    margins: Mapping[str, float],
    gate: ReleaseGateParameters,
    seed: int,
    max_rows: int | None = None,
) -> list[dict]:
    """The model against every baseline on each metric: its lead on the paired bootstrap resamples, and the rule.

    The lead is the model's score minus the baseline's, sign-flipped for metrics where lower is better, so a
    positive lead always means the model is better. Beyond ``max_rows`` rows, the m-out-of-n bootstrap of
    :func:`~deep_learning_workflow.bootstrap.bootstrap_scores`.
    """
    metrics = list(margins)
    resampled = bootstrap_scores(
        metrics,
        labels,
        candidates,
        classes,
        positive_class,
        gate.resamples,
        seed,
        max_rows=max_rows,
    )
    ones = np.ones((1, len(labels)))
    points = {
        name: weighted_scores(
            metrics, labels, probabilities, classes, positive_class, ones, threshold
        )
        for name, (probabilities, threshold) in candidates.items()
    }
    comparisons = []
    for name in sorted(set(candidates) - {CANDIDATE}):
        for metric, margin in margins.items():
            sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
            lead = sign * (points[CANDIDATE][metric][0] - points[name][metric][0])
            low, high = percentile_interval(
                sign * (resampled[CANDIDATE][metric] - resampled[name][metric]), gate.confidence
            )
            comparisons.append(
                {
                    "baseline": name,
                    "metric": metric,
                    "model": float(points[CANDIDATE][metric][0]),
                    "baseline_value": float(points[name][metric][0]),
                    "lead": float(lead),
                    "lead_low": low,
                    "lead_high": high,
                    "greater_is_better": GREATER_IS_BETTER[metric],
                    "rule": gate.rule,
                    "margin": margin,
                    "passed": lead_passes(gate.rule, float(lead), low, margin),
                }
            )
    return comparisons


def _check(name: str, passed: bool, detail: str) -> dict:
    return {"check": name, "passed": bool(passed), "detail": detail}


def comparison_checks(comparisons: list[dict], confidence: float) -> list[dict]:
    """One check per baseline and metric, saying the lead, its interval and what the rule needed."""
    if not comparisons:
        return [
            _check(
                "beats baselines",
                False,
                "baseline_models is empty: the gate needs at least one baseline to compare with",
            )
        ]
    checks = []
    for item in comparisons:
        direction = "higher" if item["greater_is_better"] else "lower"
        checks.append(
            _check(
                f"{item['metric']} vs {item['baseline']}",
                item["passed"],
                f"{item['metric']} model {item['model']:.4f}, {item['baseline']} {item['baseline_value']:.4f} "
                f"({direction} is better): lead {item['lead']:+.4f}, {confidence:.0%} interval "
                f"[{item['lead_low']:+.4f}, {item['lead_high']:+.4f}]; rule {item['rule']}: "
                f"{RULES[item['rule']]} (margin {item['margin']:g})",
            )
        )
    return checks


def success_check(
    definition: ProblemDefinition, scores: Mapping[str, float]
) -> tuple[list, dict | None]:
    """The success threshold agreed with the stakeholders (``params:problem.success``), when one is set."""
    if definition.success is None:
        return [], None
    agreed = definition.success
    value = scores[agreed.metric]
    success = {
        "metric": agreed.metric,
        "minimum": agreed.minimum,
        "maximum": agreed.maximum,
        "value": value,
        "met": agreed.met_by(value),
    }
    detail = (
        f"{agreed.metric} {value:.4f} must be {'>=' if agreed.minimum is not None else '<='} "
        f"{agreed.bound:g}, the success threshold agreed with the stakeholders (params:problem.success)"
    )
    return [_check(f"success {agreed.metric}", success["met"], detail)], success


def limit_checks(gate: ReleaseGateParameters, scores: Mapping[str, float]) -> list[dict]:
    """Finite scores, the floors and the ceilings."""
    checks = []
    non_finite = sorted(name for name, value in scores.items() if not np.isfinite(value))
    if non_finite:
        checks.append(
            _check(
                "finite metrics", False, f"the validation metrics {non_finite} are NaN or infinite"
            )
        )
    for name, floor in sorted(gate.floors.items()):
        checks.append(
            _check(
                f"floor {name}",
                scores[name] >= floor,
                f"{name} {scores[name]:.4f} must be >= {floor}",
            )
        )
    for name, ceiling in sorted(gate.ceilings.items()):
        checks.append(
            _check(
                f"ceiling {name}",
                scores[name] <= ceiling,
                f"{name} {scores[name]:.4f} must be <= {ceiling}",
            )
        )
    return checks


def threshold_check(decision_threshold: Mapping[str, Any]) -> list[dict]:
    """A target rule's target (recall or precision) must be reached."""
    rule = decision_threshold.get("rule")
    if rule not in ("target_recall", "target_precision"):
        return []
    metric = rule.removeprefix("target_")
    detail = (
        f"{metric} {decision_threshold[metric]:.4f} at threshold {decision_threshold['threshold']:.4f}; "
        f"target {decision_threshold['target']}"
    )
    return [_check(f"threshold {rule}", decision_threshold["target_met"], detail)]


def previous_release_check(
    previous_release: Mapping[str, Any] | None,
    validation_metrics: Mapping[str, Any],
    primary: str,
    tolerance: float,
) -> dict:
    """The model may not fall more than ``tolerance`` below the released model on the primary metric."""
    released = previous_release if previous_release and previous_release.get("released") else None
    if released is None:
        return _check(
            "previous release", True, "no model was released before: this is the first release"
        )
    if primary not in released.get("validation_scores", {}):
        return _check(
            "previous release",
            False,
            f"the released model's record has no validation {primary}; compare by hand, then delete "
            "data/06_models/released/release.json to release anew",
        )
    greater = GREATER_IS_BETTER[primary]
    candidate = validation_metrics["scores"][primary]
    reference = released["validation_scores"][primary]
    needed = reference - tolerance if greater else reference + tolerance
    same_split = (
        released.get("validation_data", {}).get("fingerprint")
        == validation_metrics["data"]["fingerprint"]
    )
    note = (
        "" if same_split else " (the released model was validated on a different validation split)"
    )
    return _check(
        "previous release",
        candidate >= needed if greater else candidate <= needed,
        f"{primary} {candidate:.4f} must be {'>=' if greater else '<='} {needed:.4f} (released model "
        f"{reference:.4f} {'-' if greater else '+'} tolerance {tolerance}){note}",
    )


def scenario_checks(scenario_results: list[dict]) -> list[dict]:
    """Every release scenario must pass, and at least one must have run."""
    if not scenario_results:
        return [_check("release scenarios", False, "no release scenario was run")]
    return [
        _check(f"scenario {result['name']}", result["passed"], result["detail"])
        for result in scenario_results
    ]


def selection_note(seed_report: Mapping[str, Any] | None) -> dict:
    """Whether the validation figures are optimistic: the model was the best of several seeds on validation."""
    biased = bool((seed_report or {}).get("validation_selection_bias", False))
    note = (
        "The model was kept as the best of several seeds on the validation split, so its validation figures are "
        "optimistic; the test split's figures are the unbiased ones."
        if biased
        else None
    )
    return {"validation_optimistic": biased, "validation_note": note}
