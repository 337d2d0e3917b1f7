"""The model report for decision makers: one self-contained HTML file with plotly.js inlined once, so it opens
offline and can be mailed."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.evaluation.plots import PLOT_CONFIG
from deep_learning_workflow.pipelines.evaluation.predictions import CANDIDATE
from deep_learning_workflow.pipelines.evaluation.schema import EvaluationParameters
from deep_learning_workflow.problem import Costs, ProblemDefinition

METRIC_NAMES = {
    "pr_auc": "PR-AUC (average precision)",
    "roc_auc": "ROC-AUC",
    "log_loss": "Log loss",
    "brier": "Brier score",
    "accuracy": "Accuracy (at the decision rule)",
    "f1_macro": "Macro F1 (at the decision rule)",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "expected_cost": "Expected cost per record",
}
METRIC_MEANINGS = {
    "pr_auc": "how well the model ranks the positive class above the rest, weighted towards the top of the list "
    "(1 is perfect; a random ranking scores the positive share)",
    "roc_auc": "the chance that a random positive record is ranked above a random negative one (0.5 is chance)",
    "log_loss": "how confident and right the probabilities are (lower is better)",
    "brier": "the mean squared error of the probabilities (lower is better)",
    "accuracy": "the share of records decided right at the decision rule",
    "f1_macro": "the mean over classes of the balance between precision and recall, at the decision rule",
}

# --- report -------------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _text(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flatten(value: Any, prefix: str = "", depth: int = 3) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping) and depth > 0:
        items: list[tuple[str, Any]] = []
        for key, inner in value.items():
            items.extend(_flatten(inner, f"{prefix}.{key}" if prefix else str(key), depth - 1))
        return items
    if isinstance(value, str | int | float | bool) or value is None:
        return [(prefix, value)]
    return []


def _counts(class_counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{_text(label)}: {_number(count)}" for label, count in class_counts.items())


def _data_section(split_report: Any, validation_metrics: Mapping, test_metrics: Mapping) -> str:
    """Sizes of every split from the split report when it has them, else its items, plus the evaluated splits."""
    parts = []
    splits = split_report.get("splits") if isinstance(split_report, Mapping) else None
    if isinstance(splits, Mapping) and all(
        isinstance(item, Mapping) and "rows" in item for item in splits.values()
    ):
        rows = [
            [_text(name), _number(item["rows"]), _counts(item.get("class_counts", {}))]
            for name, item in splits.items()
        ]
        parts.append(_table(["Table", "Rows", "Rows per class"], rows))
        balancing = split_report.get("balancing")
        if isinstance(balancing, Mapping) and "method" in balancing:
            parts.append(
                f"<p>Balancing of the training split: {_text(balancing['method'])}. Validation and test "
                "keep the real class ratio.</p>"
            )
    else:
        reported = _flatten(split_report)[:40]
        if reported:
            parts.append("<p>From the split report:</p>")
            parts.append(_table(["Item", "Value"], [[_text(k), _number(v)] for k, v in reported]))
    rows = [
        [
            _text(data["split"]),
            _number(data["rows"]),
            _counts(data["class_counts"]),
            f"<code>{data['fingerprint'][:12]}</code>",
        ]
        for data in (validation_metrics["data"], test_metrics["data"])
    ]
    parts.append(
        "<p>The splits evaluated here, with their data versions (content fingerprints):</p>"
    )
    parts.append(_table(["Split", "Rows", "Rows per class", "Data version"], rows))
    return "\n".join(parts)


def _candidates_section(
    validation_metrics: Mapping, baseline_metrics: Mapping, primary: str
) -> str:
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
        row = [f"<b>{_text(name)}</b>" if name == CANDIDATE else _text(name)]
        row += [_number(metrics["scores"][metric]) for metric in names]
        row += [_number(decisions["threshold"])]
        row += [_number(decisions[metric][key]) for metric in ("precision", "recall", "f1")]
        if with_cost:
            row += [_number(decisions.get("expected_cost"), 2)]
        rows.append(row)
    scope = f"of '{_text(positive)}'" if binary else "macro-averaged"
    note = (
        f"<p>Precision, recall and F1 are {scope}, each candidate at its own threshold chosen on validation by the "
        "same rule. ★ marks the primary metric.</p>"
    )
    return _table(header, rows) + note


def _threshold_section(decision_threshold: Mapping) -> str:
    if decision_threshold.get("threshold") is None:
        return f"<p>{_text(decision_threshold['note'])}</p>"
    positive = _text(decision_threshold["positive_class"])
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
        f" The errors cost {_amount(decision_threshold['expected_cost'], costs)} per record on average "
        "(expected cost)."
    )
    if decision_threshold["recall"] == 0:
        text += f" {_text(decision_threshold['note'])}"
    return text


def _gate_section(release_gate: Mapping) -> str:
    verdict = "RELEASE" if release_gate["passed"] else "REJECT"
    rows = [
        [_text(check["check"]), "✅ pass" if check["passed"] else "❌ fail", _text(check["detail"])]
        for check in release_gate["checks"]
    ]
    parts = [
        f"<p class='verdict {verdict.lower()}'>Verdict: {verdict}</p>",
        _table(["Check", "Result", "Detail"], rows),
    ]
    comparisons = release_gate.get("comparisons", [])
    if comparisons:
        rule = release_gate["rule"]
        level = f"{rule['confidence']:.0%}"
        lines = [
            [
                _text(item["baseline"]),
                METRIC_NAMES[item["metric"]],
                _number(item["model"]),
                _number(item["baseline_value"]),
                f"{item['lead']:+.4f}",
                f"{item['lead_low']:+.4f} – {item['lead_high']:+.4f}",
                f"{item['margin']:g}",
                "✅ pass" if item["passed"] else "❌ fail",
            ]
            for item in comparisons
        ]
        parts += [
            f"<p>The model against each baseline on validation, rule <b>{_text(rule['name'])}</b>: a paired "
            f"bootstrap of the validation rows gives the {level} interval of the model's lead (positive: the "
            "model is better; for log loss, a lower loss). Accuracy is that of the decisions at each "
            "candidate's threshold.</p>",
            _table(
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
        parts.append(f"<p><b>{_text(release_gate['validation_note'])}</b></p>")
    return "".join(parts)


def _test_section(test_metrics: Mapping) -> str:
    model = test_metrics["model"]["metrics"]
    bootstrap = test_metrics["bootstrap"]
    level = f"{bootstrap['confidence']:.0%}"
    rows = [
        [
            METRIC_NAMES[name],
            _number(values["value"]),
            f"{_number(values['low'])} – {_number(values['high'])}",
        ]
        for name, values in model.items()
    ]
    binary = len(test_metrics["classes"]) == 2
    scope = f"of '{_text(test_metrics['positive_class'])}'" if binary else "macro-averaged"
    parts = [
        _table(["Metric (model)", "Test value", f"{level} confidence interval"], rows),
        f"<p>Intervals: {_text(bootstrap['method'])}, {bootstrap['resamples']:,} resamples, seed "
        f"{bootstrap['seed']}. Precision, recall and F1 are {scope}, at the decision rule chosen on "
        "validation.</p>",
    ]
    if binary:
        decisions = test_metrics["model"]["at_threshold"]["confusion_matrix"]
        column = decisions["classes"].index(test_metrics["positive_class"])
        counts = np.asarray(decisions["counts"])
        positive = _text(test_metrics["positive_class"])
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
            rows.append([_text(name), _number(baseline), f"{difference['value']:+.3f}", interval])
        metric = METRIC_NAMES[test_metrics["primary_metric"]]
        parts.append(
            _table(
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


def _failed_check_words(check: Mapping[str, Any]) -> str:
    """A failed gate check in plain words, e.g. "it does not beat gradient boosting on validation PR-AUC (0.635 vs
    0.649)"; a check this function does not know is quoted with its detail."""
    name, detail = str(check["check"]), str(check.get("detail", ""))
    lead = re.match(
        r"(\w+) model ([-\d.]+), (\w+) ([-\d.]+) .*?lead ([-+\d.]+), (\d+%) interval \[([-+\d.]+), ([-+\d.]+)\]; "
        r"rule (\w+)",
        detail,
    )
    if lead is not None:
        metric, model, baseline, reference, gain, level, low, high, rule = lead.groups()
        metric_name = METRIC_NAMES.get(metric, metric).split(" (")[0]
        wanted = {"superior": "better than", "non_inferior": "at least level with"}.get(
            rule, "level with"
        )
        return (
            f"it is not shown to be {wanted} {baseline.replace('_', ' ')} on validation {metric_name} "
            f"({float(model):.3f} vs {float(reference):.3f}; lead {float(gain):+.3f}, {level} interval "
            f"[{float(low):+.3f}, {float(high):+.3f}])"
        )
    numbers = re.match(r"(\w+) ([-\d.]+) must be ([<>]=) ([-\d.]+)", detail)
    if numbers is None:
        return f"the check '{name}' failed ({detail})" if detail else f"the check '{name}' failed"
    metric, value, _, limit = numbers.groups()
    metric_name = METRIC_NAMES.get(metric, metric).split(" (")[0]
    figures = f"({float(value):.3f} vs {float(limit):.3f})"
    if name.startswith("beats baseline "):
        baseline = name.removeprefix("beats baseline ").replace("_", " ")
        return f"it does not beat {baseline} on validation {metric_name} {figures}"
    if name.startswith("success "):
        return f"it misses the {metric_name} agreed as success {figures}"
    if name.startswith("floor "):
        return f"its validation {metric_name} is below the floor {figures}"
    if name.startswith("ceiling "):
        return f"its validation {metric_name} is above the ceiling {figures}"
    if name == "previous release":
        return f"it falls below the model released before on validation {metric_name} {figures}"
    return f"the check '{name}' failed {figures}"


