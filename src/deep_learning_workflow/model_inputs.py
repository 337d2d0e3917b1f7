"""Raw records in the form the Keras model takes: one array per feature column.

Training, evaluation, tuning and batch scoring all feed the model through :func:`to_model_inputs`, so a column is
typed the same way everywhere: numeric columns as float32 with NaN for a missing value, categorical and text columns
as strings with "" for a missing value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles


def to_model_inputs(frame: pd.DataFrame, roles: ColumnRoles) -> dict[str, np.ndarray]:
    """Turn a table of raw records into the model's input dictionary.

    Args:
        frame: rows to score; extra columns (key, target) are ignored.
        roles: resolved column roles (numeric and categorical filled in).

    Returns:
        Feature column name to a 1-D array.

    Raises:
        ValueError: naming the feature columns the frame lacks, or a numeric column holding text.
    """
    missing = [column for column in roles.features if column not in frame.columns]
    if missing:
        raise ValueError(
            f"The records lack the feature columns {missing}; they must have every column in params:columns."
        )
    inputs: dict[str, np.ndarray] = {}
    for column in roles.numeric or []:
        try:
            inputs[column] = pd.to_numeric(frame[column], errors="raise").to_numpy(
                dtype="float32", na_value=np.nan
            )
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Numeric column '{column}' holds a value that is not a number: {error}"
            ) from None
    for column in [*(roles.categorical or []), *roles.text]:
        values = frame[column]
        inputs[column] = np.where(values.isna(), "", values.astype(str)).astype(object)
    return inputs


def predict_probabilities(
    model: Any, frame: pd.DataFrame, roles: ColumnRoles, batch_size: int = 8192
) -> np.ndarray:
    """Class probabilities of shape (rows, classes) from a Keras model that takes raw records.

    The model is called eagerly in inference mode, ``batch_size`` rows at a time: Keras' ``predict`` traces a new
    graph for every model it meets, which costs more than scoring here and warns of retracing when several models
    (seeds, trials) are scored in one run.
    """
    if frame.empty:
        raise ValueError("No records to score: the table is empty.")
    inputs = {name: values.reshape(-1, 1) for name, values in to_model_inputs(frame, roles).items()}
    parts = [
        np.asarray(
            model(
                {name: values[start : start + batch_size] for name, values in inputs.items()},
                training=False,
            ),
            dtype="float64",
        )
        for start in range(0, len(frame), batch_size)
    ]
    probabilities = np.concatenate(parts)
    # float32 softmax rows sum to 1 only within ~1e-7; metrics such as log loss expect exact distributions.
    return probabilities / probabilities.sum(axis=1, keepdims=True)
