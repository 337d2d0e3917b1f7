"""The report's sections on results: the data, the candidates, the threshold, the release gate and the test split."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.pipelines.evaluation.predictions import CANDIDATE
from deep_learning_workflow.pipelines.evaluation.report_html import (
    escape_text,
    flatten_items,
    format_amount,
    format_counts,
    format_number,
    html_table,
)
from deep_learning_workflow.pipelines.evaluation.wording import METRIC_NAMES
from deep_learning_workflow.problem import Costs


def data_section(split_report: Any, validation_metrics: Mapping, test_metrics: Mapping) -> str:
    """Sizes of every split from the split report when it has them, else its items, plus the evaluated splits."""
    parts = []
    splits = split_report.get("splits") if isinstance(split_report, Mapping) else None
    if isinstance(splits, Mapping) and all(
        isinstance(item, Mapping) and "rows" in item for item in splits.values()
    ):
        rows = [
            [
                escape_text(name),
                format_number(item["rows"]),
                format_counts(item.get("class_counts", {})),
            ]
            for name, item in splits.items()
        ]
        parts.append(html_table(["Table", "Rows", "Rows per class"], rows))
        balancing = split_report.get("balancing")
        if isinstance(balancing, Mapping) and "method" in balancing:
            parts.append(
                f"<p>Balancing of the training split: {escape_text(balancing['method'])}. Validation and test "
                "keep the real class ratio.</p>"
            )
    else:
        reported = flatten_items(split_report)[:40]
        if reported:
            parts.append("<p>From the split report:</p>")
            parts.append(
                html_table(
                    ["Item", "Value"], [[escape_text(k), format_number(v)] for k, v in reported]
                )
            )
    rows = [
        [
            escape_text(data["split"]),
            format_number(data["rows"]),
            format_counts(data["class_counts"]),
            f"<code>{data['fingerprint'][:12]}</code>",
        ]
        for data in (validation_metrics["data"], test_metrics["data"])
    ]
    parts.append(
        "<p>The splits evaluated here, with their data versions (content fingerprints):</p>"
    )
    parts.append(html_table(["Split", "Rows", "Rows per class", "Data version"], rows))
    return "\n".join(parts)


def candidates_section(validation_metrics: Mapping, baseline_metrics: Mapping, primary: str) -> str:
    names = list(GREATER_IS_BETTER)
    header = [
        "Candidate",
        *[METRIC_NAMES[name] + (" ★" if name == primary else "") for name in names],
    ]
    header += ["Threshold", "Precision", "Recall", "F1"]
    with_cost = validation_metrics["at_threshold"].get("expected_cost") is not None
    if with_cost:
        header += ["Expected cost per record"]
    binary = len(validation_metrics["classes"]) == 2
    positive = validation_metrics["positive_class"]
    rows = []
    for name, metrics in [(CANDIDATE, validation_metrics), *sorted(baseline_metrics.items())]:
        decisions = metrics["at_threshold"]
        key = positive if binary else "macro"
        row = [f"<b>{escape_text(name)}</b>" if name == CANDIDATE else escape_text(name)]
        row += [format_number(metrics["scores"][metric]) for metric in names]
        row += [format_number(decisions["threshold"])]
        row += [format_number(decisions[metric][key]) for metric in ("precision", "recall", "f1")]
        if with_cost:
            row += [format_number(decisions.get("expected_cost"), 2)]
        rows.append(row)
    scope = f"of '{escape_text(positive)}'" if binary else "macro-averaged"
    note = (
        f"<p>Precision, recall and F1 are {scope}, each candidate at its own threshold chosen on validation by the "
        "same rule. ★ marks the primary metric.</p>"
    )
    return html_table(header, rows) + note


def threshold_section(decision_threshold: Mapping) -> str:
    if decision_threshold.get("threshold") is None:
        return f"<p>{escape_text(decision_threshold['note'])}</p>"
    positive = escape_text(decision_threshold["positive_class"])
    rule = {
        "max_f1": "the best F1 (balance of precision and recall)",
        "target_recall": f"a recall of at least {decision_threshold['target']}",
        "target_precision": f"a precision of at least {decision_threshold['target']}",
        "min_expected_cost": "the lowest expected cost of its errors",
    }[decision_threshold["rule"]]
    met = (
        ""
        if decision_threshold["target_met"]
        else " <b>The target could not be reached on validation.</b>"
    )
    return (
        f"<p>A record is flagged as <b>{positive}</b> when the model's probability of {positive} is at least "
        f"<b>{decision_threshold['threshold']:.3f}</b>, chosen on the validation split for {rule}.{met}</p>"
        f"<p>On validation at this threshold: of the records flagged, {decision_threshold['precision']:.0%} are "
        f"{positive} (precision); of all {positive} records, {decision_threshold['recall']:.0%} are flagged "
        f"(recall).{_threshold_cost(decision_threshold)}</p>"
    )


def _threshold_cost(decision_threshold: Mapping) -> str:
    if decision_threshold.get("expected_cost") is None:
        return ""
    costs = Costs(**decision_threshold["costs"])
    text = (
        f" The errors cost {format_amount(decision_threshold['expected_cost'], costs)} per record on average "
        "(expected cost)."
    )
    if decision_threshold["recall"] == 0:
        text += f" {escape_text(decision_threshold['note'])}"
    return text


def gate_section(release_gate: Mapping) -> str:
    verdict = "RELEASE" if release_gate["passed"] else "REJECT"
    rows = [
        [
            escape_text(check["check"]),
            "✅ pass" if check["passed"] else "❌ fail",
            escape_text(check["detail"]),
        ]
        for check in release_gate["checks"]
    ]
    parts = [
        f"<p class='verdict {verdict.lower()}'>Verdict: {verdict}</p>",
        html_table(["Check", "Result", "Detail"], rows),
    ]
    comparisons = release_gate.get("comparisons", [])
    if comparisons:
        rule = release_gate["rule"]
        level = f"{rule['confidence']:.0%}"
        lines = [
            [
                escape_text(item["baseline"]),
                METRIC_NAMES[item["metric"]],
                format_number(item["model"]),
                format_number(item["baseline_value"]),
                f"{item['lead']:+.4f}",
                f"{item['lead_low']:+.4f} – {item['lead_high']:+.4f}",
                f"{item['margin']:g}",
                "✅ pass" if item["passed"] else "❌ fail",
            ]
            for item in comparisons
        ]
        parts += [
            f"<p>The model against each baseline on validation, rule <b>{escape_text(rule['name'])}</b>: a paired "
            f"bootstrap of the validation rows gives the {level} interval of the model's lead (positive: the "
            "model is better; for log loss, a lower loss). Accuracy is that of the decisions at each "
            "candidate's threshold.</p>",
            html_table(
                [
                    "Baseline",
                    "Metric",
                    "Model",
                    "Baseline",
                    "Lead",
                    f"{level} interval",
                    "Margin",
                    "Result",
                ],
                lines,
            ),
        ]
    if release_gate.get("validation_optimistic"):
        parts.append(f"<p><b>{escape_text(release_gate['validation_note'])}</b></p>")
    return "".join(parts)


def test_section(test_metrics: Mapping) -> str:
    model = test_metrics["model"]["metrics"]
    bootstrap = test_metrics["bootstrap"]
    level = f"{bootstrap['confidence']:.0%}"
    rows = [
        [
            METRIC_NAMES[name],
            format_number(values["value"]),
            f"{format_number(values['low'])} – {format_number(values['high'])}",
        ]
        for name, values in model.items()
    ]
    binary = len(test_metrics["classes"]) == 2
    scope = f"of '{escape_text(test_metrics['positive_class'])}'" if binary else "macro-averaged"
    parts = [
        html_table(["Metric (model)", "Test value", f"{level} confidence interval"], rows),
        f"<p>Intervals: {escape_text(bootstrap['method'])}, {bootstrap['resamples']:,} resamples, seed "
        f"{bootstrap['seed']}. Precision, recall and F1 are {scope}, at the decision rule chosen on "
        "validation.</p>",
    ]
    if binary:
        decisions = test_metrics["model"]["at_threshold"]["confusion_matrix"]
        column = decisions["classes"].index(test_metrics["positive_class"])
        counts = np.asarray(decisions["counts"])
        positive = escape_text(test_metrics["positive_class"])
        parts.append(
            f"<p>In words: of {counts.sum():,} test records the model flags {counts[:, column].sum():,} as "
            f"{positive}; {counts[column, column]:,} of them are {positive}, and it finds "
            f"{counts[column, column]:,} of the {counts[column].sum():,} {positive} records.</p>"
        )
    differences = test_metrics["model_minus_baseline"]
    if differences:
        rows = []
        for name, difference in differences.items():
            baseline = test_metrics["baselines"][name]["metrics"][difference["metric"]]["value"]
            interval = f"{difference['low']:+.3f} – {difference['high']:+.3f}"
            rows.append(
                [
                    escape_text(name),
                    format_number(baseline),
                    f"{difference['value']:+.3f}",
                    interval,
                ]
            )
        metric = METRIC_NAMES[test_metrics["primary_metric"]]
        parts.append(
            html_table(
                [
                    "Baseline",
                    f"Baseline test {metric}",
                    "Model minus baseline",
                    f"{level} interval",
                ],
                rows,
            )
        )
    return "\n".join(parts)