def verdict_sentence(release_gate: Mapping[str, Any]) -> str:
    """The release gate's verdict in plain words, naming what failed with its figures.

    e.g. "The model was rejected: it does not beat gradient boosting on validation PR-AUC (0.635 vs 0.649)."
    """
    checks = release_gate.get("checks") or []
    if release_gate["passed"]:
        return f"The model was released: it passed all {len(checks)} checks of the release gate."
    failed = [check for check in checks if not check.get("passed")]
    reasons = [_failed_check_words(check) for check in failed] or [
        f"the check '{name}' failed" for name in release_gate.get("failed_checks", [])
    ]
    return "The model was rejected: " + "; ".join(reasons) + "."


def _limitations(
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


def _amount(value: float, costs: Costs) -> str:
    return f"{value:,.2f} {_text(costs.unit or '')}".strip()


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
            f"Validation: {_number(judged['value'])}, <b>{verdict}</b> (checked by the release gate)."
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
            f"Test: {_number(tested['value'])} ({level} confidence interval {_number(tested['low'])} – "
            f"{_number(tested['high'])}), {reading}."
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
            f"a false positive (a record flagged {_text(positive)} that is not) costs "
            f"<b>{_amount(costs.false_positive, costs)}</b>; a false negative (a {_text(positive)} record not "
            f"flagged) <b>{_amount(costs.false_negative, costs)}</b>",
        ]
    ]
    if decision_threshold.get("expected_cost") is None:
        rows[0][1] = (
            f"false positive {_amount(costs.false_positive, costs)}, false negative "
            f"{_amount(costs.false_negative, costs)}: costs apply to binary targets only, so no expected cost is "
            "computed for this multi-class target"
        )
        return rows
    parts = [f"validation <b>{_amount(decision_threshold['expected_cost'], costs)}</b>"]
    tested = test_metrics["model"]["metrics"].get("expected_cost")
    if tested is not None:
        level = f"{test_metrics['bootstrap']['confidence']:.0%}"
        parts.append(
            f"test <b>{_amount(tested['value'], costs)}</b> ({level} confidence interval "
            f"{_amount(tested['low'], costs)} – {_amount(tested['high'], costs)})"
        )
    without = decision_threshold["expected_cost_without_model"]
    rows.append(
        [
            "Expected cost per record at the threshold",
            "; ".join(parts)
            + f". Without the model (validation): flagging no record costs {_amount(without['flag_none'], costs)}, "
            f"flagging every record {_amount(without['flag_all'], costs)}.",
        ]
    )
    return rows


