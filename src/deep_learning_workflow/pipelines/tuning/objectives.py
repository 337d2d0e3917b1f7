"""The study's objectives: the validation metric and, optionally, a cost to minimise with it.

The cost of a trained model (``params:tuning.trade_off.objective``) is either

- ``parameters``: the number of weights of the Keras model (``model.count_params()``), deterministic; or
- ``latency``: the milliseconds of one single-record call of the engine the service would choose
  (:func:`deep_learning_workflow.inference.compile_engine`: the NumPy fast path, or ``tf.function`` when the fast
  path cannot be built or disagrees with Keras); records are validation rows already in the form the service's
  validator hands over (one value per column). The latency is the smallest of ``repeats`` block medians of
  ``calls`` calls each (:func:`deep_learning_workflow.inference.time_single_records`). Request parsing and
  validation are left out: their cost does not depend on the hyperparameters.

TensorFlow, Keras and the inference engine are imported inside the functions.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.metrics import GREATER_IS_BETTER

from .schema import LatencyParams, TuningParams

logger = logging.getLogger(__name__)

# The name each cost is recorded under in the study (Optuna's metric names, trials.csv's values_<name> column).
COST_NAMES = {"parameters": "parameters", "latency": "latency_ms"}
COST_LABELS = {"parameters": "parameters (weights)", "latency": "latency per record (ms)"}


def second_objective(tuning: TuningParams) -> str | None:
    """``parameters`` or ``latency`` when the trade-off is enabled, else None."""
    return tuning.trade_off.objective if tuning.trade_off.enabled else None


def objective_names(metric: str, tuning: TuningParams) -> list[str]:
    """The study's objective names: the metric, then the cost's name when there is one."""
    second = second_objective(tuning)
    return [metric] if second is None else [metric, COST_NAMES[second]]


def objective_directions(metric: str, tuning: TuningParams) -> list[str]:
    """The study's directions: the metric's, then ``minimize`` for the cost."""
    directions = ["maximize" if GREATER_IS_BETTER[metric] else "minimize"]
    return directions if second_objective(tuning) is None else [*directions, "minimize"]


def check_objectives(study: Any, metric: str, tuning: TuningParams, location: str) -> None:
    """Check that an opened study optimises these objectives, and record them on a new one.

    Optuna loads an existing study whatever directions it is asked for, so a single-objective study resumed with
    a second objective (or the reverse, or another metric or cost) is caught here.

    Raises:
        ValueError: naming what the study optimises and the keys to change.
    """
    import optuna

    names = objective_names(metric, tuning)
    directions = objective_directions(metric, tuning)
    found = [direction.name.lower() for direction in study.directions]
    recorded = [study.user_attrs.get("metric"), study.user_attrs.get("second_objective")]
    if found != directions or any(
        seen not in (None, name) for seen, name in zip(recorded, names, strict=False)
    ):
        what = " and ".join(
            seen or direction for seen, direction in zip(recorded, found, strict=False)
        )
        wanted = " and ".join(
            f"{name} ({direction})" for name, direction in zip(names, directions, strict=True)
        )
        raise ValueError(
            f"The study '{tuning.study_name}' in {location} optimises {what}, not {wanted}; set another "
            "params:tuning.study_name (a study with a second objective, params:tuning.trade_off, needs a name of "
            "its own) or params:problem.primary_metric."
        )
    if recorded[0] is None:
        study.set_user_attr("metric", metric)
    if len(names) > 1 and recorded[1] is None:
        study.set_user_attr("second_objective", names[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


def count_parameters(model: Any) -> float:
    """The number of weights of a Keras model (trainable or not)."""
    return float(model.count_params())


def measure_latency(
    model: Any, frame: pd.DataFrame, roles: ColumnRoles, settings: LatencyParams
) -> float:
    """Milliseconds of one single-record call of the service's forward pass, on records of ``frame``."""
    from deep_learning_workflow.inference import (
        engine_for_rows,
        single_records,
        time_single_records,
    )

    records = single_records(frame, roles)
    if not records:
        raise ValueError(
            "No validation record to measure the latency on; the split 'val' is empty."
        )
    engine = engine_for_rows(model, frame, roles, label="Latency objective")
    latency = time_single_records(
        engine.forward, records, blocks=settings.repeats, calls=settings.calls
    )
    return latency.best_block_ms


def make_cost(tuning: TuningParams, val: pd.DataFrame) -> Callable[[Any], float] | None:
    """The cost of a training result (``TrainingResult``) for the second objective; None without one."""
    second = second_objective(tuning)
    if second is None:
        return None
    if second == "parameters":
        return lambda result: count_parameters(result.model)
    latency = tuning.trade_off.latency
    return lambda result: measure_latency(result.model, val, result.roles, latency)
