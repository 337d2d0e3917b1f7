"""The judgement of the study's best trials over several seeds.

A trial's value comes from one seed; a lucky seed can put a mediocre configuration on top. Each candidate is
retrained as the modelling pipeline trains, with several seeds, and scored on validation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes, target_labels
from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.metrics import score as score_metric
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models.fitting import TrainingDivergedError
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.parameters import parse

from .trial import train_and_score

logger = logging.getLogger(__name__)


def seed_summary(values: Sequence[float], greater: bool) -> tuple[float, float, float]:
    """The mean and sample standard deviation of one configuration's scores over seeds, and its pessimistic
    score: mean - sd for a metric where greater is better, mean + sd otherwise (sd 0 for one seed)."""
    mean = float(np.mean(values))
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return mean, sd, (mean - sd if greater else mean + sd)


def distinct_trials(trials: Sequence[Any]) -> list[Any]:
    """The trials in order, each set of hyperparameters once (the first trial that drew it)."""
    seen: set[tuple] = set()
    kept = []
    for trial in trials:
        key = tuple(sorted((name, repr(value)) for name, value in trial.params.items()))
        if key not in seen:
            seen.add(key)
            kept.append(trial)
    return kept


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True)
class SeedJudge:
    """What every candidate is retrained and scored with.

    Attributes:
        frames: ``train`` (preprocessing, classes), ``train_balanced`` (the rows the weights are fitted on), ``val``.
        columns: ``params:columns``.
        seeds: the seeds each candidate is retrained with.
        metric: ``params:problem.primary_metric``.
        second: the second objective (``parameters`` or ``latency``), or None.
        measure: the cost of a training result for the second objective (see objectives.make_cost), or None.
    """

    frames: Mapping[str, pd.DataFrame]
    columns: Mapping[str, Any]
    seeds: Sequence[int]
    metric: str
    second: str | None = None
    measure: Callable[[Any], float] | None = None

    def judge(self, trial: Any, params: dict[str, Any]) -> dict[str, Any]:
        """The candidate record of ``trial``, retrained with ``params`` (its merged modelling parameters)."""
        greater = GREATER_IS_BETTER[self.metric]
        seeds = list(self.seeds)
        costs = [float(trial.values[1])] if self.second is not None else []
        # A latency is measured again on each retrained model and the smallest kept: contention only adds time.
        after = (
            (lambda result: costs.append(self.measure(result)))
            if self.second == "latency"
            else None
        )
        probabilities: list[np.ndarray] = []
        values = [self.retrain_score(params, s, after, probabilities) for s in seeds]
        mean, sd, pessimistic = seed_summary(values, greater)
        averaged = _averages_seeds(params) and len(seeds) > 1
        ensemble = self.ensemble_value(probabilities)
        # What the modelling pipeline saves is judged: the mean of the seeds' probabilities when it averages
        # them, else (one seed kept) the pessimistic mean - sd over seeds.
        score = ensemble if averaged else pessimistic
        logger.info(
            "Trial %d over seeds %s: %s %.4f ± %.4f", trial.number, seeds, self.metric, mean, sd
        )
        return {
            "trial": trial.number,
            "params": dict(trial.params),
            "search_value": float(trial.values[0]),
            **({"cost": min(costs)} if self.second is not None else {}),
            "seeds": seeds,
            "values": [_finite(v) for v in values],
            "mean": _finite(mean),
            "sd": _finite(sd),
            "ensemble_value": _finite(ensemble),
            "score": _finite(score),
        }

    def retrain_score(
        self,
        params: dict[str, Any],
        seed: int,
        after: Callable[[Any], None] | None = None,
        probabilities: list[np.ndarray] | None = None,
    ) -> float:
        """The validation score of one retrained model; its validation probabilities appended to
        ``probabilities``. NaN when the training diverged."""
        frames = self.frames

        def keep(result: Any) -> None:
            if probabilities is not None:
                probabilities.append(
                    predict_probabilities(result.model, frames["val"], result.roles)
                )
            if after is not None:
                after(result)

        try:
            return train_and_score(frames, self.columns, params, seed, self.metric, after=keep)[0]
        except TrainingDivergedError as error:
            logger.warning("Retraining with seed %d diverged: %s", seed, error)
            return float("nan")

    def ensemble_value(self, probabilities: list[np.ndarray]) -> float:
        """The metric of the mean of the seeds' probabilities (what the saved seed ensemble returns); NaN when a
        seed diverged or returned non-finite probabilities."""
        if len(probabilities) != len(self.seeds) or not all(
            np.isfinite(p).all() for p in probabilities
        ):
            return float("nan")
        val = self.frames["val"]
        roles = resolve_roles(val, parse(ColumnRoles, self.columns, "columns"), "val")
        # The models' probability columns follow the training split's classes.
        classes = target_classes(self.frames["train"][roles.target])
        labels = target_labels(val[roles.target]).to_numpy()
        return float(
            score_metric(
                self.metric, labels, np.mean(probabilities, axis=0), classes, roles.positive_class
            )
        )


def _averages_seeds(params: Mapping[str, Any]) -> bool:
    return parse(ModellingParams, params, "modelling").seed_selection == "average"