def _problem_section(
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
    }.get(decision_threshold.get("rule"), _text(decision_threshold.get("rule")))
    rows = [
        [
            "Primary metric",
            f"<b>{METRIC_NAMES[primary]}</b>: {_text(METRIC_MEANINGS[primary])}",
        ],
        _success_row(definition, release_gate, test_metrics),
        *_cost_rows(definition, decision_threshold, test_metrics, positive),
        [
            "Decision threshold",
            "each record gets its most probable class"
            if threshold is None
            else f"flag {_text(positive)} when its probability is at least <b>{threshold:.3f}</b>, chosen on "
            f"validation for {rule}",
        ],
    ]
    return f"<p>{_text(definition.statement)}</p>\n" + _table(["Item", "Value"], rows)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.verdict { font-size: 1.3em; font-weight: bold; } .release { color: #17692e; } .reject { color: #a11a1a; }
.headline { background: #f6f8fa; border-left: 4px solid #888; padding: 0.6em 1em; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; }
.plot { min-width: 0; }
.muted { color: #666; font-size: 0.9em; }
"""


def render_model_report(
    problem: dict,
    evaluation: dict,
    split_report: Any,
    validation_metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    release_gate: Mapping[str, Any],
    test_metrics: Mapping[str, Any],
    confusion_matrix_plot: go.Figure,
    roc_curve_plot: go.Figure,
    precision_recall_plot: go.Figure,
    calibration_plot: go.Figure,
    cumulative_gains_plot: go.Figure | None = None,
    permutation_importance_plot: go.Figure | None = None,
) -> str:
    """The model report for decision makers: one self-contained HTML page.

    Returns:
        HTML opening with the problem definition (statement, primary metric, success threshold and whether it
        is met, costs and the expected cost at the chosen threshold), then the data summary, baselines against the
        model, the decision threshold, the release gate's verdict, test metrics with confidence intervals, plots
        and limitations.
    """
    # Imported here: plotly.offline costs most of a second, which every kedro command would pay at start-up.
    from plotly.offline import get_plotlyjs

    definition = parse(ProblemDefinition, problem, "problem")
    params = parse(EvaluationParameters, evaluation, "evaluation")
    primary = definition.primary_metric
    test_primary = test_metrics["model"]["metrics"][primary]
    verdict = verdict_sentence(release_gate)
    figures = "".join(
        f"<div class='plot'>{figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG, default_width='100%')}</div>"
        for figure in (
            confusion_matrix_plot,
            roc_curve_plot,
            precision_recall_plot,
            calibration_plot,
            cumulative_gains_plot,
            permutation_importance_plot,
        )
        if figure is not None
    )
    limitations = "".join(
        f"<li>{_text(item)}</li>"
        for item in _limitations(params, validation_metrics, test_metrics, release_gate)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_text(params.report.title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{_text(params.report.title)}</h1>
<h2 id="problem-definition">1. The problem definition</h2>
{_problem_section(definition, decision_threshold, release_gate, test_metrics)}
<p class="headline">On records it has never seen (the test split), the model reaches a
<b>{METRIC_NAMES[primary]} of {test_primary["value"]:.3f}</b>
({test_metrics["bootstrap"]["confidence"]:.0%} confidence interval {test_primary["low"]:.3f} – {test_primary["high"]:.3f}).
<b>{_text(verdict)}</b></p>
<p class="muted">Model version <code>{_text(release_gate["model_fingerprint"][:12])}</code></p>

<h2>2. Data</h2>
{_data_section(split_report, validation_metrics, test_metrics)}
<p class="muted">The model and the baselines were fitted on the training split; the threshold and the release decision
used the validation split; the test split was scored once, at the end.</p>

<h2>3. Model against baselines (validation split)</h2>
{_candidates_section(validation_metrics, baseline_metrics, primary)}

<h2>4. Decision threshold</h2>
{_threshold_section(decision_threshold)}

<h2>5. Release gate (validation split)</h2>
{_gate_section(release_gate)}

<h2>6. Final results on the test split</h2>
{_test_section(test_metrics)}

<h2>7. Plots (validation split)</h2>
<div class="plots">{figures}</div>

<h2>8. Limitations</h2>
<ul>{limitations}</ul>
</body></html>
"""
