"""Plots of the validation results: plotly figures, previewed by kedro-viz and embedded in the model report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from deep_learning_workflow.metrics import positive_index
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.evaluation.predictions import CANDIDATE
from deep_learning_workflow.pipelines.evaluation.schema import EvaluationParameters

# The plots fill the width they are given (autosize, and a responsive config in the report); the legend sits under
# the plotting area, where it never hides a curve.
LAYOUT = {
    "template": "plotly_white",
    "autosize": True,
    "height": 480,
    "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.18, "yanchor": "top"},
    "margin": {"b": 110},
}
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _curve_columns(predictions: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(candidate, class, column) of each curve: every candidate's positive class, or the model's classes."""
    classes = predictions["classes"]
    if len(classes) == 2:
        column = positive_index(classes, predictions["positive_class"])
        return [(name, classes[column], column) for name in predictions["probabilities"]]
    return [(CANDIDATE, label, column) for column, label in enumerate(classes)]


def _curves(predictions: Mapping[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(trace name, truth, scores) of each ROC or precision-recall curve: one a candidate when binary, else one a
    class of the model, one-vs-rest."""
    binary = len(predictions["classes"]) == 2
    return [
        (
            candidate if binary else f"{candidate}: {label} vs rest",
            predictions["labels"] == label,
            predictions["probabilities"][candidate][:, column],
        )
        for candidate, label, column in _curve_columns(predictions)
    ]


def confusion_rates(counts: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix as shares of its true class (a class without records: zeros)."""
    counts = np.asarray(counts, dtype="float64")
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def plot_confusion_matrix(validation_metrics: Mapping[str, Any]) -> go.Figure:
    """The model's confusion matrix on the validation split at its decision threshold."""
    decisions = validation_metrics["at_threshold"]
    matrix = decisions["confusion_matrix"]
    classes = matrix["classes"]
    counts = np.asarray(matrix["counts"])
    threshold = decisions["threshold"]
    rule = "most probable class" if threshold is None else f"threshold {threshold:.3f}"
    rates = confusion_rates(counts)
    figure = go.Figure(
        go.Heatmap(
            z=rates,
            x=[f"decided {label}" for label in classes],
            y=[f"true {label}" for label in classes],
            text=[
                [
                    f"{count:,}<br>{rate:.1%} of true {label}"
                    for count, rate in zip(row, rates_row, strict=True)
                ]
                for label, row, rates_row in zip(classes, counts, rates, strict=True)
            ],
            texttemplate="%{text}",
            hoverinfo="text",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            showscale=False,
        )
    )
    figure.update_layout(
        **{**LAYOUT, "height": 440},
        title=f"Confusion matrix: model on validation ({rule})",
        yaxis={"autorange": "reversed"},
    )
    return figure


def plot_roc_curves(validation_predictions: Mapping[str, Any]) -> go.Figure:
    """ROC curves of the model and the baselines on the validation split (one-vs-rest per class if multi-class)."""
    figure = go.Figure()
    for name, truth, scores in _curves(validation_predictions):
        fpr, tpr, _ = roc_curve(truth, scores)
        area = roc_auc_score(truth, scores)
        figure.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{name} (AUC {area:.3f})"))
    figure.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"}
        )
    )
    figure.update_layout(
        **LAYOUT,
        title="ROC curves on validation",
        xaxis_title="False positive rate",
        yaxis_title="True positive rate (recall)",
    )
    return figure


def plot_precision_recall_curves(
    validation_predictions: Mapping[str, Any], decision_threshold: Mapping[str, Any]
) -> go.Figure:
    """Precision-recall curves on the validation split, with the model's chosen operating point."""
    labels = validation_predictions["labels"]
    binary = len(validation_predictions["classes"]) == 2
    figure = go.Figure()
    for name, truth, scores in _curves(validation_predictions):
        precision, recall, _ = precision_recall_curve(truth, scores)
        area = average_precision_score(truth, scores)
        figure.add_trace(
            go.Scatter(
                x=recall,
                y=precision,
                mode="lines",
                line={"shape": "hv"},
                name=f"{name} (AP {area:.3f})",
            )
        )
    if binary and decision_threshold.get("threshold") is not None:
        figure.add_trace(
            go.Scatter(
                x=[decision_threshold["recall"]],
                y=[decision_threshold["precision"]],
                mode="markers",
                marker={"size": 12, "symbol": "x", "color": "black"},
                name=f"model at threshold {decision_threshold['threshold']:.3f}",
            )
        )
        positive = decision_threshold["positive_class"]
        share = float(np.mean(labels == positive))
        figure.add_hline(
            y=share, line_dash="dot", line_color="grey", annotation_text=f"share of {positive}"
        )
    figure.update_layout(
        **LAYOUT,
        title="Precision-recall curves on validation",
        xaxis_title="Recall",
        yaxis_title="Precision",
    )
    return figure


def plot_calibration_curves(
    validation_predictions: Mapping[str, Any], evaluation: dict
) -> go.Figure:
    """Reliability diagram on the validation split: predicted probability against observed frequency.

    Bins hold equal numbers of records (``params:evaluation.calibration_bins``). For a multi-class target the
    model's top-class probability is compared with how often the top class is right.
    """
    bins = parse(EvaluationParameters, evaluation, "evaluation").calibration_bins
    labels = validation_predictions["labels"]
    classes = validation_predictions["classes"]
    figure = go.Figure()
    if len(classes) == 2:
        for candidate, label, column in _curve_columns(validation_predictions):
            scores = validation_predictions["probabilities"][candidate][:, column]
            observed, predicted = calibration_curve(
                labels == label, scores, n_bins=bins, strategy="quantile"
            )
            figure.add_trace(
                go.Scatter(x=predicted, y=observed, mode="lines+markers", name=candidate)
            )
        axis = f"P({classes[positive_index(classes, validation_predictions['positive_class'])]})"
    else:
        probabilities = validation_predictions["probabilities"][CANDIDATE]
        correct = np.asarray(classes)[probabilities.argmax(axis=1)] == labels
        observed, predicted = calibration_curve(
            correct, probabilities.max(axis=1), n_bins=bins, strategy="quantile"
        )
        figure.add_trace(
            go.Scatter(
                x=predicted, y=observed, mode="lines+markers", name=f"{CANDIDATE}: top class"
            )
        )
        axis = "probability of the top class"
    figure.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfectly calibrated",
            line={"dash": "dot", "color": "grey"},
        )
    )
    figure.update_layout(
        **LAYOUT,
        title="Calibration on validation",
        xaxis_title=f"Mean predicted {axis}",
        yaxis_title="Observed frequency",
    )
    return figure
