"""Table rows as the service's forward pass receives them, and the engine the service would choose for a model.

Tuning's latency objective, pruning's trade-off table and the benchmarks time a model on validation rows; they all
take the rows and the engine from here, so they time what a request costs the model.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.model_inputs import to_model_inputs

LATENCY_RECORDS = 64
"""How many rows latency is measured on: enough categories and ranges, few enough to stay cheap."""


def record_columns(frame: pd.DataFrame, roles: ColumnRoles) -> dict[str, list[Any]]:
    """Columns as the service's validator hands them over: lists of floats (NaN missing) or of str ("" missing)."""
    return {name: values.tolist() for name, values in to_model_inputs(frame, roles).items()}


def single_records(
    frame: pd.DataFrame, roles: ColumnRoles, limit: int = LATENCY_RECORDS
) -> list[dict[str, list[Any]]]:
    """The first ``limit`` rows of ``frame``, each as the one-record columns a request becomes."""
    columns = record_columns(frame.head(limit), roles)
    rows = len(next(iter(columns.values()), []))
    return [{name: values[i : i + 1] for name, values in columns.items()} for i in range(rows)]


def engine_for_rows(
    model: Any, frame: pd.DataFrame, roles: ColumnRoles, label: str, limit: int = LATENCY_RECORDS
) -> Any:
    """The engine the service would choose for ``model`` (:func:`.engine.compile_engine`), probed with the rows'
    categories and ranges plus missing, unseen and out-of-range values."""
    from .engine import column_schema, compile_engine, probe_columns

    columns = record_columns(frame.head(limit), roles)
    kinds = {name: "numeric" for name in roles.numeric or []}
    kinds |= {name: "categorical" for name in roles.categorical or []}
    schema = column_schema(columns, kinds | {name: "text" for name in roles.text})
    return compile_engine(model, probe_columns(schema), label=label)
