"""Cumulative gains and lift on the validation split: "how many churners do we reach if we call the top 10%?"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from deep_learning_workflow.metrics import positive_index
from deep_learning_workflow.pipelines.evaluation.nodes import CANDIDATE
from deep_learning_workflow.pipelines.evaluation.plots import LAYOUT

TOP_SHARE = 0.10


def cumulative_gains(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of records taken (highest scores first) and share of all positives among them, both from 0 to 1.

    Ties are taken together, so the curve does not depend on the order of equal scores.
    """
    truth = np.asarray(truth, dtype=bool)
    if truth.sum() == 0:
        raise ValueError(
            "The validation split has no record of the positive class: no gains curve."
        )
    order = np.argsort(-np.asarray(scores, dtype="float64"), kind="stable")
    sorted_scores, sorted_truth = np.asarray(scores)[order], truth[order]
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), len(sorted_scores) - 1]
    taken = (ends + 1) / len(truth)
    found = np.cumsum(sorted_truth)[ends] / truth.sum()
    return np.r_[0.0, taken], np.r_[0.0, found]


def gains_at(taken: np.ndarray, found: np.ndarray, share: float) -> float:
    """The share of positives reached when ``share`` of the records are taken (linear between tie groups)."""
    return float(np.interp(share, taken, found))


def plot_cumulative_gains(validation_predictions: Mapping[str, Any]) -> go.Figure:
    """Cumulative gains of the model and the baselines on validation, with the lift in the top 10%.

    Multi-class targets have no single positive class to rank by: the figure then says so.
    """
    classes = validation_predictions["classes"]
    if len(classes) != 2:
        return _binary_only_figure()
    column = positive_index(classes, validation_predictions["positive_class"])
    positive = classes[column]
    truth = validation_predictions["labels"] == positive
    figure = go.Figure()
    for candidate, probabilities in validation_predictions["probabilities"].items():
        taken, found = cumulative_gains(truth, probabilities[:, column])
        top = gains_at(taken, found, TOP_SHARE)
        figure.add_trace(
            go.Scatter(
                x=taken,
                y=found,
                mode="lines",
                name=f"{candidate} (top {TOP_SHARE:.0%}: {top:.0%}, lift {top / TOP_SHARE:.1f})",
                line={"width": 3 if candidate == CANDIDATE else 1.5},
            )
        )
    _add_reference_orders(figure, float(np.mean(truth)))
    figure.add_vline(x=TOP_SHARE, line_dash="dot", line_color="black")
    figure.update_layout(
        **LAYOUT,
        title=f"Cumulative gains on validation: share of '{positive}' reached by taking the highest scores first",
        xaxis={"title": "Share of records taken (highest probability first)", "tickformat": ".0%"},
        yaxis={"title": f"Share of all '{positive}' reached", "tickformat": ".0%"},
    )
    return figure


def _binary_only_figure() -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(
        text="Gains charts need a binary target.",
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
    )
    figure.update_layout(**LAYOUT, title="Cumulative gains")
    return figure


def _add_reference_orders(figure: go.Figure, rate: float) -> None:
    """The random order (the diagonal) and the perfect order, which reaches every positive at ``rate``."""
    figure.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="random order",
            line={"dash": "dot", "color": "grey"},
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[0, rate, 1],
            y=[0, 1, 1],
            mode="lines",
            name="perfect order",
            line={"dash": "dash", "color": "lightgrey"},
        )
    )
