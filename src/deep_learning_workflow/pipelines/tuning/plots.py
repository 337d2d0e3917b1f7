"""Plots of the study: its history, the hyperparameters' importances and coordinates, the pruner's intermediate
values and, with a second objective, the Pareto front. Optuna and plotly are imported inside the functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.parameters import parse

from .objectives import COST_LABELS, second_objective
from .pareto import plot_front
from .schema import TuningParams
from .study import completed_trials


def _note(title: str, text: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    figure.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def _metric_target(study: Any) -> dict[str, Any]:
    """Plot arguments for a study with a second objective: Optuna's plots then show the metric (the first)."""
    if len(study.directions) == 1:
        return {}
    return {"target": lambda trial: trial.values[0], "target_name": study.user_attrs.get("metric")}


def plot_optimisation_history(study: Any) -> Any:
    """The value of every trial and the best so far."""
    import optuna

    return optuna.visualization.plot_optimization_history(study, **_metric_target(study))


def plot_parameter_importances(study: Any, seed: int) -> Any:
    """How much each hyperparameter explains of the trials' values (fANOVA, seeded)."""
    import optuna

    if len(completed_trials(study)) < 2:
        return _note("Hyperparameter importances", "Needs at least two completed trials.")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=int(seed))
    return optuna.visualization.plot_param_importances(
        study, evaluator=evaluator, **_metric_target(study)
    )


def plot_parallel_coordinates(study: Any) -> Any:
    """Each completed trial as a line through its hyperparameters to its value."""
    import optuna

    return optuna.visualization.plot_parallel_coordinate(study, **_metric_target(study))


def plot_intermediate_values(study: Any) -> Any:
    """The validation metric of every trial after each epoch: where the pruner stopped trials."""
    import optuna

    if len(study.directions) > 1:
        return _note(
            "Intermediate values",
            "A study with two objectives is not pruned: no epoch is reported.",
        )
    return optuna.visualization.plot_intermediate_values(study)


def plot_pareto_front(study: Any, best_params: Mapping[str, Any], tuning: dict[str, Any]) -> Any:
    """The metric against the second objective: every trial, the Pareto front, the rule and the picked trial.

    A single-objective study gets a note saying how to enable the trade-off.
    """
    settings = parse(TuningParams, tuning, "tuning")
    second = study.user_attrs.get("second_objective")
    if len(study.directions) == 1 or second_objective(settings) is None:
        return _note(
            "Pareto front",
            "A single-objective study: set params:tuning.trade_off.enabled: true (and pruner.name: none) to "
            "trade the metric against latency or size.",
        )
    metric = study.user_attrs.get("metric") or best_params["metric"]
    label = COST_LABELS.get(settings.trade_off.objective, second)
    return plot_front(
        study.get_trials(deepcopy=False),
        metric,
        label,
        GREATER_IS_BETTER[metric],
        settings.trade_off.pick,
        best_params.get("trial"),
    )
