"""The study's objectives: the validation metric and, optionally, a cost to minimise with it.

The cost of a trained model (``params:tuning.trade_off.objective``) is either

- ``parameters``: the number of weights of the Keras model (``model.count_params()``), deterministic; or
- ``latency``: the milliseconds of one single-record call of the inference path the service uses. The model is
  compiled into the service's NumPy fast path (:mod:`deep_learning_workflow.service.fastpath`) exactly as
  :func:`deep_learning_workflow.service.loader.load_version` does, falling back to its ``tf.function`` when the
  fast path cannot be built or disagrees with Keras; records are validation rows already in the form the service's
  validator hands over (one value per column). The latency is the smallest of ``repeats`` block medians of
  ``calls`` calls each: contention from other processes only ever adds time, so the fastest block is the steadiest
  estimate. Request parsing and validation are left out: their cost does not depend on the hyperparameters.

TensorFlow, Keras and the service modules are imported inside the functions.
"""

from __future__ import annotations

import gc
import logging
import math
import statistics
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.model_inputs import to_model_inputs

from .schema import LatencyParams, TuningParams

logger = logging.getLogger(__name__)

# The name each cost is recorded under in the study (Optuna's metric names, trials.csv's values_<name> column).
COST_NAMES = {"parameters": "parameters", "latency": "latency_ms"}
COST_LABELS = {"parameters": "parameters (weights)", "latency": "latency per record (ms)"}
# Records of the validation split the latency is measured on (cycled through).
LATENCY_RECORDS = 64


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


def record_columns(frame: pd.DataFrame, roles: ColumnRoles) -> dict[str, list[Any]]:
    """Columns as the service's validator hands them over: lists of floats (NaN missing) or of str ("" missing)."""
    return {name: values.tolist() for name, values in to_model_inputs(frame, roles).items()}


def single_records(frame: pd.DataFrame, roles: ColumnRoles) -> list[dict[str, list[Any]]]:
    """The first ``LATENCY_RECORDS`` rows of ``frame``, each as the one-record columns a request becomes."""
    columns = record_columns(frame.head(LATENCY_RECORDS), roles)
    rows = len(next(iter(columns.values()), []))
    return [{name: values[i : i + 1] for name, values in columns.items()} for i in range(rows)]


def _probe(columns: Mapping[str, list[Any]], roles: ColumnRoles) -> dict[str, list[Any]]:
    """A few real records plus a missing-everything and an unseen-or-extreme record, like the service's probes."""
    numeric = set(roles.numeric or [])
    probe = {}
    for name, values in columns.items():
        head = list(values[:10])
        if name in numeric:
            finite = [v for v in values if math.isfinite(v)] or [0.0]
            span = max(finite) - min(finite) or 1.0
            probe[name] = [*head, math.nan, max(finite) + span]
        else:
            probe[name] = [*head, "", "an unseen category"]
    return probe


def serving_forward(model: Any, frame: pd.DataFrame, roles: ColumnRoles) -> tuple[Any, str]:
    """The service's forward pass of ``model`` and its engine (``numpy`` or ``tf.function``).

    Mirrors :func:`deep_learning_workflow.service.loader.load_version`: the compiled NumPy pass when it builds and
    agrees with Keras on probe records, else the ``tf.function`` fallback.
    """
    from deep_learning_workflow.service.fastpath import UnsupportedLayer
    from deep_learning_workflow.service.loader import (
        TensorFlowForward,
        check_parity,
        compile_forward,
        optimise,
    )

    numeric = set(roles.numeric or [])
    kinds = {name: "numeric" if name in numeric else "string" for name in roles.features}
    try:
        probe = _probe(record_columns(frame.head(LATENCY_RECORDS), roles), roles)
        forward = optimise(compile_forward(model), probe)
        excess = check_parity(model, forward, probe, kinds)
        if excess > 0:
            raise UnsupportedLayer(f"the NumPy pass differs from the Keras model by {excess:.3g}")
        return forward, "numpy"
    except (
        Exception
    ) as reason:  # the service then serves through TensorFlow: so is the latency measured
        logger.warning("Latency measured through tf.function, not the NumPy fast path: %s", reason)
        return TensorFlowForward(model, kinds), "tf.function"


def time_single_records(
    forward: Callable[[dict[str, Any]], Any],
    records: list[dict[str, list[Any]]],
    settings: LatencyParams,
) -> float:
    """Milliseconds per single-record call: the smallest of ``repeats`` block medians of ``calls`` calls."""
    if not records:
        raise ValueError(
            "No validation record to measure the latency on; the split 'val' is empty."
        )
    for record in records[: min(len(records), 20)]:
        forward(record)  # warm-up: first-call caches, a tf.function's tracing
    medians = []
    enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed call belongs to no model
    try:
        for _ in range(settings.repeats):
            times = []
            for call in range(settings.calls):
                record = records[call % len(records)]
                start = time.perf_counter_ns()
                forward(record)
                times.append(time.perf_counter_ns() - start)
            medians.append(statistics.median(times))
    finally:
        if enabled:
            gc.enable()
    return min(medians) / 1e6


def measure_latency(
    model: Any, frame: pd.DataFrame, roles: ColumnRoles, settings: LatencyParams
) -> float:
    """Milliseconds of one single-record call of the service's forward pass, on records of ``frame``."""
    forward, _ = serving_forward(model, frame, roles)
    return time_single_records(forward, single_records(frame, roles), settings)


def make_cost(tuning: TuningParams, val: pd.DataFrame) -> Callable[[Any], float] | None:
    """The cost of a training result (``TrainingResult``) for the second objective; None without one."""
    second = second_objective(tuning)
    if second is None:
        return None
    if second == "parameters":
        return lambda result: count_parameters(result.model)
    latency = tuning.trade_off.latency
    return lambda result: measure_latency(result.model, val, result.roles, latency)
