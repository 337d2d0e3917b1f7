"""The model report for decision makers: one self-contained HTML file with plotly.js inlined once, so it opens
offline and can be mailed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.evaluation.plots import PLOT_CONFIG
from deep_learning_workflow.pipelines.evaluation.report_html import STYLE, escape_text
from deep_learning_workflow.pipelines.evaluation.report_problem import (
    list_limitations,
    problem_section,
)
from deep_learning_workflow.pipelines.evaluation.report_results import (
    candidates_section,
    data_section,
    gate_section,
    test_section,
    threshold_section,
)
from deep_learning_workflow.pipelines.evaluation.schema import EvaluationParameters
from deep_learning_workflow.pipelines.evaluation.wording import METRIC_NAMES, verdict_sentence
from deep_learning_workflow.problem import ProblemDefinition

__all__ = ["METRIC_NAMES", "render_model_report", "verdict_sentence"]


def _plots_html(*figures: go.Figure | None) -> str:
    """The figures given, each in a div that fills its grid cell; plotly.js is inlined once, in the head."""
    return "".join(
        f"<div class='plot'>{figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG, default_width='100%')}</div>"
        for figure in figures
        if figure is not None
    )


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
        HTML: the problem definition and the headline test figure, then data, baselines, threshold, release gate,
        test metrics with confidence intervals, plots and limitations.
    """
    # Imported here: plotly.offline costs most of a second, which every kedro command would pay at start-up.
    from plotly.offline import get_plotlyjs

    definition = parse(ProblemDefinition, problem, "problem")
    params = parse(EvaluationParameters, evaluation, "evaluation")
    primary = definition.primary_metric
    figures = _plots_html(
        confusion_matrix_plot,
        roc_curve_plot,
        precision_recall_plot,
        calibration_plot,
        cumulative_gains_plot,
        permutation_importance_plot,
    )
    limitations = "".join(
        f"<li>{escape_text(item)}</li>"
        for item in list_limitations(params, validation_metrics, test_metrics, release_gate)
    )
    results = _results_html(
        split_report,
        validation_metrics,
        baseline_metrics,
        decision_threshold,
        release_gate,
        test_metrics,
        primary,
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape_text(params.report.title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{escape_text(params.report.title)}</h1>
<h2 id="problem-definition">1. The problem definition</h2>
{problem_section(definition, decision_threshold, release_gate, test_metrics)}
{_headline(primary, test_metrics, release_gate)}

{results}
<h2>7. Plots (validation split)</h2>
<div class="plots">{figures}</div>

<h2>8. Limitations</h2>
<ul>{limitations}</ul>
</body></html>
"""


def _headline(
    primary: str, test_metrics: Mapping[str, Any], release_gate: Mapping[str, Any]
) -> str:
    """The test split's primary metric with its interval, the gate's verdict and the model version."""
    test_primary = test_metrics["model"]["metrics"][primary]
    verdict = verdict_sentence(release_gate)
    return f"""<p class="headline">On records it has never seen (the test split), the model reaches a
<b>{METRIC_NAMES[primary]} of {test_primary["value"]:.3f}</b>
({test_metrics["bootstrap"]["confidence"]:.0%} confidence interval {test_primary["low"]:.3f} – {test_primary["high"]:.3f}).
<b>{escape_text(verdict)}</b></p>
<p class="muted">Model version <code>{escape_text(release_gate["model_fingerprint"][:12])}</code></p>"""


def _results_html(
    split_report: Any,
    validation_metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    decision_threshold: Mapping[str, Any],
    release_gate: Mapping[str, Any],
    test_metrics: Mapping[str, Any],
    primary: str,
) -> str:
    """Sections 2 to 6: data, model against baselines, threshold, release gate, test results."""
    return f"""<h2>2. Data</h2>
{data_section(split_report, validation_metrics, test_metrics)}
<p class="muted">The model and the baselines were fitted on the training split; the threshold and the release decision
used the validation split; the test split was scored once, at the end.</p>

<h2>3. Model against baselines (validation split)</h2>
{candidates_section(validation_metrics, baseline_metrics, primary)}

<h2>4. Decision threshold</h2>
{threshold_section(decision_threshold)}

<h2>5. Release gate (validation split)</h2>
{gate_section(release_gate)}

<h2>6. Final results on the test split</h2>
{test_section(test_metrics)}
"""
