"""Nodes of the tuning pipeline: the Optuna study, the judgement over seeds, the best parameters, the plots.

The study lives in the storage that ``tuning_storage`` opens (SQLite, journal file or PostgreSQL), so a re-run,
or another worker, resumes it. Only the validation split is scored here; the test split is read once, by the
evaluation pipeline's test node under the ``tuned`` namespace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.datasets.optuna_storage import StudyStorage
from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.problem import ProblemDefinition
from deep_learning_workflow.progress import progress_bar

from .data import TuningData
from .objectives import COST_NAMES, make_cost, second_objective
from .pareto import describe_rule, pick_candidate, seed_candidates
from .schema import TuningParams
from .search_space import check_search_space, merge_overrides
from .seeds import SeedJudge, distinct_trials
from .study import completed_trials, direction_of, failure_summary, open_study, run_trials
from .trial import make_objective

logger = logging.getLogger(__name__)


def run_study(
    tuning_storage: StudyStorage,
    tuning_data: TuningData,
    modelling: dict[str, Any],
    problem: dict[str, Any],
    tuning: dict[str, Any],
    seed: int,
) -> Any:
    """Open (or resume) the study and run trials until it holds ``params:tuning.n_trials`` of them.

    Args:
        tuning_storage: the opened storage (``OptunaStorageDataset``).
        tuning_data: the training, balanced training and validation rows, and ``params:columns``.
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
    tuning_data.check_roles()
    epochs = settings.epochs or base.epochs
    study = open_study(tuning_storage, settings, metric, seed, epochs)
    objective = make_objective(
        tuning_data.frames,
        tuning_data.columns,
        modelling,
        settings,
        metric,
        seed,
        cost=make_cost(settings, tuning_data.val),
    )
    heartbeat = getattr(tuning_storage.storage, "get_heartbeat_interval", lambda: None)()
    with progress_bar(
        settings.n_trials, f"Study {settings.study_name}", initial=_trials_done(study)
    ) as bar:
        run_trials(
            study,
            _advancing(objective, bar),
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


def _trials_done(study: Any) -> int:
    """Trials that count towards ``n_trials`` already in the study (a resumed study starts with them)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _advancing(objective: Callable[[Any], float], bar: Any) -> Callable[[Any], float]:
    """The objective, moving the progress bar on when one of this worker's trials completes or is pruned."""
    import optuna

    def run(trial: Any) -> float:
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            bar.update(1)
            raise
        bar.update(1)
        shown = (
            " / ".join(f"{v:.4g}" for v in value) if isinstance(value, tuple) else f"{value:.4g}"
        )
        bar.set_postfix_str(f"last {shown}", refresh=False)
        return value

    return run


def summarise_trials(study: Any) -> pd.DataFrame:
    """One row per trial: number, state, value, hyperparameters, timings, worker, failure reason.

    A study with a second objective has a ``values_<name>`` column per objective instead of ``value``.
    """
    table = study.trials_dataframe(
        attrs=("number", "state", "value", "params", "user_attrs", "duration")
    )
    if "duration" in table:
        table["duration"] = table["duration"].dt.total_seconds()
    return table.rename(columns={"duration": "duration_seconds"})


def retrain_top_trials(
    study: Any,
    tuning_data: TuningData,
    modelling: dict[str, Any],
    problem: dict[str, Any],
    tuning: dict[str, Any],
    seed: int,
) -> list[dict[str, Any]]:
    """Retrain the ``top_k`` best distinct trials with several seeds and score each on validation.

    A trial's value comes from one seed; a lucky seed can put a mediocre configuration on top. Each candidate is
    retrained as the modelling pipeline trains (``params:modelling.epochs``, early stopping) with seeds
    ``params:seed + 0 .. selection.seeds - 1``.

    With a second objective (``params:tuning.trade_off``) the candidates are the ``top_k`` trials of the Pareto
    front that the pick rule prefers, plus, for ``cheapest_within``, the trial with the best metric (the reference
    of the tolerance); see :func:`~deep_learning_workflow.pipelines.tuning.pareto.seed_candidates`.

    Returns:
        One record per candidate: trial number, its hyperparameters, the value the study saw, the seeds and their
        validation scores, their mean and sample standard deviation, ``ensemble_value`` (the metric of the mean of
        the seeds' probabilities) and the ``score`` candidates are ranked by: with
        ``params:modelling.seed_selection: average`` (and more than one seed) the ensemble's value, since that is
        the model the modelling pipeline saves, else the pessimistic mean - sd (mean + sd for a metric where lower
        is better); with a second objective, the trial's ``cost`` too (for latency, the smallest of the study's
        measure and one per retrained model).
    """
    settings = parse(TuningParams, tuning, "tuning")
    metric = parse(ProblemDefinition, problem, "problem").primary_metric
    second = second_objective(settings)
    judge = SeedJudge(
        frames=tuning_data.frames,
        columns=tuning_data.columns,
        seeds=[int(seed) + offset for offset in range(settings.selection.seeds)],
        metric=metric,
        second=second,
        measure=make_cost(settings, tuning_data.val),
    )
    trials = completed_trials(study)
    limit = settings.selection.top_k
    if second is not None:
        trials = seed_candidates(
            trials, settings.trade_off.pick, GREATER_IS_BETTER[metric], limit, COST_NAMES[second]
        )
        limit = len(trials)
    candidates = [
        judge.judge(trial, merge_overrides(modelling, trial.params))
        for trial in distinct_trials(trials)[:limit]
    ]
    if not candidates:
        raise ValueError("The study has no completed trial to retrain; run the study first.")
    return candidates


def select_best_params(
    candidates: list[dict[str, Any]], problem: dict[str, Any], tuning: dict[str, Any]
) -> dict[str, Any]:
    """The candidate with the best pessimistic score over seeds, as the record saved to best_params.json.

    With a second objective, ``params:tuning.trade_off.pick`` chooses among the scores and costs, and the record
    also holds the objectives, the rule and the winner's cost.

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
    ranking = _ranking(finite, greater)
    second = second_objective(settings)
    if second is None:
        best = sorted(finite, key=lambda c: (-c["score"] if greater else c["score"], c["trial"]))[0]
    else:
        best = pick_candidate(finite, settings.trade_off.pick, greater)
        ranking = (
            f"{describe_rule(settings.trade_off.pick, COST_NAMES[second])}, the metric as {ranking}"
        )
    kept = ("trial", "mean", "sd", "score") + (("cost",) if second is not None else ())
    record = {
        "study_name": settings.study_name,
        "metric": metric,
        "direction": direction_of(metric),
        "ranking": ranking,
        "trial": best["trial"],
        "params": best["params"],
        "validation": {
            key: best.get(key)
            for key in ("seeds", "values", "mean", "sd", "ensemble_value", "score", "search_value")
        },
        "candidates": [{key: c[key] for key in kept} for c in candidates],
        # The hyperparameters were picked on validation (the best trials of the study, then the best of these
        # candidates): the winner's validation figures are a maximum of several, so optimistic.
        "validation_selection_bias": True,
        "selected_from_candidates": len(finite),
    }
    if second is not None:
        pick = settings.trade_off.pick
        record["objectives"] = {metric: direction_of(metric), COST_NAMES[second]: "minimize"}
        record["pick"] = {"rule": pick.rule, "tolerance": pick.tolerance, "budget": pick.budget}
        record["cost"] = {COST_NAMES[second]: best["cost"]}
    return record


def _ranking(candidates: list[dict[str, Any]], greater: bool) -> str:
    """What the candidates' scores are: the ensemble's value when seeds are averaged, else mean -/+ sd."""
    averaged = any(
        c.get("ensemble_value") is not None and c["score"] == c["ensemble_value"]
        for c in candidates
    )
    if averaged:
        return "the mean of the seeds' probabilities"
    return "mean - sd over seeds" if greater else "mean + sd over seeds"


def record_tuning_selection(
    model_metadata: Mapping[str, Any], best_params: Mapping[str, Any]
) -> dict[str, Any]:
    """The tuned model's metadata with the record that its hyperparameters were chosen on validation.

    The release gate reads ``validation_selection_bias``: the tuned model's validation metrics are those of the
    best of several candidates on the same validation rows, so they overstate what the test split will show.

    Returns:
        ``model_metadata`` with ``validation_selection_bias: true`` and ``tuning_selection`` (the study, the trial
        and how many candidates the winner was picked from).
    """
    return {
        **model_metadata,
        "validation_selection_bias": True,
        "tuning_selection": {
            "study_name": best_params.get("study_name"),
            "trial": best_params.get("trial"),
            "ranking": best_params.get("ranking"),
            "candidates": len(best_params.get("candidates") or []),
        },
    }


def merge_best_params(best_params: Mapping[str, Any], modelling: dict[str, Any]) -> dict[str, Any]:
    """``params:modelling`` with the best hyperparameters set: what the tuned modelling pipeline takes.

    Raises:
        ValueError: when the merged parameters are not valid modelling parameters.
    """
    merged = merge_overrides(modelling, best_params["params"])
    parse(ModellingParams, merged, "modelling")
    return merged
