"""Nodes of the tuning pipeline: the Optuna study, the judgement over seeds, the best parameters, the plots.

The study lives in the storage that ``tuning_storage`` opens (SQLite, journal file or PostgreSQL), so a re-run,
or another worker, resumes it. Only the validation split is scored here; the test split is read once, by the
evaluation pipeline's test node under the ``tuned`` namespace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles
from deep_learning_workflow.datasets.optuna_storage import StudyStorage
from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.modelling.schema import ModellingParams
from deep_learning_workflow.pipelines.modelling.training import TrainingDivergedError
from deep_learning_workflow.problem import ProblemDefinition

from .schema import TuningParams
from .study import (
    check_search_space,
    completed_trials,
    direction_of,
    failure_summary,
    make_objective,
    merge_overrides,
    open_study,
    run_trials,
    train_and_score,
)

logger = logging.getLogger(__name__)


def run_study(  # noqa: PLR0913
    tuning_storage: StudyStorage,
    train: pd.DataFrame,
    train_balanced: pd.DataFrame,
    val: pd.DataFrame,
    columns: dict[str, Any],
    modelling: dict[str, Any],
    problem: dict[str, Any],
    tuning: dict[str, Any],
    seed: int,
) -> Any:
    """Open (or resume) the study and run trials until it holds ``params:tuning.n_trials`` of them.

    Args:
        tuning_storage: the opened storage (``OptunaStorageDataset``).
        train: the real training rows: preprocessing is adapted on them.
        train_balanced: the rows the weights are fitted on (``train`` after balancing).
        val: the validation rows every trial is scored on.
        columns: ``params:columns``.
        modelling: ``params:modelling``; the search space overrides some of its keys.
        problem: ``params:problem``; the objective is its primary metric on validation.
        tuning: ``params:tuning``.
        seed: ``params:seed``: the sampler's seed and every trial's training seed.

    Returns:
        The Optuna study, with every worker's trials.

    Raises:
        ValueError: before any trial, when the search space allows values ``params:modelling`` rejects or the
            roles name missing columns; after the trials, when none completed (with the first reasons).
    """
    settings = parse(TuningParams, tuning, "tuning")
    metric = parse(ProblemDefinition, problem, "problem").primary_metric
    check_search_space(modelling, settings)
    base = parse(ModellingParams, modelling, "modelling")
    roles = parse(ColumnRoles, columns, "columns")
    for name, frame in (("train", train), ("train_balanced", train_balanced), ("val", val)):
        resolve_roles(frame, roles, name)
    epochs = settings.epochs or base.epochs
    study = open_study(tuning_storage, settings, metric, seed, epochs)
    frames = {"train": train, "train_balanced": train_balanced, "val": val}
    objective = make_objective(frames, columns, modelling, settings, metric, seed)
    heartbeat = getattr(tuning_storage.storage, "get_heartbeat_interval", lambda: None)()
    run_trials(
        study,
        objective,
        settings,
        tuning_storage.lock(settings.study_name),
        wait_for_others=heartbeat is not None,
    )
    if not completed_trials(study):
        raise ValueError(
            f"No trial of the study '{settings.study_name}' completed ({failure_summary(study)}). Fix the cause, "
            "or start afresh with another params:tuning.study_name."
        )
    return study


def summarise_trials(study: Any) -> pd.DataFrame:
    """One row per trial: number, state, value, hyperparameters, timings, worker, failure reason."""
    table = study.trials_dataframe(
        attrs=("number", "state", "value", "params", "user_attrs", "duration")
    )
    if "duration" in table:
        table["duration"] = table["duration"].dt.total_seconds()
    return table.rename(columns={"duration": "duration_seconds"})


def retrain_top_trials(  # noqa: PLR0913
    study: Any,
    train: pd.DataFrame,
    train_balanced: pd.DataFrame,
    val: pd.DataFrame,
    columns: dict[str, Any],
    modelling: dict[str, Any],
    problem: dict[str, Any],
    tuning: dict[str, Any],
    seed: int,
) -> list[dict[str, Any]]:
    """Retrain the ``top_k`` best distinct trials with several seeds and score each on validation.

    A trial's value comes from one seed; a lucky seed can put a mediocre configuration on top. Each candidate is
    retrained as the modelling pipeline trains (``params:modelling.epochs``, early stopping) with seeds
    ``params:seed + 0 .. selection.seeds - 1``.

    Returns:
        One record per candidate: trial number, its hyperparameters, the value the study saw, the seeds and their
        validation scores, their mean, sample standard deviation and the pessimistic score (mean - sd for a metric
        where higher is better, mean + sd otherwise).
    """
    settings = parse(TuningParams, tuning, "tuning")
    metric = parse(ProblemDefinition, problem, "problem").primary_metric
    greater = GREATER_IS_BETTER[metric]
    frames = {"train": train, "train_balanced": train_balanced, "val": val}
    seeds = [int(seed) + offset for offset in range(settings.selection.seeds)]
    candidates: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for trial in completed_trials(study):
        key = tuple(sorted((name, repr(value)) for name, value in trial.params.items()))
        if key in seen:
            continue
        seen.add(key)
        params = merge_overrides(modelling, trial.params)
        values = [_retrain_score(frames, columns, params, s, metric) for s in seeds]
        mean = float(np.mean(values))
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        score = mean - sd if greater else mean + sd
        candidates.append(
            {
                "trial": trial.number,
                "params": dict(trial.params),
                "search_value": float(trial.value),
                "seeds": seeds,
                "values": [float(v) if np.isfinite(v) else None for v in values],
                "mean": mean if np.isfinite(mean) else None,
                "sd": sd if np.isfinite(sd) else None,
                "score": score if np.isfinite(score) else None,
            }
        )
        logger.info("Trial %d over seeds %s: %s %.4f ± %.4f", trial.number, seeds, metric, mean, sd)
        if len(candidates) == settings.selection.top_k:
            break
    if not candidates:
        raise ValueError("The study has no completed trial to retrain; run the study first.")
    return candidates


def _retrain_score(
    frames: Mapping[str, pd.DataFrame],
    columns: dict[str, Any],
    params: dict[str, Any],
    seed: int,
    metric: str,
) -> float:
    try:
        return train_and_score(frames, columns, params, seed, metric)[0]
    except TrainingDivergedError as error:
        logger.warning("Retraining with seed %d diverged: %s", seed, error)
        return float("nan")


def select_best_params(
    candidates: list[dict[str, Any]], problem: dict[str, Any], tuning: dict[str, Any]
) -> dict[str, Any]:
    """The candidate with the best pessimistic score over seeds, as the record saved to best_params.json.

    Raises:
        ValueError: when no candidate has a finite score (every retraining diverged).
    """
    settings = parse(TuningParams, tuning, "tuning")
    metric = parse(ProblemDefinition, problem, "problem").primary_metric
    finite = [c for c in candidates if c["score"] is not None]
    if not finite:
        raise ValueError(
            f"No candidate of the study '{settings.study_name}' has a finite {metric} over seeds; every "
            "retraining diverged. Narrow params:tuning.search_space (e.g. the learning rate)."
        )
    greater = GREATER_IS_BETTER[metric]
    best = sorted(finite, key=lambda c: (-c["score"] if greater else c["score"], c["trial"]))[0]
    return {
        "study_name": settings.study_name,
        "metric": metric,
        "direction": direction_of(metric),
        "ranking": "mean - sd over seeds" if greater else "mean + sd over seeds",
        "trial": best["trial"],
        "params": best["params"],
        "validation": {
            key: best[key] for key in ("seeds", "values", "mean", "sd", "score", "search_value")
        },
        "candidates": [
            {key: c[key] for key in ("trial", "mean", "sd", "score")} for c in candidates
        ],
    }


def merge_best_params(best_params: Mapping[str, Any], modelling: dict[str, Any]) -> dict[str, Any]:
    """``params:modelling`` with the best hyperparameters set: what the tuned modelling pipeline takes.

    Raises:
        ValueError: when the merged parameters are not valid modelling parameters.
    """
    merged = merge_overrides(modelling, best_params["params"])
    parse(ModellingParams, merged, "modelling")
    return merged


def _note(title: str, text: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    figure.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def plot_optimisation_history(study: Any) -> Any:
    """The value of every trial and the best so far."""
    import optuna

    return optuna.visualization.plot_optimization_history(study)


def plot_parameter_importances(study: Any, seed: int) -> Any:
    """How much each hyperparameter explains of the trials' values (fANOVA, seeded)."""
    import optuna

    if len(completed_trials(study)) < 2:
        return _note("Hyperparameter importances", "Needs at least two completed trials.")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=int(seed))
    return optuna.visualization.plot_param_importances(study, evaluator=evaluator)


def plot_parallel_coordinates(study: Any) -> Any:
    """Each completed trial as a line through its hyperparameters to its value."""
    import optuna

    return optuna.visualization.plot_parallel_coordinate(study)


def plot_intermediate_values(study: Any) -> Any:
    """The validation metric of every trial after each epoch: where the pruner stopped trials."""
    import optuna

    return optuna.visualization.plot_intermediate_values(study)
