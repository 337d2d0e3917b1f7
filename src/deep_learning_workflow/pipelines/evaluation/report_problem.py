"""The report's problem definition (metric, success threshold, costs) and its list of limitations."""

from __future__ import annotations

from collections.abc import Mapping

from deep_learning_workflow.pipelines.evaluation.report_html import (
    escape_text,
    format_amount,
    format_number,
    html_table,
)
from deep_learning_workflow.pipelines.evaluation.schema import EvaluationParameters
from deep_learning_workflow.pipelines.evaluation.wording import (
    METRIC_MEANINGS,
    METRIC_NAMES,
    verdict_sentence,
)
from deep_learning_workflow.problem import ProblemDefinition


def list_limitations(
    params: EvaluationParameters,
    validation_metrics: Mapping,
    test_metrics: Mapping,
    release_gate: Mapping,
) -> list[str]:
    found = []
    test_rows = test_metrics["data"]["rows"]
    smallest = min(test_metrics["data"]["class_counts"].values())
    if smallest < 100:
        found.append(
            f"The test split has only {smallest} records of its rarest class: its metrics are uncertain (see the "
            "width of the intervals)."
        )
    primary = test_metrics["primary_metric"]
    interval = test_metrics["model"]["metrics"][primary]
    found.append(
        f"On {test_rows:,} test records the {METRIC_NAMES[primary]} is known to within about "
        f"±{(interval['high'] - interval['low']) / 2:.3f}; differences between models smaller than that are noise."
    )
    if not release_gate["passed"]:
        found.append(verdict_sentence(release_gate))
    found.append(
        "All figures come from historical data split at random; they hold for future records only as long as those "
        "resemble the past (watch the drift report)."
    )
    return found + list(params.report.limitations)


def _success_row(
    definition: ProblemDefinition, release_gate: Mapping, test_metrics: Mapping
) -> list[str]:
    success = definition.success
    if success is None:
        return [
            "Success threshold",
            "none agreed; set <code>problem.success</code> (e.g. <code>{metric: pr_auc, minimum: 0.6}</code>)",
        ]
    name = METRIC_NAMES[success.metric]
    sign = "≥" if success.minimum is not None else "≤"
    parts = [f"<b>{name} {sign} {success.bound:g}</b>, agreed with the stakeholders."]
    judged = release_gate.get("success")
    if judged is not None:
        verdict = "✅ met" if judged["met"] else "❌ not met"
        parts.append(
            f"Validation: {format_number(judged['value'])}, <b>{verdict}</b> (checked by the release gate)."
        )
    tested = test_metrics["model"]["metrics"].get(success.metric)
    if tested is not None:
        level = f"{test_metrics['bootstrap']['confidence']:.0%}"
        ends = [success.met_by(tested["low"]), success.met_by(tested["high"])]
        reading = (
            "met"
            if all(ends)
            else "not met"
            if not any(ends)
            else "uncertain: the interval contains the threshold"
        )
        parts.append(
            f"Test: {format_number(tested['value'])} ({level} confidence interval {format_number(tested['low'])} – "
            f"{format_number(tested['high'])}), {reading}."
        )
    return ["Success threshold", " ".join(parts)]


def _cost_rows(
    definition: ProblemDefinition,
    decision_threshold: Mapping,
    test_metrics: Mapping,
    positive: str | None,
) -> list[list[str]]:
    costs = definition.costs
    if costs is None:
        return [["Cost of an error", "not given; set <code>problem.costs</code> (binary targets)"]]
    rows = [
        [
            "Cost of an error",
            f"a false positive (a record flagged {escape_text(positive)} that is not) costs "
            f"<b>{format_amount(costs.false_positive, costs)}</b>; a false negative (a {escape_text(positive)} record not "
            f"flagged) <b>{format_amount(costs.false_negative, costs)}</b>",
        ]
    ]
    if decision_threshold.get("expected_cost") is None:
        rows[0][1] = (
            f"false positive {format_amount(costs.false_positive, costs)}, false negative "
            f"{format_amount(costs.false_negative, costs)}: costs apply to binary targets only, so no expected cost is "
            "computed for this multi-class target"
        )
        return rows
    parts = [f"validation <b>{format_amount(decision_threshold['expected_cost'], costs)}</b>"]
    tested = test_metrics["model"]["metrics"].get("expected_cost")
    if tested is not None:
        level = f"{test_metrics['bootstrap']['confidence']:.0%}"
        parts.append(
            f"test <b>{format_amount(tested['value'], costs)}</b> ({level} confidence interval "
            f"{format_amount(tested['low'], costs)} – {format_amount(tested['high'], costs)})"
        )
    without = decision_threshold["expected_cost_without_model"]
    rows.append(
        [
            "Expected cost per record at the threshold",
            "; ".join(parts)
            + f". Without the model (validation): flagging no record costs {format_amount(without['flag_none'], costs)}, "
            f"flagging every record {format_amount(without['flag_all'], costs)}.",
        ]
    )
    return rows


def problem_section(
    definition: ProblemDefinition,
    decision_threshold: Mapping,
    release_gate: Mapping,
    test_metrics: Mapping,
) -> str:
    """The problem definition: what the model is for, how success is measured, what errors cost."""
    primary = definition.primary_metric
    positive = decision_threshold.get("positive_class") or test_metrics.get("positive_class")
    threshold = decision_threshold.get("threshold")
    rule = {
        "max_f1": "the best F1",
        "target_recall": "a target recall",
        "target_precision": "a target precision",
        "min_expected_cost": "the lowest expected cost",
        "argmax": "the most probable class",
    }.get(decision_threshold.get("rule"), escape_text(decision_threshold.get("rule")))
    rows = [
        [
            "Primary metric",
            f"<b>{METRIC_NAMES[primary]}</b>: {escape_text(METRIC_MEANINGS[primary])}",
        ],
        _success_row(definition, release_gate, test_metrics),
        *_cost_rows(definition, decision_threshold, test_metrics, positive),
        [
            "Decision threshold",
            "each record gets its most probable class"
            if threshold is None
            else f"flag {escape_text(positive)} when its probability is at least <b>{threshold:.3f}</b>, chosen on "
            f"validation for {rule}",
        ],
    ]
    return f"<p>{escape_text(definition.statement)}</p>\n" + html_table(["Item", "Value"], rows)
