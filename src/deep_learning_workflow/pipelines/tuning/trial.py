"""One trial: train with modelling's trainer, prune on the validation metric, score on validation.

Optuna, TensorFlow and Keras are imported inside the functions that use them, so building the pipeline stays cheap.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.models.fitting import train_model
from deep_learning_workflow.models.scoring import validation_score

from .schema import TuningParams
from .search_space import merge_overrides, suggest


def pruning_callback(trial: Any, monitor: str) -> Any:
    """optuna-integration's Keras pruning callback, made strict.

    The stock callback only warns when ``monitor`` is missing from the epoch's logs, and then never prunes; here
    a missing metric is an error. An epoch whose loss or metric is not finite is not reported, so a diverging
    trial fails (modelling raises) rather than being counted as pruned. Steps are epochs completed (Keras counts
    from 0), so a pruner's ``min_resource: 1`` judges a trial after exactly one epoch.
    """
    from optuna_integration.tfkeras import TFKerasPruningCallback

    class StrictPruningCallback(TFKerasPruningCallback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            if monitor not in logs:
                raise ValueError(
                    f"The pruning callback watches '{monitor}', which the training logs lack "
                    f"({sorted(logs)}); check params:problem.primary_metric."
                )
            values = [logs[monitor], logs.get("loss", 0.0)]
            if not all(math.isfinite(float(value)) for value in values):
                return
            super().on_epoch_end(epoch + 1, logs)

    return StrictPruningCallback(trial, monitor)


def train_and_score(
    frames: Mapping[str, pd.DataFrame],
    roles: ColumnRoles | Mapping[str, Any],
    params: Mapping[str, Any],
    seed: int,
    metric: str,
    callbacks: list[Any] | None = None,
    after: Callable[[Any], None] | None = None,
) -> tuple[float, int]:
    """Train one model with modelling's trainer and score it on validation.

    Args:
        frames: ``train`` (preprocessing, classes), ``train_balanced`` (the rows the weights are fitted on),
            ``val``.
        roles: ``params:columns``.
        params: the full modelling parameters of this model.
        seed: the model's seed.
        metric: ``params:problem.primary_metric``.
        callbacks: extra Keras callbacks (the pruning callback).
        after: called with the ``TrainingResult`` once scored, while its model lives (a second objective
            measures the model here).

    Returns:
        The validation score and the 0-based best epoch.
    """
    import keras

    # Cleared once, after the model is scored: each clear costs ~0.3 s here, a fair share of a pruned trial.
    try:
        result = train_model(
            frames["train"],
            frames["val"],
            roles,
            params,
            seed,
            fit_on=frames["train_balanced"],
            callbacks=callbacks or [],
            primary_metric=metric,
        )
        value = validation_score(result.model, frames["val"], result.roles, result.classes, metric)
        if after is not None:
            after(result)
        return value, int(result.best_epoch)
    finally:
        # Without the garbage collection free_memory adds (~0.3 s a trial): Python's own collector frees the
        # old graphs as the study goes on.
        keras.backend.clear_session(free_memory=False)


def make_objective(
    frames: Mapping[str, pd.DataFrame],
    roles: Mapping[str, Any],
    modelling: Mapping[str, Any],
    tuning: TuningParams,
    metric: str,
    seed: int,
    cost: Callable[[Any], float] | None = None,
) -> Callable[[Any], float | tuple[float, float]]:
    """The objective of one trial: draw hyperparameters, train with pruning, return the validation metric.

    Every trial trains with the same seed, so trials differ by their hyperparameters only. An exception or a NaN
    fails the trial (Optuna records it FAIL, with the reason in the ``error`` user attribute) and the study goes on.
    With ``cost`` (the second objective, see objectives.py) the trial returns (metric, cost of the trained model)
    and is not pruned: Optuna cannot prune a study with two objectives.
    """
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: Any) -> float | tuple[float, float]:
        import optuna

        trial.set_user_attr("worker", worker)
        costs: list[float] = []
        try:
            # The trial's epoch budget first, so that a search space over epochs still wins.
            budget = {"epochs": tuning.epochs} if tuning.epochs is not None else {}
            params = merge_overrides(
                merge_overrides(modelling, budget), suggest(trial, tuning, modelling)
            )
            if cost is None:
                callbacks, after = [pruning_callback(trial, f"val_{metric}")], None
            else:
                callbacks, after = [], lambda result: costs.append(cost(result))
            value, best_epoch = train_and_score(
                frames, roles, params, seed, metric, callbacks, after=after
            )
        except optuna.TrialPruned:
            raise
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:1000])
            raise
        trial.set_user_attr("best_epoch", best_epoch)
        if not math.isfinite(value):
            trial.set_user_attr("error", f"the validation {metric} is not a number")
        return value if cost is None else (value, costs[0])

    return objective
